//! The two wire dialects, route by route: v2.3.0 (the default) and the later Go
//! versions' (`--api-compat v9`). Same routes, same handlers; only the envelope's
//! codes and statuses, the `type` rule, QR paths and `/user/info`'s shape differ.

use reqwest::Method;
use serde_json::{Value, json};
use whatsapp_api::whatsapp::{SessionStatus, UserDetails};

use crate::helpers::{Reply, TestApp};

const PHONE: &str = "6289685024091";

#[derive(Clone, Copy, Debug)]
enum Mode {
    V2,
    V9,
}

async fn app(mode: Mode, extra: &[&str]) -> TestApp {
    let mut args = match mode {
        Mode::V2 => vec![],
        Mode::V9 => vec!["--api-compat", "v9"],
    };
    args.extend_from_slice(extra);
    let app = TestApp::spawn_with(&args).await;
    app.wa.state.lock().unwrap().user = Some(UserDetails::default());
    app
}

/// One case: how to set the session up, the request, and per mode the expected
/// status and `code`.
struct Case {
    name: &'static str,
    setup: fn(&TestApp),
    method: Method,
    path: &'static str,
    form: &'static [(&'static str, &'static str)],
    v2: (u16, Value),
    v9: (u16, &'static str),
}

fn connected(_: &TestApp) {}

fn logged_out(app: &TestApp) {
    app.wa.set_status(SessionStatus::LoggedOut);
}

fn pairing(app: &TestApp) {
    app.wa.set_status(SessionStatus::LoggedOut);
    app.wa
        .set_pairing("2@ref,key,identity,adv", std::time::Duration::from_secs(60));
}

fn unknown_user(app: &TestApp) {
    app.wa.state.lock().unwrap().user = None;
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "a send",
            setup: connected,
            method: Method::POST,
            path: "/send/message",
            form: &[("phone", PHONE), ("message", "hi")],
            v2: (200, json!(200)),
            v9: (200, "SUCCESS"),
        },
        Case {
            name: "a blank field",
            setup: connected,
            method: Method::POST,
            path: "/send/message",
            form: &[("phone", PHONE)],
            v2: (400, json!(400)),
            v9: (400, "VALIDATION_ERROR"),
        },
        Case {
            name: "logged out",
            setup: logged_out,
            method: Method::POST,
            path: "/send/message",
            form: &[("phone", PHONE), ("message", "hi")],
            v2: (500, json!(500)),
            v9: (401, "AUTHENTICATION_ERROR"),
        },
        Case {
            name: "already logged in",
            setup: connected,
            method: Method::GET,
            path: "/app/login",
            form: &[],
            v2: (500, json!(500)),
            v9: (400, "ALREADY_LOGGED_IN"),
        },
        Case {
            name: "pairing by code",
            setup: pairing,
            method: Method::GET,
            path: "/app/login-with-code?phone=%2B62%20896-8502-4091",
            form: &[],
            v2: (200, json!(200)),
            v9: (200, "SUCCESS"),
        },
        Case {
            name: "pairing by code without a phone",
            setup: pairing,
            method: Method::GET,
            path: "/app/login-with-code",
            form: &[],
            v2: (400, json!(400)),
            v9: (400, "VALIDATION_ERROR"),
        },
        Case {
            name: "pairing by code when logged in",
            setup: connected,
            method: Method::GET,
            path: "/app/login-with-code?phone=6289685024091",
            form: &[],
            v2: (500, json!(500)),
            v9: (400, "ALREADY_LOGGED_IN"),
        },
        Case {
            name: "not on WhatsApp",
            setup: unknown_user,
            method: Method::GET,
            path: "/user/info?phone=6289685024091",
            form: &[],
            v2: (400, json!(400)),
            v9: (400, "INVALID_JID"),
        },
        Case {
            name: "an unknown route",
            setup: connected,
            method: Method::GET,
            path: "/nope",
            form: &[],
            v2: (404, json!(404)),
            v9: (404, "NOT_FOUND"),
        },
        Case {
            name: "the wrong method",
            setup: connected,
            method: Method::GET,
            path: "/send/message",
            form: &[],
            v2: (405, json!(405)),
            v9: (405, "METHOD_NOT_ALLOWED"),
        },
        Case {
            name: "status",
            setup: connected,
            method: Method::GET,
            path: "/app/status",
            form: &[],
            v2: (200, json!(200)),
            v9: (200, "SUCCESS"),
        },
    ]
}

async fn call(app: &TestApp, case: &Case) -> Reply {
    match case.method {
        Method::POST => app.post_form(case.path, case.form).await,
        _ => app.get(case.path).await,
    }
}

#[tokio::test]
async fn every_case_in_both_dialects() {
    for mode in [Mode::V2, Mode::V9] {
        for case in cases() {
            let app = app(mode, &[]).await;
            (case.setup)(&app);
            let res = call(&app, &case).await;
            let (status, code) = match mode {
                Mode::V2 => case.v2.clone(),
                Mode::V9 => (case.v9.0, json!(case.v9.1)),
            };
            let what = format!("{mode:?} {}: {}", case.name, res.text);
            assert_eq!(res.status, status, "{what}");
            assert_eq!(res.body["code"], code, "{what}");
            assert!(res.body["message"].is_string(), "{what}");
            let keys: Vec<&str> = res
                .body
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.as_str())
                .collect();
            match mode {
                // v2.3.0 always has `results`, null when empty.
                Mode::V2 => assert!(keys.contains(&"results"), "{what}"),
                // The later versions leave it out when empty.
                Mode::V9 => assert!(
                    !res.body.get("results").is_some_and(Value::is_null),
                    "{what}"
                ),
            }
            assert_eq!(
                res.headers["content-length"].to_str().unwrap(),
                res.text.len().to_string(),
                "{what}"
            );
        }
    }
}

