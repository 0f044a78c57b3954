//! Every `/user/*` route returns what the fake holds, in the v2.3.0 shape.

use fake_whatsapp::{ContactInfo, FakeGroup, FakeWhatsApp};
use serde_json::json;

use crate::harness::Server;
use crate::send::FRIEND;

const SHOP: &str = "6281234567890";
const GROUP: &str = "120363025246125888";

async fn paired_with_contacts() -> (FakeWhatsApp, Server, tempfile::TempDir) {
    let fake = FakeWhatsApp::start_local().await.unwrap();
    fake.add_contact(
        FRIEND,
        ContactInfo {
            status: Some("at the gym".to_owned()),
            picture_id: Some(1_635_239_861),
            business_name: None,
        },
    )
    .unwrap();
    fake.add_contact(
        SHOP,
        ContactInfo {
            business_name: Some("Toko Fake".to_owned()),
            ..ContactInfo::default()
        },
    )
    .unwrap();
    fake.add_group(
        GROUP,
        FakeGroup {
            subject: "Team".to_owned(),
            admin: FRIEND.to_owned(),
            members: vec![FRIEND.to_owned(), SHOP.to_owned()],
        },
    );
    fake.set_privacy(&[
        ("groupadd", "contacts"),
        ("last", "none"),
        ("status", "all"),
        ("profile", "contacts"),
        ("readreceipts", "none"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&fake, dir.path()).await;
    server.pair(&fake).await;
    (fake, server, dir)
}

#[tokio::test]
async fn user_info_and_avatar_come_from_the_fake() {
    let (_fake, server, _dir) = paired_with_contacts().await;

    let res = server.get(&format!("/user/info?phone={FRIEND}")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.message(), "Success");
    assert_eq!(
        res.body["results"],
        json!({
            "verified_name": "",
            "status": "at the gym",
            "picture_id": "1635239861",
            "devices": [{"User": FRIEND, "Agent": 0, "Device": "UNKNOWN", "Server": "s.whatsapp.net", "AD": true}]
        })
    );

    let res = server.get(&format!("/user/info?phone={SHOP}")).await;
    assert_eq!(
        res.body["results"]["verified_name"], "Toko Fake",
        "{}",
        res.body
    );

    let res = server.get("/user/info?phone=6280000000001").await;
    assert_eq!(res.status, 400, "{}", res.body);
    assert_eq!(res.message(), "6280000000001 is not registered on WhatsApp");

    let res = server.get(&format!("/user/avatar?phone={FRIEND}")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        res.body["results"],
        json!({
            "url": format!("https://pps.whatsapp.net/v/t61.24694-24/1635239861_{FRIEND}.jpg?oh=fake"),
            "id": "1635239861",
            "type": "image"
        })
    );
    let res = server.get(&format!("/user/avatar?phone={SHOP}")).await;
    assert_eq!(res.status, 500, "{}", res.body);
    assert_eq!(res.message(), "no avatar found");
}

#[tokio::test]
async fn privacy_and_groups_come_from_the_fake() {
    let (_fake, server, _dir) = paired_with_contacts().await;

    let res = server.get("/user/my/privacy").await;
    assert_eq!(res.message(), "Success get privacy", "{}", res.body);
    assert_eq!(
        res.body["results"],
        json!({"group_add": "contacts", "last_seen": "none", "status": "all", "profile": "contacts", "read_receipts": "none"})
    );

    let res = server.get("/user/my/groups").await;
    assert_eq!(res.message(), "Success get list groups", "{}", res.body);
    let groups = res.body["results"]["data"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{}", res.body);
    let group = &groups[0];
    assert_eq!(group["JID"], format!("{GROUP}@g.us"));
    assert_eq!(group["Name"], "Team");
    assert_eq!(group["OwnerJID"], format!("{FRIEND}@s.whatsapp.net"));
    assert_eq!(group["GroupCreated"], "2023-11-14T22:13:20Z");
    let members: Vec<(String, bool)> = group["Participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["JID"].as_str().unwrap().to_owned(),
                p["IsSuperAdmin"] == true,
            )
        })
        .collect();
    assert!(
        members.contains(&(format!("{FRIEND}@s.whatsapp.net"), true)),
        "{members:?}"
    );
    assert!(
        members.contains(&(format!("{SHOP}@s.whatsapp.net"), false)),
        "{members:?}"
    );
}

#[tokio::test]
async fn the_profile_picture_and_push_name_reach_whatsapp() {
    let (fake, server, _dir) = crate::send::paired().await;
    let form = reqwest::multipart::Form::new().part(
        "avatar",
        crate::common::file_part(crate::common::jpeg(900, 1200), "me.jpg", "image/jpeg"),
    );
    let reply = server.post_multipart("/user/avatar", form).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let pictures = fake.own_pictures();
    assert_eq!(pictures.len(), 1);
    let picture = image::load_from_memory(&pictures[0]).unwrap();
    assert_eq!((picture.width(), picture.height()), (640, 640));

    let reply = server
        .post_form("/user/pushname", &[("push_name", "Toko Budi")])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        fake.push_names().last().map(String::as_str),
        Some("Toko Budi")
    );
    assert!(fake.problems().is_empty(), "{:?}", fake.problems());
}

