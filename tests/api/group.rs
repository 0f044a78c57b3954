//! `/group/*`: validation, the later Go versions' shapes, per-participant results,
//! the CSV export, and WhatsApp's refusals as 4xx.

use serde_json::json;
use whatsapp_api::whatsapp::{Group, GroupMember};

use crate::helpers::TestApp;

const GROUP: &str = "120363025246125888@g.us";

async fn app() -> TestApp {
    let app = TestApp::spawn().await;
    app.wa.state.lock().unwrap().groups = vec![Group {
        jid: GROUP.to_owned(),
        name: "Team".to_owned(),
        topic: "all of us".to_owned(),
        participants: vec![
            GroupMember {
                jid: "6281111111111@s.whatsapp.net".to_owned(),
                phone_number: Some("6281111111111@s.whatsapp.net".to_owned()),
                lid: Some("12345@lid".to_owned()),
                is_admin: true,
                is_super_admin: true,
            },
            GroupMember {
                jid: "6282222222222@s.whatsapp.net".to_owned(),
                phone_number: Some("6282222222222@s.whatsapp.net".to_owned()),
                lid: None,
                is_admin: false,
                is_super_admin: false,
            },
            GroupMember {
                jid: "=HYPERLINK(1)@s.whatsapp.net".to_owned(),
                ..GroupMember::default()
            },
        ],
        ..Group::default()
    }];
    app
}

#[tokio::test]
async fn create_and_join_answer_with_the_group_id() {
    let app = app().await;
    let res = app
        .post_json(
            "/group",
            json!({ "title": "New", "participants": ["+62 812-3333-3333", "6284444444444@s.whatsapp.net"] }),
        )
        .await;
    res.assert_success("Success created group with id 120363000000000001@g.us");
    assert_eq!(res.body["results"]["group_id"], "120363000000000001@g.us");
    let created = app.wa.state.lock().unwrap().groups[1].clone();
    let members: Vec<&str> = created
        .participants
        .iter()
        .map(|p| p.jid.as_str())
        .collect();
    assert_eq!(
        members,
        [
            "6281233333333@s.whatsapp.net",
            "6284444444444@s.whatsapp.net"
        ]
    );

    app.post_json("/group", json!({ "participants": ["62812"] }))
        .await
        .assert_error(400, "title: cannot be blank.");
    app.post_json(
        "/group",
        json!({ "title": "x", "participants": ["not a number"] }),
    )
    .await
    .assert_error(
        400,
        "participants: not a number is not a phone number or a WhatsApp JID.",
    );

    let joined = app
        .post_form(
            "/group/join-with-link",
            &[("link", "https://chat.whatsapp.com/ABC")],
        )
        .await;
    joined.assert_success("Success joined group");
    assert_eq!(
        joined.body["results"]["group_id"],
        "120363000000000002@g.us"
    );
    assert_eq!(joined.body["results"]["pending_approval"], false);
    let pending = app
        .post_form(
            "/group/join-with-link",
            &[("link", "https://chat.whatsapp.com/APPROVAL")],
        )
        .await;
    assert_eq!(
        pending.body["results"]["pending_approval"], true,
        "{}",
        pending.text
    );
    app.post_form(
        "/group/join-with-link",
        &[("link", "https://chat.whatsapp.com/REVOKED")],
    )
    .await
    .assert_error(
        400,
        "join: the invite link is invalid or was reset (410 gone)",
    );
    app.post_form("/group/join-with-link", &[])
        .await
        .assert_error(400, "link: cannot be blank.");
}

