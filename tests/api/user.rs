//! `/user/info`, `/user/avatar`, `/user/my/privacy`, `/user/my/groups`.

use jiff::Timestamp;
use serde_json::json;
use whatsapp_api::whatsapp::{Avatar, Group, GroupMember, Privacy, SessionStatus, UserDetails};

use crate::helpers::TestApp;

#[tokio::test]
async fn info_reports_status_picture_and_named_devices() {
    let app = TestApp::spawn().await;
    app.wa.state.lock().unwrap().user = Some(UserDetails {
        verified_name: None,
        status: Some("you are blocked".to_owned()),
        picture_id: Some("1635239861".to_owned()),
        devices: vec![0, 7, 10],
    });

    let res = app.get("/user/info?phone=%2B6289685024091").await;

    res.assert_success("Success");
    let device = |name: &str| json!({"User": "6289685024091", "Agent": 0, "Device": name, "Server": "s.whatsapp.net", "AD": true});
    assert_eq!(
        res.body["results"],
        json!({
            "verified_name": "",
            "status": "you are blocked",
            "picture_id": "1635239861",
            "devices": [device("UNKNOWN"), device("SAFARI"), device("IPAD")]
        })
    );
    assert!(res.text.contains(r#"{"User":"6289685024091","Agent":0,"Device":"UNKNOWN","Server":"s.whatsapp.net","AD":true}"#));
    let queried = app.wa.state.lock().unwrap().queried.clone();
    assert_eq!(queried[0].to_string(), "6289685024091@s.whatsapp.net");
}

#[tokio::test]
async fn info_of_a_number_not_on_whatsapp_is_a_bad_request() {
    let app = TestApp::spawn().await;
    app.get("/user/info?phone=6289685024091")
        .await
        .assert_error(400, "6289685024091 is not registered on WhatsApp");
}

#[tokio::test]
async fn phone_is_validated_before_anything_else() {
    let app = TestApp::spawn().await;
    app.wa.set_status(SessionStatus::LoggedOut);
    for route in ["/user/info", "/user/avatar"] {
        app.get(route)
            .await
            .assert_error(400, "phone: cannot be blank.");
        app.get(&format!("{route}?phone="))
            .await
            .assert_error(400, "phone: cannot be blank.");
        app.get(&format!("{route}?phone=0812345678"))
            .await
            .assert_error(400, "phone: must be a valid E164 number.");
        app.get(&format!("{route}?phone=62812"))
            .await
            .assert_error(400, "phone: the length must be between 10 and 15.");
    }
}

#[tokio::test]
async fn with_strict_fields_unknown_query_parameters_are_refused() {
    let app = TestApp::spawn_with(&["--strict-fields"]).await;
    app.get("/user/info?phone=6289685024091&foo=1")
        .await
        .assert_error(400, "foo: is not a known field.");
}

#[tokio::test]
async fn every_user_route_needs_a_session() {
    let app = TestApp::spawn().await;
    let routes = [
        "/user/info?phone=6289685024091",
        "/user/avatar?phone=6289685024091",
        "/user/my/privacy",
        "/user/my/groups",
    ];
    app.wa.set_status(SessionStatus::LoggedOut);
    for route in routes {
        app.get(route).await.assert_error(500, "you are not loggin");
    }
    app.wa.set_status(SessionStatus::Disconnected);
    for route in routes {
        app.get(route).await.assert_error(
            500,
            "you are not connect to whatsapp server, please reconnect",
        );
    }
}

#[tokio::test]
async fn avatar_reports_url_id_and_type() {
    let app = TestApp::spawn().await;
    app.wa.state.lock().unwrap().avatar = Some(Avatar {
        url: "https://pps.whatsapp.net/v/t61/abc.jpg?oh=1".to_owned(),
        id: "1635239861".to_owned(),
    });

    let res = app.get("/user/avatar?phone=6289685024091").await;

    res.assert_success("Success");
    assert_eq!(
        res.body["results"],
        json!({"url": "https://pps.whatsapp.net/v/t61/abc.jpg?oh=1", "id": "1635239861", "type": "image"})
    );
}

#[tokio::test]
async fn avatar_without_a_picture_says_so() {
    let app = TestApp::spawn().await;
    app.get("/user/avatar?phone=6289685024091")
        .await
        .assert_error(500, "no avatar found");
}

#[tokio::test]
async fn privacy_reports_every_category_by_its_v2_name() {
    let app = TestApp::spawn().await;
    app.wa.state.lock().unwrap().privacy = Privacy {
        group_add: Some("all".to_owned()),
        last_seen: None,
        status: Some("all".to_owned()),
        profile: Some("contacts".to_owned()),
        read_receipts: Some("all".to_owned()),
    };

    let res = app.get("/user/my/privacy").await;

    res.assert_success("Success get privacy");
    assert!(res.text.contains(
        r#""results":{"group_add":"all","last_seen":"","status":"all","profile":"contacts","read_receipts":"all"}"#
    ), "{}", res.text);
}

#[tokio::test]
async fn groups_are_listed_in_the_v2_shape() {
    let app = TestApp::spawn().await;
    app.wa.state.lock().unwrap().groups = vec![Group {
        jid: "120363025246125888@g.us".to_owned(),
        owner: Some("6281111111111@s.whatsapp.net".to_owned()),
        name: "Team".to_owned(),
        name_set_at: Some(Timestamp::from_second(1_600_000_000).unwrap()),
        name_set_by: None,
        topic: "Our topic".to_owned(),
        topic_id: "AB12".to_owned(),
        topic_set_at: None,
        topic_set_by: None,
        is_locked: true,
        is_announce: false,
        disappearing_timer: 86400,
        created_at: Some(Timestamp::from_second(1_500_000_000).unwrap()),
        participant_version_id: "1700000000".to_owned(),
        participants: vec![GroupMember {
            jid: "6281111111111@s.whatsapp.net".to_owned(),
            is_admin: true,
            is_super_admin: true,
            ..GroupMember::default()
        }],
    }];

    let res = app.get("/user/my/groups").await;

    res.assert_success("Success get list groups");
    assert_eq!(
        res.body["results"],
        json!({"data": [{
            "JID": "120363025246125888@g.us",
            "OwnerJID": "6281111111111@s.whatsapp.net",
            "Name": "Team",
            "NameSetAt": "2020-09-13T12:26:40Z",
            "NameSetBy": "",
            "Topic": "Our topic",
            "TopicID": "AB12",
            "TopicSetAt": "0001-01-01T00:00:00Z",
            "TopicSetBy": "",
            "IsLocked": true,
            "IsAnnounce": false,
            "AnnounceVersionID": "",
            "IsEphemeral": true,
            "DisappearingTimer": 86400,
            "GroupCreated": "2017-07-14T02:40:00Z",
            "ParticipantVersionID": "1700000000",
            "Participants": [{"JID": "6281111111111@s.whatsapp.net", "IsAdmin": true, "IsSuperAdmin": true}]
        }]})
    );
}

#[tokio::test]
async fn no_groups_is_a_null_list() {
    let app = TestApp::spawn().await;
    let res = app.get("/user/my/groups").await;
    res.assert_success("Success get list groups");
    assert!(
        res.text.contains(r#""results":{"data":null}"#),
        "{}",
        res.text
    );
}

#[tokio::test]
async fn my_contacts_list_jid_and_name() {
    let app = TestApp::spawn().await;
    app.wa.state.lock().unwrap().contacts = vec![
        whatsapp_api::whatsapp::Contact {
            jid: "6289685024091@s.whatsapp.net".into(),
            name: "Budi".into(),
        },
        whatsapp_api::whatsapp::Contact {
            jid: "6289685024092@s.whatsapp.net".into(),
            name: String::new(),
        },
    ];
    let res = app.get("/user/my/contacts").await;
    res.assert_success("Success get list contacts");
    assert_eq!(
        res.body["results"],
        serde_json::json!({ "data": [
            { "jid": "6289685024091@s.whatsapp.net", "name": "Budi" },
            { "jid": "6289685024092@s.whatsapp.net", "name": "" },
        ] })
    );
}

#[tokio::test]
async fn my_newsletters_need_a_session_and_use_the_go_shape() {
    let app = TestApp::spawn().await;
    app.wa.state.lock().unwrap().newsletters = vec![whatsapp_api::whatsapp::Newsletter {
        jid: "120363144038483540@newsletter".into(),
        name: "News".into(),
        subscribers: 7,
        state: "active",
        ..Default::default()
    }];
    let res = app.get("/user/my/newsletters").await;
    res.assert_success("Success get list newsletter");
    let n = &res.body["results"]["data"][0];
    assert_eq!(n["id"], "120363144038483540@newsletter");
    assert_eq!(n["thread_metadata"]["name"]["text"], "News");
    assert_eq!(n["thread_metadata"]["subscribers_count"], "7");
    assert_eq!(n["thread_metadata"]["verification"], "unverified");
    assert_eq!(n["thread_metadata"]["picture"], serde_json::Value::Null);
    assert_eq!(n["viewer_metadata"], serde_json::Value::Null);

    app.wa
        .set_status(whatsapp_api::whatsapp::SessionStatus::LoggedOut);
    app.get("/user/my/newsletters")
        .await
        .assert_error(500, "you are not loggin");
}

#[tokio::test]
async fn newsletter_unfollow_and_messages() {
    let app = TestApp::spawn().await;
    app.wa.state.lock().unwrap().newsletters = vec![whatsapp_api::whatsapp::Newsletter {
        jid: "120363144038483540@newsletter".into(),
        ..Default::default()
    }];
    let res = app
        .get("/newsletter/messages?newsletter_id=120363144038483540&count=5&before=200")
        .await;
    res.assert_success("Success get newsletter messages");
    assert_eq!(
        res.body["results"],
        json!({ "data": [{ "server_id": 101, "message_id": "NL101", "type": "text",
                           "timestamp": "2023-11-14T22:13:20Z", "views_count": 0,
                           "reaction_counts": { "👍": 3 }, "text": "news" }] })
    );
    assert_eq!(
        app.wa.actions(),
        ["posts:120363144038483540@newsletter:5:Some(200)"]
    );
    app.get("/newsletter/messages?newsletter_id=120363144038483540&count=0")
        .await
        .assert_error(400, "count: must be between 1 and 100.");
    app.get("/newsletter/messages?newsletter_id=abc")
        .await
        .assert_error(
            400,
            "newsletter_id: must be a channel id (digits@newsletter).",
        );

    app.post_form(
        "/newsletter/unfollow",
        &[("newsletter_id", "120363144038483540@newsletter")],
    )
    .await
    .assert_success("Success unfollow newsletter");
    let again = app
        .post_form(
            "/newsletter/unfollow",
            &[("newsletter_id", "120363144038483540")],
        )
        .await;
    assert_eq!(again.status, 404, "{}", again.text);
}
