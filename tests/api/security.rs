//! Who may call the API: basic auth, cross-site browser requests, DNS rebinding, CORS.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::sync::atomic::Ordering;

use crate::helpers::{Reply, TestApp, reply};

/// Every kind of route: the dashboard, its assets' folder, statics, app, user, send.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/statics/images/qrcode/x.png"),
    ("GET", "/app/status"),
    ("GET", "/app/login"),
    ("GET", "/app/logout"),
    ("GET", "/app/reconnect"),
    ("GET", "/user/info?phone=6289685024091"),
    ("GET", "/user/my/groups"),
    ("POST", "/send/message"),
    ("POST", "/send/image"),
    ("GET", "/nope"),
];

async fn call(app: &TestApp, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let req = match method {
        "GET" => app.client.get(app.url(path)),
        _ => app.client.post(app.url(path)).multipart(
            reqwest::multipart::Form::new()
                .text("phone", "6289685024091")
                .text("message", "hi"),
        ),
    };
    reply(req.headers(map).send().await.unwrap()).await
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

fn assert_untouched(app: &TestApp) {
    assert!(app.wa.sent().is_empty(), "something was sent");
    assert_eq!(app.wa.logouts.load(Ordering::SeqCst), 0, "logged out");
    assert_eq!(app.wa.reconnects.load(Ordering::SeqCst), 0, "reconnected");
}

#[tokio::test]
async fn with_basic_auth_every_route_needs_valid_credentials() {
    let app = TestApp::spawn_with(&["--basic-auth", "kemal:secret,toni:pa:ss"]).await;
    let wrong = basic("kemal", "guess");
    let unknown = basic("eve", "secret");
    for (method, path) in ROUTES {
        for headers in [
            vec![],
            vec![("authorization", wrong.as_str())],
            vec![("authorization", unknown.as_str())],
            vec![("authorization", "Bearer secret")],
            vec![("authorization", "Basic !!!not-base64")],
        ] {
            let res = call(&app, method, path, &headers).await;
            res.assert_error(401, "Unauthorized");
            assert_eq!(
                res.headers["www-authenticate"], r#"Basic realm="whatsapp-api", charset="UTF-8""#,
                "{method} {path}"
            );
        }
    }
    assert_untouched(&app);

    // Both accounts work, on every route (whatever the route itself answers).
    for (user, password) in [("kemal", "secret"), ("toni", "pa:ss")] {
        let auth = basic(user, password);
        let res = call(&app, "POST", "/send/message", &[("authorization", &auth)]).await;
        assert_eq!(res.status, 200, "{user}: {}", res.text);
    }
    assert_eq!(app.wa.sent().len(), 2, "each account sent one message");
    for (user, password) in [("kemal", "secret"), ("toni", "pa:ss")] {
        let auth = basic(user, password);
        for (method, path) in ROUTES {
            let res = call(&app, method, path, &[("authorization", auth.as_str())]).await;
            assert_ne!(res.status, 401, "{user}: {method} {path}: {}", res.text);
        }
    }
}

#[tokio::test]
async fn without_auth_a_cross_site_browser_request_changes_nothing() {
    let app = TestApp::spawn().await;
    let host = app.base.trim_start_matches("http://").to_owned();
    let cross_site = [
        vec![("origin", "https://evil.example")],
        vec![("origin", "null")],
        // Another port on the same machine is another origin.
        vec![
            ("origin", "http://localhost:8080"),
            ("sec-fetch-site", "same-site"),
        ],
        // An <img> or a link: no Origin, the browser says where it comes from.
        vec![("sec-fetch-site", "cross-site")],
    ];
    for (method, path) in [
        ("POST", "/send/message"),
        ("POST", "/send/image"),
        ("POST", "/mcp"),
        ("GET", "/app/logout"),
        ("GET", "/app/login"),
        ("GET", "/app/reconnect"),
    ] {
        for headers in &cross_site {
            let res = call(&app, method, path, headers).await;
            assert_eq!(res.status, 403, "{method} {path} {headers:?}: {}", res.text);
            assert!(
                res.body["message"]
                    .as_str()
                    .unwrap()
                    .contains("--cors-origins"),
                "{}",
                res.text
            );
        }
    }
    assert_untouched(&app);

    // The same requests from curl (no browser headers) or from the page itself work.
    let own_origin = format!("http://{host}");
    for headers in [
        vec![],
        vec![
            ("origin", own_origin.as_str()),
            ("sec-fetch-site", "same-origin"),
        ],
    ] {
        let res = call(&app, "POST", "/send/message", &headers).await;
        assert_eq!(res.status, 200, "{headers:?}: {}", res.text);
    }
    // Reading is not changing: a cross-site GET of the status passes the guard (the
    // browser still may not read it without CORS).
    let res = call(
        &app,
        "GET",
        "/app/status",
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(res.status, 200);
    assert!(!res.headers.contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn an_allowed_origin_may_call_and_read() {
    let app = TestApp::spawn_with(&[
        "--cors-origins",
        "https://crm.example.com/,https://b.example",
    ])
    .await;
    let res = call(
        &app,
        "POST",
        "/send/message",
        &[
            ("origin", "https://crm.example.com"),
            ("sec-fetch-site", "cross-site"),
        ],
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(
        res.headers["access-control-allow-origin"],
        "https://crm.example.com"
    );
    let res = call(
        &app,
        "POST",
        "/send/message",
        &[("origin", "https://c.example")],
    )
    .await;
    assert_eq!(res.status, 403);

    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/send/message"))
        .header("origin", "https://b.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,authorization",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://b.example"
    );
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for h in ["content-type", "authorization", "x-device-id", "x-api-key"] {
        assert!(allowed.contains(h), "{allowed}");
    }
    let methods = preflight.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_uppercase();
    for m in ["PATCH", "DELETE"] {
        assert!(methods.contains(m), "the device API's methods: {methods}");
    }

    let any = TestApp::spawn_with(&["--cors-origins", "*"]).await;
    let res = call(
        &any,
        "POST",
        "/send/message",
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(res.status, 200, "`*` opts every origin in");
    assert_eq!(res.headers["access-control-allow-origin"], "*");
}

/// A cache must not serve an answer made for one origin (or for none) to another:
/// every answer says it varies by origin, with an `Origin` or without one.
#[tokio::test]
async fn every_answer_varies_by_origin() {
    let app = TestApp::spawn_with(&["--cors-origins", "https://crm.example.com"]).await;
    for headers in [vec![], vec![("origin", "https://crm.example.com")]] {
        for path in ["/app/status", "/no/such/route"] {
            let res = call(&app, "GET", path, &headers).await;
            let vary: Vec<_> = res
                .headers
                .get_all("vary")
                .iter()
                .flat_map(|v| v.to_str().unwrap().split(','))
                .map(|v| v.trim().to_lowercase())
                .collect();
            assert!(
                vary.iter().any(|v| v == "origin"),
                "{path} {headers:?}: vary {vary:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_rebinding_host_is_refused_for_browsers_only() {
    let app = TestApp::spawn_with(&["--allowed-hosts", "wa.example.com"]).await;
    let evil = [("host", "rebind.evil.example:3000")];
    for headers in [
        vec![evil[0], ("origin", "http://rebind.evil.example:3000")],
        vec![evil[0], ("sec-fetch-site", "same-origin")],
    ] {
        for (method, path) in [
            ("GET", "/user/my/groups"),
            ("GET", "/"),
            ("POST", "/send/message"),
        ] {
            let res = call(&app, method, path, &headers).await;
            assert_eq!(res.status, 403, "{method} {path}: {}", res.text);
            let message = res.body["message"].as_str().unwrap();
            assert!(message.contains("--allowed-hosts"), "{message}");
        }
    }
    assert!(app.wa.sent().is_empty());
    // curl with the same Host: not a browser, not affected.
    let res = call(&app, "POST", "/send/message", &evil).await;
    assert_eq!(res.status, 200, "{}", res.text);
    // A listed name works for browsers.
    let res = call(
        &app,
        "POST",
        "/send/message",
        &[
            ("host", "wa.example.com"),
            ("origin", "http://wa.example.com"),
        ],
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text);
    // With basic auth, the host check is not needed (the attacker has no password).
    let authed = TestApp::spawn_with(&["-b", "u:p"]).await;
    let auth = basic("u", "p");
    let res = call(
        &authed,
        "GET",
        "/user/my/groups",
        &[
            evil[0],
            ("sec-fetch-site", "same-origin"),
            ("authorization", auth.as_str()),
        ],
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(
        res.body["message"], "Success get list groups",
        "{}",
        res.text
    );
}
