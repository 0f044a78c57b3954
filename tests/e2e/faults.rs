//! The connection breaking under the server: it recovers by itself, fails clearly
//! while it cannot, and never loses the stored session.

use std::time::Duration;

use fake_whatsapp::Faults;

use crate::harness::wait_for;
use crate::send::{FRIEND, delivered, paired};

#[tokio::test]
async fn a_dropped_socket_is_reconnected_and_the_next_send_works() {
    let (fake, server, _dir) = paired().await;
    let before = fake.logins().len();
    assert!(fake.drop_connections() >= 1);
    wait_for("a new login", Duration::from_secs(20), || {
        fake.logins().len() > before
    })
    .await;
    server.wait_connected().await;

    let reply = server
        .post_form(
            "/send/message",
            &[("phone", FRIEND), ("message", "still here")],
        )
        .await;
    let copy = delivered(&fake, &server, &reply, FRIEND);
    assert_eq!(copy.message.conversation.as_deref(), Some("still here"));
}

#[tokio::test]
async fn while_whatsapp_is_unreachable_sends_fail_clearly_and_reconnect_recovers() {
    let (fake, server, _dir) = paired().await;
    fake.set_faults(Faults {
        refuse_connections: 1_000,
        ..Faults::default()
    });
    fake.drop_connections();
    server
        .wait_status("a lost connection", |s| s["is_connected"] == false)
        .await;

    let reply = server
        .post_form("/send/message", &[("phone", FRIEND), ("message", "lost")])
        .await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert_eq!(
        reply.message(),
        "you are not connect to whatsapp server, please reconnect"
    );
    assert!(fake.received().is_empty());

    // WhatsApp is back; /app/reconnect does not wait for the client's backoff.
    fake.set_faults(Faults::default());
    let res = server.get("/app/reconnect").await;
    assert_eq!(res.status, 200, "{}\n{}", res.body, server.log());
    assert_eq!(res.message(), "Reconnect success");
    let reply = server
        .post_form("/send/message", &[("phone", FRIEND), ("message", "back")])
        .await;
    delivered(&fake, &server, &reply, FRIEND);
}

#[tokio::test]
async fn an_unacknowledged_send_is_a_500_and_the_next_one_works() {
    let (fake, server, _dir) = paired().await;
    fake.set_faults(Faults {
        withhold_acks: 1,
        ..Faults::default()
    });
    let reply = server
        .post_form("/send/message", &[("phone", FRIEND), ("message", "no ack")])
        .await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    // The message names the id the fake received (and never acknowledged).
    let id = &fake.received()[0].id;
    assert_eq!(
        reply.message(),
        format!(
            "timed out after 4s waiting for WhatsApp's acknowledgement of message {id}; \
             delivery unknown"
        )
    );

    let reply = server
        .post_form("/send/message", &[("phone", FRIEND), ("message", "acked")])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn an_error_answer_from_whatsapp_is_a_500_in_the_envelope() {
    let (fake, server, _dir) = paired().await;
    fake.set_faults(Faults {
        iq_errors: [("privacy".to_owned(), 500)].into(),
        ..Faults::default()
    });
    let res = server.get("/user/my/privacy").await;
    assert_eq!(res.status, 500, "{}", res.body);
    assert!(
        res.message().starts_with("privacy settings query failed"),
        "{}",
        res.body
    );
    let res = server.get("/user/my/privacy").await;
    assert_eq!(res.status, 200, "{}", res.body);
}

#[tokio::test]
async fn kill_9_during_a_send_keeps_the_session() {
    let (fake, mut server, _dir) = paired().await;
    fake.set_faults(Faults {
        ack_delay_ms: 3_000,
        ..Faults::default()
    });
    let http = server.http.clone();
    let url = format!("{}/send/message", server.base);
    let pending = tokio::spawn(async move {
        let form = reqwest::multipart::Form::new()
            .text("phone", FRIEND)
            .text("message", "in flight");
        http.post(url).multipart(form).send().await
    });
    wait_for("the send to reach WhatsApp", Duration::from_secs(5), || {
        !fake.received().is_empty()
    })
    .await;
    server.kill_and_restart().await;
    assert!(
        pending.await.unwrap().is_err(),
        "the killed server answered"
    );

    fake.set_faults(Faults::default());
    server.wait_connected().await;
    assert_eq!(fake.devices().len(), 1, "no new pairing was needed");
    assert_eq!(fake.logins().last().unwrap().pattern, "Ik");
    let reply = server
        .post_form("/send/message", &[("phone", FRIEND), ("message", "after")])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        fake.received()
            .iter()
            .any(|r| r.message.conversation.as_deref() == Some("after"))
    );
}