#[tokio::test]
async fn info_participants_and_the_csv_export() {
    let app = app().await;
    let info = app.get(&format!("/group/info?group_id={GROUP}")).await;
    info.assert_success("Success get group info");
    assert_eq!(info.body["results"]["JID"], GROUP);
    assert_eq!(info.body["results"]["Name"], "Team");

    // A bare id names the same group.
    let res = app
        .get("/group/participants?group_id=120363025246125888")
        .await;
    res.assert_success("Success getting group participants");
    assert_eq!(res.body["results"]["group_id"], GROUP);
    assert_eq!(
        res.body["results"]["participants"][0],
        json!({ "jid": "6281111111111@s.whatsapp.net", "phone_number": "6281111111111",
                "lid": "12345@lid", "is_admin": true, "is_super_admin": true })
    );

    let csv = app
        .client
        .get(app.url(&format!("/group/participants/export?group_id={GROUP}")))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        csv.headers()["content-disposition"],
        "attachment; filename=\"group-120363025246125888_g.us-participants.csv\""
    );
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "participant_jid,phone_number,lid,display_name,role"
    );
    assert_eq!(
        lines[1],
        "6281111111111@s.whatsapp.net,6281111111111,12345@lid,,superadmin"
    );
    assert_eq!(
        lines[2],
        "6282222222222@s.whatsapp.net,6282222222222,,,member"
    );
    // Never a formula in a spreadsheet.
    assert_eq!(lines[3], "'=HYPERLINK(1)@s.whatsapp.net,,,,member");

    let from_link = app
        .get("/group/info-from-link?link=https://chat.whatsapp.com/ABC")
        .await;
    from_link.assert_success("Success get group info from link");
    assert_eq!(from_link.body["results"]["participant_count"], 3);
    assert_eq!(from_link.body["results"]["description"], "all of us");
}

#[tokio::test]
async fn participant_changes_report_each_participant() {
    let app = app().await;
    let res = app
        .post_json(
            "/group/participants",
            json!({ "group_id": GROUP, "participants": ["6283333333333", "6283333333404", "6283333333403"] }),
        )
        .await;
    res.assert_success("Success add participants");
    assert_eq!(
        res.body["results"],
        json!([
            { "participant": "6283333333333@s.whatsapp.net", "status": "success", "message": "Action success" },
            { "participant": "6283333333404@s.whatsapp.net", "status": "error", "message": "not on WhatsApp (code 404)" },
            { "participant": "6283333333403@s.whatsapp.net", "status": "error",
              "message": "their privacy settings do not allow it; WhatsApp sent them an invitation (code 403)" },
        ])
    );
    for (path, message) in [
        ("/group/participants/remove", "Success delete participants"),
        (
            "/group/participants/promote",
            "Success promote participants",
        ),
        ("/group/participants/demote", "Success demote participants"),
        (
            "/group/participant-requests/approve",
            "Success approve requested participants",
        ),
        (
            "/group/participant-requests/reject",
            "Success reject requested participants",
        ),
    ] {
        app.post_json(
            path,
            json!({ "group_id": GROUP, "participants": ["6283333333333"] }),
        )
        .await
        .assert_success(message);
    }
    assert_eq!(
        app.wa.actions(),
        ["Add", "Remove", "Promote", "Demote", "Approve", "Reject"]
            .map(|a| format!("{a}:{GROUP}:{}", if a == "Add" { 3 } else { 1 }))
    );
    app.post_json(
        "/group/participants",
        json!({ "group_id": GROUP, "participants": [] }),
    )
    .await
    .assert_error(400, "participants: cannot be blank.");
    app.post_json(
        "/group/participants",
        json!({ "participants": ["6283333333333"] }),
    )
    .await
    .assert_error(400, "group_id: cannot be blank.");
    app.post_json(
        "/group/participants",
        json!({ "group_id": "../../etc", "participants": ["6283333333333"] }),
    )
    .await
    .assert_error(400, "group_id: must be a valid group id.");

    let requests = app
        .get(&format!("/group/participant-requests?group_id={GROUP}"))
        .await;
    requests.assert_success("Success getting list requested participants");
    assert_eq!(
        requests.body["results"],
        json!([{ "jid": "6289685024093@s.whatsapp.net", "phone_number": "6289685024093",
                 "requested_at": "2023-11-14T22:13:20Z" }])
    );
}