#[tokio::test]
async fn v9_sends_answer_with_the_status_text_as_message_and_need_no_type() {
    let app = app(Mode::V9, &[]).await;
    let res = app
        .post_form(
            "/send/message",
            &[("phone", "120363025246125888"), ("message", "hi")],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["message"], res.body["results"]["status"]);
    assert!(res.body["results"]["message_id"].is_string());
    app.post_form("/send/message", &[("phone", PHONE), ("message", "hi")])
        .await;
    let sent = app.wa.sent();
    assert_eq!(
        sent[0].0.to_string(),
        "120363025246125888@g.us",
        "longer than 15: a group"
    );
    assert_eq!(sent[1].0.to_string(), format!("{PHONE}@s.whatsapp.net"));
    // In v2.3.0 the same number without `type` is a user, as it always was.
    let v2 = self::app(Mode::V2, &[]).await;
    v2.post_form(
        "/send/message",
        &[("phone", "120363025246125888"), ("message", "hi")],
    )
    .await;
    assert_eq!(
        v2.wa.sent()[0].0.to_string(),
        "120363025246125888@s.whatsapp.net"
    );
}

#[tokio::test]
async fn v9_user_info_lists_the_account_under_data() {
    let v9 = app(Mode::V9, &[]).await;
    let res = v9.get(&format!("/user/info?phone={PHONE}")).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let data = res.body["results"]["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert!(data[0]["devices"].is_array() && data[0]["name"].is_string());
    let v2 = app(Mode::V2, &[]).await;
    let res = v2.get(&format!("/user/info?phone={PHONE}")).await;
    assert!(res.body["results"]["devices"].is_array(), "{}", res.text);
}

#[tokio::test]
async fn v9_qr_codes_live_under_statics_qrcode() {
    for (mode, folder) in [
        (Mode::V2, "/statics/images/qrcode/"),
        (Mode::V9, "/statics/qrcode/"),
    ] {
        let app = app(mode, &[]).await;
        app.wa.set_status(SessionStatus::LoggedOut);
        app.wa
            .set_pairing("2@abc,def,ghi,jkl", std::time::Duration::from_secs(60));
        let res = app.get("/app/login").await;
        assert_eq!(res.status, 200, "{}", res.text);
        let link = res.body["results"]["qr_link"].as_str().unwrap();
        assert!(link.contains(folder), "{mode:?}: {link}");
        let png = reqwest::get(link).await.unwrap();
        assert_eq!(png.status(), 200, "{mode:?}: {link}");
    }
}

#[tokio::test]
async fn v9_basic_auth_failures_are_authentication_errors() {
    let app = app(Mode::V9, &["--basic-auth", "kemal:secret"]).await;
    let res = app.get("/app/status").await;
    assert_eq!(res.status, 401);
    assert_eq!(res.body["code"], "AUTHENTICATION_ERROR");
}

#[tokio::test]
async fn a_device_id_must_name_this_account() {
    let app = app(Mode::V9, &[]).await;
    let with = |id: &'static str| {
        let client = reqwest::Client::new();
        let url = app.url("/app/status");
        async move {
            let res = client
                .get(url)
                .header("X-Device-Id", id)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    let device: whatsapp_rust::Jid = crate::helpers::DEVICE_ID.parse().unwrap();
    let (status, body) = with("someone-else").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], "DEVICE_NOT_FOUND");
    assert_eq!(body["results"]["device_id"], "someone-else");
    let user: &'static str = Box::leak(device.user.to_string().into_boxed_str());
    assert_eq!(with(user).await.0, 200);
    let res = app.get(&format!("/app/status?device_id={user}")).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let res = app.get("/app/status?device_id=nope").await;
    assert_eq!(res.status, 404, "{}", res.text);
}

#[tokio::test]
async fn health_is_plain_text_and_needs_no_credentials() {
    for mode in [Mode::V2, Mode::V9] {
        let app = app(mode, &["--basic-auth", "kemal:secret"]).await;
        let res = reqwest::get(app.url("/health")).await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        assert_eq!(res.text().await.unwrap(), "OK");
        // Readiness, the same way: every account is open.
        let ready = reqwest::get(app.url("/ready")).await.unwrap();
        assert_eq!(ready.status(), 200);
        assert_eq!(ready.text().await.unwrap(), "OK");
        assert_eq!(
            app.get("/app/status").await.status,
            401,
            "the rest still needs them"
        );
    }
}

#[tokio::test]
async fn the_later_app_routes_answer_in_both_dialects() {
    for mode in [Mode::V2, Mode::V9] {
        let app = app(mode, &[]).await;
        let devices = app.get("/app/devices").await;
        assert_eq!(devices.status, 200, "{}", devices.text);
        assert_eq!(
            devices.body["results"],
            json!([{"name": "", "device": "default", "jid": crate::helpers::DEVICE_ID}])
        );
        let info = app.get("/app/info").await;
        assert_eq!(
            info.body["results"]["max_file_size"], 30_000_000,
            "{}",
            info.text
        );
        let status = app.get("/app/status").await;
        assert_eq!(status.body["results"]["jid"], crate::helpers::DEVICE_ID);
        app.wa.set_status(SessionStatus::LoggedOut);
        let devices = app.get("/app/devices").await;
        assert_eq!(devices.body["results"], json!([]), "{mode:?}");
    }
}
