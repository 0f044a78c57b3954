//! Group management through the real binary: every change shows in the fake's group
//! state and in `/group/info`; refusals are clear 4xx.

use fake_whatsapp::{ContactInfo, FakeGroup, PHONE_USER};
use serde_json::{Value, json};

use crate::send::{FRIEND, paired};

const OTHER: &str = "6289685028130";
const STRANGER: &str = "6289685028131";

fn members(info: &Value) -> Vec<String> {
    let mut list: Vec<String> = info["results"]["Participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p["JID"]
                .as_str()
                .unwrap()
                .split('@')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    list.sort();
    list
}

#[tokio::test]
async fn a_group_is_created_managed_and_left() {
    let (fake, server, _dir) = paired().await;
    fake.add_contact(OTHER, ContactInfo::default()).unwrap();

    let res = server
        .post_form("/group", &[("title", "Project"), ("participants", FRIEND)])
        .await;
    assert_eq!(res.status, 200, "{}\n{}", res.body, server.log());
    let gid = res.body["results"]["group_id"].as_str().unwrap().to_owned();
    let group = fake.group(&gid).expect("the fake knows the group");
    assert_eq!(group.subject, "Project");
    assert!(group.members.contains(&FRIEND.to_owned()));
    assert_eq!(group.superadmin.as_deref(), Some(PHONE_USER));

    // Add: one works, one is not on WhatsApp.
    let res = server
        .post_form(
            "/group/participants",
            &[
                ("group_id", &gid),
                ("participants", &format!("{OTHER},{STRANGER}")),
            ],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let results = res.body["results"].as_array().unwrap();
    let status_of = |who: &str| {
        results
            .iter()
            .find(|r| r["participant"].as_str().unwrap().starts_with(who))
            .map(|r| {
                (
                    r["status"].as_str().unwrap().to_owned(),
                    r["message"].as_str().unwrap().to_owned(),
                )
            })
            .unwrap()
    };
    assert_eq!(status_of(OTHER).0, "success");
    let (status, message) = status_of(STRANGER);
    assert_eq!(status, "error");
    assert!(message.contains("404"), "{message}");

    let res = server
        .post_form(
            "/group/participants/promote",
            &[("group_id", &gid), ("participants", OTHER)],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(fake.group(&gid).unwrap().admins.contains(&OTHER.to_owned()));
    let res = server
        .post_form(
            "/group/participants/remove",
            &[("group_id", &gid), ("participants", FRIEND)],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);

    for (path, fields) in [
        ("/group/name", vec![("name", "Renamed")]),
        ("/group/topic", vec![("topic", "what we do")]),
        ("/group/locked", vec![("locked", "true")]),
        ("/group/announce", vec![("announce", "true")]),
    ] {
        let mut form = vec![("group_id", gid.as_str())];
        form.extend(fields);
        let res = server.post_form(path, &form).await;
        assert_eq!(res.status, 200, "{path}: {}\n{}", res.body, server.log());
    }
    let group = fake.group(&gid).unwrap();
    assert_eq!(group.subject, "Renamed");
    assert_eq!(
        group.description.as_ref().map(|d| d.text.as_str()),
        Some("what we do")
    );
    assert!(group.locked && group.announce);

    let info = server.get(&format!("/group/info?group_id={gid}")).await;
    assert_eq!(info.status, 200, "{}", info.body);
    assert_eq!(info.body["results"]["Name"], "Renamed");
    assert_eq!(info.body["results"]["Topic"], "what we do");
    assert_eq!(info.body["results"]["IsLocked"], true);
    assert_eq!(info.body["results"]["IsAnnounce"], true);
    assert_eq!(
        members(&info.body),
        [PHONE_USER.to_owned(), OTHER.to_owned()],
        "sorted"
    );

    let link = server
        .get(&format!("/group/invite-link?group_id={gid}"))
        .await;
    assert_eq!(link.status, 200, "{}", link.body);
    let url = link.body["results"]["invite_link"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = fake.group(&gid).unwrap().invite_code.unwrap();
    assert_eq!(url, format!("https://chat.whatsapp.com/{code}"));
    let reset = server
        .get(&format!("/group/invite-link?group_id={gid}&reset=true"))
        .await;
    assert_ne!(reset.body["results"]["invite_link"], json!(url));
    assert!(fake.group(&gid).unwrap().revoked_codes.contains(&code));

    let res = server
        .post_form("/group/leave", &[("group_id", &gid)])
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(
        !fake
            .group(&gid)
            .unwrap()
            .members
            .contains(&PHONE_USER.to_owned())
    );
    let gone = server.get(&format!("/group/info?group_id={gid}")).await;
    assert_eq!(gone.status, 404, "{}", gone.body);
    assert_eq!(fake.problems(), Vec::<String>::new());
}

#[tokio::test]
async fn joining_by_link_requests_and_refusals() {
    let (fake, server, _dir) = paired().await;
    fake.add_contact(OTHER, ContactInfo::default()).unwrap();
    // A group run by a contact: this account is a plain member there.
    let theirs = "120363025246125801";
    fake.add_group(
        theirs,
        FakeGroup {
            subject: "Theirs".to_owned(),
            admin: FRIEND.to_owned(),
            members: vec![FRIEND.to_owned(), OTHER.to_owned()],
        },
    );
    let res = server
        .post_form(
            "/group/participants/promote",
            &[("group_id", theirs), ("participants", OTHER)],
        )
        .await;
    assert_eq!(res.status, 403, "{}", res.body);

    // A group this account is not in, joined by its link.
    let open = "120363025246125802";
    fake.add_group(
        open,
        FakeGroup {
            subject: "Open".to_owned(),
            admin: FRIEND.to_owned(),
            members: vec![FRIEND.to_owned()],
        },
    );
    fake.edit_group(open, |g| {
        g.remove_member(PHONE_USER);
        g.invite_code = Some("OPENCODE123".to_owned());
    })
    .unwrap();
    let missing = server.get(&format!("/group/info?group_id={open}")).await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    let preview = server
        .get("/group/info-from-link?link=https://chat.whatsapp.com/OPENCODE123")
        .await;
    assert_eq!(preview.status, 200, "{}\n{}", preview.body, server.log());
    assert_eq!(preview.body["results"]["name"], "Open");
    let joined = server
        .post_form(
            "/group/join-with-link",
            &[("link", "https://chat.whatsapp.com/OPENCODE123")],
        )
        .await;
    assert_eq!(joined.status, 200, "{}", joined.body);
    assert_eq!(joined.body["results"]["group_id"], format!("{open}@g.us"));
    assert!(
        fake.group(open)
            .unwrap()
            .members
            .contains(&PHONE_USER.to_owned())
    );
    let bad = server
        .post_form(
            "/group/join-with-link",
            &[("link", "https://chat.whatsapp.com/NOSUCHCODE")],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);

    // Requests to join a group this account runs.
    let gated = server
        .post_form("/group", &[("title", "Gated"), ("participants", FRIEND)])
        .await;
    let gid = gated.body["results"]["group_id"]
        .as_str()
        .unwrap()
        .to_owned();
    fake.edit_group(&gid, |g| g.membership_approval = true)
        .unwrap();
    fake.add_join_request(&gid, OTHER).unwrap();
    let asked = server
        .get(&format!("/group/participant-requests?group_id={gid}"))
        .await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    assert_eq!(asked.body["results"][0]["phone_number"], OTHER);
    let approved = server
        .post_form(
            "/group/participant-requests/approve",
            &[("group_id", &gid), ("participants", OTHER)],
        )
        .await;
    assert_eq!(approved.status, 200, "{}", approved.body);
    assert_eq!(approved.body["results"][0]["status"], "success");
    assert!(
        fake.group(&gid)
            .unwrap()
            .members
            .contains(&OTHER.to_owned())
    );
    assert_eq!(fake.problems(), Vec::<String>::new());
}

#[tokio::test]
async fn the_group_photo_reaches_whatsapp_as_a_jpeg() {
    let (fake, server, _dir) = paired().await;
    let res = server
        .post_form("/group", &[("title", "Pictured"), ("participants", FRIEND)])
        .await;
    let gid = res.body["results"]["group_id"].as_str().unwrap().to_owned();
    let form = reqwest::multipart::Form::new()
        .text("group_id", gid.clone())
        .part(
            "photo",
            reqwest::multipart::Part::bytes(crate::incoming::png())
                .file_name("p.png")
                .mime_str("image/png")
                .unwrap(),
        );
    let res = server.post_multipart("/group/photo", form).await;
    assert_eq!(res.status, 200, "{}\n{}", res.body, server.log());
    let picture = fake.group(&gid).unwrap().picture.expect("a picture");
    assert!(picture.jpeg.starts_with(&[0xFF, 0xD8, 0xFF]));
    assert_eq!(res.body["results"]["picture_id"], picture.id.to_string());
    assert_eq!(fake.problems(), Vec::<String>::new());
}
