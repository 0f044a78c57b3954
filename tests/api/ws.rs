//! `/ws`: who may open it, which account's frames a socket hears, Go's frames.

use base64::Engine;
use serde_json::{Value, json};

use crate::common::{Socket, ws_connect, ws_frame, ws_send};
use crate::helpers::TestApp;

const OPERATOR: (&str, &str) = ("admin", "secret");

fn basic() -> String {
    let pair = format!("{}:{}", OPERATOR.0, OPERATOR.1);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// A server with the accounts `default` and `second`, behind basic auth.
async fn two_accounts() -> TestApp {
    let app = TestApp::spawn_with(&["--api-compat", "v9", "--basic-auth", "admin:secret"]).await;
    let added = app
        .client
        .post(app.url("/devices"))
        .header("authorization", basic())
        .json(&json!({"device_id": "second"}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 200);
    app
}

async fn set_webhook(app: &TestApp, account: &str) {
    let res = app
        .client
        .patch(app.url(&format!("/devices/{account}/webhook")))
        .header("authorization", basic())
        .json(&json!({"webhook_url": "https://hooks.example.com/in"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

async fn operator_socket(app: &TestApp, path: &str) -> Socket {
    ws_connect(&app.base, path, &[("authorization", &basic())])
        .await
        .unwrap()
}

fn devices_of(frame: &Value) -> Vec<String> {
    frame["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn ws_takes_the_api_credentials_and_refuses_other_sites() {
    let app = two_accounts().await;
    let get = |headers: Vec<(&'static str, String)>| {
        let mut req = app.client.get(app.url("/ws"));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get(vec![]).await, 401);
    assert!(ws_connect(&app.base, "/ws", &[]).await.is_err());
    // Not a WebSocket request: 426.
    assert_eq!(get(vec![("authorization", basic())]).await, 426);
    // A page of another site may not open it, credentials or not.
    let cross = vec![
        ("authorization", basic()),
        ("origin", "https://evil.example".to_owned()),
    ];
    assert_eq!(get(cross).await, 403);
    let refused = ws_connect(
        &app.base,
        "/ws",
        &[
            ("authorization", &basic()),
            ("origin", "https://evil.example"),
        ],
    )
    .await;
    assert!(refused.is_err());

    // The header, or (browsers) the query parameter, from this server's own page.
    let encoded = base64::engine::general_purpose::STANDARD.encode("admin:secret");
    let own_origin = app.base.clone();
    let mut by_query = ws_connect(
        &app.base,
        &format!("/ws?authorization={encoded}"),
        &[("origin", &own_origin)],
    )
    .await
    .expect("a same-site socket with the credentials in the query");
    ws_send(&mut by_query, r#"{"code":"FETCH_DEVICES"}"#).await;
    let listed = ws_frame(&mut by_query).await.unwrap();
    assert_eq!(listed["code"], "LIST_DEVICES");
    let wrong = base64::engine::general_purpose::STANDARD.encode("admin:guess");
    assert!(
        ws_connect(&app.base, &format!("/ws?authorization={wrong}"), &[])
            .await
            .is_err()
    );

    // A frame that is not JSON ends the socket, as in Go.
    ws_send(&mut by_query, "hello").await;
    assert!(ws_frame(&mut by_query).await.is_none());
}

#[tokio::test]
async fn cors_for_any_origin_does_not_open_ws_to_other_sites() {
    let app = TestApp::spawn_with(&["--basic-auth", "admin:secret", "--cors-origins", "*"]).await;
    let status = |path: &str| {
        let req = app
            .client
            .get(app.url(path))
            .header("authorization", basic())
            .header("origin", "https://evil.example");
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        status("/app/status").await,
        200,
        "the API is open to any page"
    );
    assert_eq!(status("/ws").await, 403, "its socket is not");
}

#[tokio::test]
async fn frames_name_their_account_and_a_socket_may_hear_one() {
    let app = two_accounts().await;
    let mut all = operator_socket(&app, "/ws").await;
    let mut second = operator_socket(&app, "/ws?device_id=second").await;
    let unknown = ws_connect(
        &app.base,
        "/ws?device_id=nobody",
        &[("authorization", &basic())],
    )
    .await;
    assert!(unknown.is_err(), "an unknown account is refused");

    set_webhook(&app, "default").await;
    set_webhook(&app, "second").await;
    let frame = ws_frame(&mut all).await.unwrap();
    assert_eq!(
        frame,
        json!({
            "code": "DEVICE_WEBHOOK_CONFIG_UPDATED",
            "message": "Device default webhook config updated",
            "result": {"device_id": "default"},
            "device_id": "default",
        })
    );
    assert_eq!(ws_frame(&mut all).await.unwrap()["device_id"], "second");
    // The socket of `second` never heard `default`'s change.
    let frame = ws_frame(&mut second).await.unwrap();
    assert_eq!(frame["code"], "DEVICE_WEBHOOK_CONFIG_UPDATED");
    assert_eq!(frame["device_id"], "second");

    // LIST_DEVICES answers the asking socket, with the accounts it hears.
    ws_send(&mut second, r#"{"code":"FETCH_DEVICES"}"#).await;
    let listed = ws_frame(&mut second).await.unwrap();
    assert_eq!(listed["code"], "LIST_DEVICES");
    assert_eq!(listed["message"], "Device found");
    assert_eq!(devices_of(&listed), ["second"]);
    ws_send(&mut all, r#"{"code":"FETCH_DEVICES"}"#).await;
    let listed = ws_frame(&mut all).await.unwrap();
    assert_eq!(devices_of(&listed), ["default", "second"]);

    // A logout through /devices, with Go's device list (of the accounts heard).
    let out = app
        .client
        .post(app.url("/devices/second/logout"))
        .header("authorization", basic())
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    let frame = ws_frame(&mut second).await.unwrap();
    assert_eq!(frame["code"], "DEVICE_LOGGED_OUT");
    assert_eq!(frame["message"], "Device second logged out (slot kept)");
    assert_eq!(frame["result"]["device_id"], "second");
    let listed: Vec<&str> = frame["result"]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["second"]);
}

#[tokio::test]
async fn an_account_key_hears_its_own_account_only() {
    let app = two_accounts().await;
    let key = app.add_account_with_key("third").await;
    let bearer = format!("Bearer {key}");
    let named_other = ws_connect(
        &app.base,
        "/ws?device_id=second",
        &[("authorization", &bearer)],
    )
    .await;
    assert!(named_other.is_err(), "a key names no other account");
    let mut own = ws_connect(&app.base, "/ws", &[("authorization", &bearer)])
        .await
        .unwrap();
    set_webhook(&app, "second").await;
    set_webhook(&app, "third").await;
    let frame = ws_frame(&mut own).await.unwrap();
    assert_eq!(frame["device_id"], "third");
    ws_send(&mut own, r#"{"code":"FETCH_DEVICES"}"#).await;
    assert_eq!(devices_of(&ws_frame(&mut own).await.unwrap()), ["third"]);
}