#[tokio::test]
async fn settings_and_invite_link() {
    let app = app().await;
    app.post_form("/group/name", &[("group_id", GROUP), ("name", "Renamed")])
        .await
        .assert_success("Success update group name to 'Renamed'");
    app.post_form(
        "/group/topic",
        &[("group_id", GROUP), ("topic", "new topic")],
    )
    .await
    .assert_success("Success update group topic");
    app.post_form("/group/topic", &[("group_id", GROUP)])
        .await
        .assert_success("Success remove group topic");
    app.post_form("/group/locked", &[("group_id", GROUP), ("locked", "true")])
        .await
        .assert_success("Success set group as locked");
    app.post_form(
        "/group/announce",
        &[("group_id", GROUP), ("announce", "false")],
    )
    .await
    .assert_success("Success disable announce mode");
    app.post_form(
        "/group/locked",
        &[("group_id", GROUP), ("locked", "perhaps")],
    )
    .await
    .assert_error(400, "locked: must be a boolean (true or false).");
    app.post_form(
        "/group/name",
        &[("group_id", GROUP), ("name", &"n".repeat(101))],
    )
    .await
    .assert_error(400, "name: must be at most 100 characters.");
    assert_eq!(
        app.wa.actions(),
        [
            format!("Name(\"Renamed\"):{GROUP}"),
            format!("Topic(Some(\"new topic\")):{GROUP}"),
            format!("Topic(None):{GROUP}"),
            format!("Locked(true):{GROUP}"),
            format!("Announce(false):{GROUP}"),
        ]
    );

    let link = app
        .get(&format!("/group/invite-link?group_id={GROUP}&reset=true"))
        .await;
    link.assert_success("Success get group invite link");
    assert_eq!(
        link.body["results"],
        json!({ "invite_link": "https://chat.whatsapp.com/NEWCODE", "group_id": GROUP })
    );
    app.post_form("/group/leave", &[("group_id", GROUP)])
        .await
        .assert_success("Success leave group");
}

#[tokio::test]
async fn refusals_are_404_and_403_in_the_envelope() {
    let app = app().await;
    let res = app
        .get("/group/info?group_id=120363999999999999@g.us")
        .await;
    assert_eq!(res.status, 404, "{}", res.text);
    assert!(
        res.body["message"].as_str().unwrap().contains("not in it"),
        "{}",
        res.text
    );
    let res = app
        .post_json(
            "/group/participants/promote",
            json!({ "group_id": "120363000000000403", "participants": ["6283333333333"] }),
        )
        .await;
    assert_eq!(res.status, 403, "{}", res.text);
    assert!(
        res.body["message"]
            .as_str()
            .unwrap()
            .contains("only group admins")
    );

    let v9 = TestApp::spawn_with(&["--api-compat", "v9"]).await;
    let res = v9.get("/group/info?group_id=120363999999999999@g.us").await;
    assert_eq!(res.body["code"], "NOT_FOUND", "{}", res.text);
}

#[tokio::test]
async fn the_group_photo_is_sent_as_a_jpeg_or_removed() {
    let app = app().await;
    let mut png = Vec::new();
    image::RgbImage::from_pixel(300, 200, image::Rgb([10, 200, 30]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .text("group_id", GROUP)
        .part(
            "photo",
            reqwest::multipart::Part::bytes(png)
                .file_name("p.png")
                .mime_str("image/png")
                .unwrap(),
        );
    let res = app.post_multipart("/group/photo", form).await;
    res.assert_success("Success update group photo");
    assert_eq!(
        res.body["results"],
        json!({ "picture_id": "1700000001", "message": "Success update group photo" })
    );
    let removed = app
        .post_multipart(
            "/group/photo",
            reqwest::multipart::Form::new().text("group_id", GROUP),
        )
        .await;
    removed.assert_success("Success remove group photo");
    let actions = app.wa.actions();
    assert!(
        actions[0].starts_with(&format!("photo:{GROUP}:"))
            && actions[0] != format!("photo:{GROUP}:0")
    );
    assert_eq!(actions[1], format!("photo:{GROUP}:0"));
}