#[tokio::test]
async fn a_business_profile_comes_from_whatsapp() {
    let (fake, server, _dir) = crate::send::paired().await;
    fake.add_contact(
        "6289685027000",
        fake_whatsapp::ContactInfo {
            business_name: Some("Toko Budi".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let reply = server
        .get("/user/business-profile?phone=6289685027000")
        .await;
    assert_eq!(reply.status, 200, "{}\n{}", reply.body, server.log());
    let profile = &reply.body["results"];
    assert_eq!(profile["jid"], "6289685027000@s.whatsapp.net");
    assert_eq!(profile["description"], "Toko Budi: the fake business");
    assert_eq!(profile["website"], json!(["https://6289685027000.example"]));
    assert_eq!(profile["categories"][0]["name"], "Shopping & retail");
    assert_eq!(profile["business_hours_timezone"], "Asia/Jakarta");
    assert_eq!(profile["business_hours"][1]["open_time"], "480");
    // A person, not a business.
    let reply = server
        .get(&format!(
            "/user/business-profile?phone={}",
            crate::send::FRIEND
        ))
        .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
}

async fn my_contacts_are_those_who_wrote_with_their_push_names() {
    let (fake, server, _dir) = crate::send::paired().await;
    let empty = server.get("/user/my/contacts").await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert_eq!(empty.message(), "Success get list contacts");
    assert_eq!(empty.body["results"], json!({ "data": [] }));

    let hello = whatsapp_rust::prelude::wa::Message {
        conversation: Some("hello".to_owned()),
        ..Default::default()
    };
    fake.deliver_message(FRIEND, hello).await.unwrap();
    // Stored before WhatsApp got the ack, so listed as soon as the fake saw it.
    crate::harness::wait_for("the ack", std::time::Duration::from_secs(10), || {
        fake.unacked() == 0
    })
    .await;

    let res = server.get("/user/my/contacts").await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        res.body["results"],
        json!({ "data": [{ "jid": format!("{FRIEND}@s.whatsapp.net"), "name": "Fake Contact" }] })
    );
}

#[tokio::test]
async fn my_newsletters_come_from_whatsapp_in_the_go_shape() {
    let (fake, server, _dir) = crate::send::paired().await;
    fake.add_newsletter(fake_whatsapp::FakeNewsletter {
        id: "120363144038483540".to_owned(),
        name: "Fake News".to_owned(),
        description: "Only the fakest".to_owned(),
        subscribers: 1234,
        verified: true,
        role: "subscriber".to_owned(),
        invite: "0029VaFake".to_owned(),
        created_at: 1_700_000_000,
        posts: (0..5).map(|i| format!("post {i}")).collect(),
    });

    let res = server.get("/user/my/newsletters").await;

    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.message(), "Success get list newsletter");
    let data = res.body["results"]["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{}", res.body);
    let n = &data[0];
    assert_eq!(n["id"], "120363144038483540@newsletter");
    assert_eq!(n["state"]["type"], "active");
    let thread = &n["thread_metadata"];
    assert_eq!(thread["name"]["text"], "Fake News");
    assert_eq!(thread["description"]["text"], "Only the fakest");
    assert_eq!(thread["subscribers_count"], "1234");
    assert_eq!(thread["verification"], "verified");
    assert_eq!(thread["invite"], "0029VaFake");
    assert_eq!(thread["creation_time"], "1700000000");
    assert_eq!(
        thread["picture"]["direct_path"],
        "/v/t61/120363144038483540-picture"
    );
    assert_eq!(n["viewer_metadata"]["role"], "subscriber");
    assert_eq!(fake.problems(), Vec::<String>::new());
}

#[tokio::test]
async fn newsletter_posts_page_back_and_unfollow_reaches_whatsapp() {
    let (fake, server, _dir) = crate::send::paired().await;
    fake.add_newsletter(fake_whatsapp::FakeNewsletter {
        id: "120363144038483540".to_owned(),
        name: "Fake News".to_owned(),
        created_at: 1_700_000_000,
        posts: (0..5).map(|i| format!("post {i}")).collect(),
        ..Default::default()
    });
    let res = server
        .get("/newsletter/messages?newsletter_id=120363144038483540&count=2")
        .await;
    assert_eq!(res.status, 200, "{}\n{}", res.body, server.log());
    let texts = |res: &crate::harness::Reply| -> Vec<String> {
        res.body["results"]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["text"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(texts(&res), ["post 3", "post 4"]);
    let first = &res.body["results"]["data"][0];
    assert_eq!(first["server_id"], 103);
    assert_eq!(first["type"], "text");
    let older = server
        .get("/newsletter/messages?newsletter_id=120363144038483540&count=2&before=103")
        .await;
    assert_eq!(texts(&older), ["post 1", "post 2"]);

    let res = server
        .post_form(
            "/newsletter/unfollow",
            &[("newsletter_id", "120363144038483540@newsletter")],
        )
        .await;
    assert_eq!(res.status, 200, "{}\n{}", res.body, server.log());
    let listed = server.get("/user/my/newsletters").await;
    assert_eq!(listed.body["results"]["data"], json!([]));
    let again = server
        .post_form(
            "/newsletter/unfollow",
            &[("newsletter_id", "120363144038483540")],
        )
        .await;
    assert_eq!(again.status, 404, "{}", again.body);
    assert_eq!(fake.problems(), Vec::<String>::new());
}

crate::on_both_stores!(my_contacts_are_those_who_wrote_with_their_push_names,);
