//! `/mcp` behind the REST API's credentials, through a real MCP client (the
//! official TypeScript SDK): an account's API key reaches that account only, and
//! `--mcp-enabled=false` takes the endpoint away.

use base64::Engine as _;
use serde_json::json;

use crate::common::mcp_client;
use crate::helpers::TestApp;

const ANN_PHONE: &str = "6289685024091";
const OTHER_DEVICE: &str = "6281111111111:3@s.whatsapp.net";

fn basic(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

#[tokio::test]
async fn mcp_takes_the_rest_credentials_and_a_key_reaches_its_account_only() {
    let app = TestApp::spawn_with(&["--basic-auth", "admin:secret"]).await;
    let url = app.url("/mcp");

    // No credentials, wrong ones: refused before any MCP.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let bare = app.client.post(&url).json(&init).send().await.unwrap();
    assert_eq!(bare.status(), 401);
    let wrong = app
        .client
        .post(&url)
        .header("authorization", basic("admin", "guess"))
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    // The operator: any account, by device_id or X-Device-Id.
    let key = app.add_account_with_key("second").await;
    app.account("second").wa.state.lock().unwrap().device = Some(OTHER_DEVICE.into());
    let text = |device: Option<&str>, message: &str| {
        let mut args = json!({"type": "text", "phone": ANN_PHONE, "message": message});
        if let Some(device) = device {
            args["device_id"] = json!(device);
        }
        json!({"name": "whatsapp_send", "arguments": args})
    };
    let operator = basic("admin", "secret");
    let out = mcp_client(
        &url,
        Some(&operator),
        Some("default"),
        &json!([
            text(None, "one"),
            text(Some("second"), "two"),
            text(Some("nobody"), "x")
        ]),
    )
    .await;
    let results = out["results"].as_array().unwrap();
    assert_eq!(out["tools"].as_array().unwrap().len(), 7);
    for ok in &results[..2] {
        assert!(ok["isError"] != true, "{ok}");
    }
    assert_eq!(results[2]["isError"], true, "{}", results[2]);
    assert_eq!(app.wa.sent().len(), 1, "X-Device-Id chose default");
    assert_eq!(
        app.account("second").wa.sent().len(),
        1,
        "device_id chose second"
    );

    // The account's key: its own account, named or not; another is not found.
    let bearer = format!("Bearer {key}");
    let out = mcp_client(
        &url,
        Some(&bearer),
        None,
        &json!([
            text(None, "three"),
            text(Some("default"), "never"),
            text(Some("6281111111111"), "four")
        ]),
    )
    .await;
    let results = out["results"].as_array().unwrap();
    assert!(results[0]["isError"] != true, "{}", results[0]);
    assert_eq!(results[1]["isError"], true, "{}", results[1]);
    assert!(
        results[1]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("device not found"),
        "{}",
        results[1]
    );
    assert!(results[2]["isError"] != true, "{}", results[2]);
    assert_eq!(app.wa.sent().len(), 1, "the key never reached default");
    assert_eq!(app.account("second").wa.sent().len(), 3);
}

#[tokio::test]
async fn mcp_can_be_turned_off() {
    let app = TestApp::spawn_with(&["--mcp-enabled=false"]).await;
    let res = app
        .client
        .post(app.url("/mcp"))
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}
