//! openapi.yaml and the router agree: every route the code declares is in the spec,
//! every route in the spec is served (in both dialects).

use std::collections::BTreeSet;

use crate::helpers::TestApp;

type Routes = BTreeSet<(String, String)>;

/// `METHOD /path` of every operation under `paths:` in openapi.yaml.
fn spec_routes() -> Routes {
    let spec =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap();
    let mut routes = Routes::new();
    let mut in_paths = false;
    let mut path = None;
    let mut seen = std::collections::HashSet::new();
    for line in spec.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_paths = line.trim_end() == "paths:";
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(p) = line.strip_prefix("  ").filter(|l| l.starts_with('/')) {
            let p = p.trim_end().trim_end_matches(':').to_owned();
            // YAML keeps only one of two equal keys: the other's operations vanish.
            assert!(seen.insert(p.clone()), "openapi.yaml lists {p} twice");
            path = Some(p);
        } else if let Some(m) = line.strip_prefix("    ").filter(|l| !l.starts_with(' ')) {
            let method = m.trim_end().trim_end_matches(':');
            if ["get", "post", "put", "patch", "delete"].contains(&method) {
                routes.insert((method.to_uppercase(), path.clone().unwrap()));
            }
        }
    }
    routes
}

/// The modules whose routers `src/http/mod.rs` merges (`.merge(send::router())`).
fn merged_modules(dir: &str) -> Vec<String> {
    let source = std::fs::read_to_string(format!("{dir}mod.rs")).unwrap();
    source
        .split(".merge(")
        .skip(1)
        .filter_map(|piece| piece.split_once("::router()"))
        .map(|(module, _)| module.trim())
        .filter(|module| *module != "dashboard")
        .map(|module| format!("{module}.rs"))
        .collect()
}

/// `METHOD /path` of every `.route("…", get|post(…))` in the modules the router
/// merges (each declares full paths). The dashboard (`/`, `/assets`) is the UI, not
/// the API.
fn declared_routes() -> Routes {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/");
    let mut routes = Routes::new();
    let modules = merged_modules(dir);
    assert!(modules.len() >= 5, "the scan of mod.rs found {modules:?}");
    for file in &modules {
        let source = std::fs::read_to_string(format!("{dir}{file}")).unwrap();
        for piece in source.split(".route(").skip(1) {
            let rest = piece.trim_start();
            let Some(rest) = rest.strip_prefix('"') else {
                continue;
            };
            let (path, rest) = rest.split_once('"').unwrap();
            let rest = rest.trim_start().trim_start_matches(',').trim_start();
            let rest = rest.strip_prefix("axum::routing::").unwrap_or(rest);
            let method = rest.split('(').next().unwrap().trim();
            assert!(
                ["get", "post", "put", "patch", "delete"].contains(&method),
                "{file}: cannot read the method of route {path}: {method}"
            );
            routes.insert((method.to_uppercase(), path.to_owned()));
            // More methods chained on the same line: `get(a).post(b)`.
            let line = rest.lines().next().unwrap_or_default();
            for more in ["get", "post", "put", "patch", "delete"] {
                if line.contains(&format!(").{more}(")) {
                    routes.insert((more.to_uppercase(), path.to_owned()));
                }
            }
        }
    }
    routes
}

#[test]
fn every_declared_route_is_in_the_spec_and_the_reverse() {
    let (spec, declared) = (spec_routes(), declared_routes());
    assert!(declared.len() >= 20, "the scan found only {declared:?}");
    let undocumented: Vec<_> = declared.difference(&spec).collect();
    let unserved: Vec<_> = spec.difference(&declared).collect();
    assert!(
        undocumented.is_empty(),
        "not in openapi.yaml: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "in openapi.yaml, not in the router: {unserved:?}"
    );
}

#[tokio::test]
async fn every_route_in_the_spec_is_served_in_both_dialects() {
    for args in [&[][..], &["--api-compat", "v9"][..]] {
        let app = TestApp::spawn_with(args).await;
        for (method, path) in spec_routes() {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let res = app
                .client
                .request(method.clone(), app.url(&path))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let text = res.text().await.unwrap();
            let unrouted = text.contains(&format!("Cannot {method} {path}"));
            assert!(
                !unrouted && status != 405,
                "{args:?} {method} {path} is not routed: {status} {text}"
            );
        }
    }
}
