//! The web dashboard at `/`: one page embedded in the binary that logs in by QR and
//! tries every route. Nothing is loaded from other hosts. Scripts and styles are served
//! under names that carry a hash of their content, so browsers may cache them for good;
//! the page itself is revalidated on every load.

use std::hash::{DefaultHasher, Hasher};
use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Server;
use super::response::ApiError;

const INDEX_TEMPLATE: &str = include_str!("dashboard/index.html");

/// What the page may load: only this server. QR images are same-origin PNGs.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
    base-uri 'none'; frame-ancestors 'none'";

struct Asset {
    /// `app-<hash>.js`: changes whenever the content does.
    name: String,
    content_type: &'static str,
    body: &'static [u8],
}

struct Dashboard {
    index: String,
    assets: Vec<Asset>,
}

static DASHBOARD: LazyLock<Dashboard> = LazyLock::new(|| {
    let assets = vec![
        asset(
            "app",
            "js",
            "text/javascript; charset=utf-8",
            include_bytes!("dashboard/app.js"),
        ),
        asset(
            "app",
            "css",
            "text/css; charset=utf-8",
            include_bytes!("dashboard/app.css"),
        ),
    ];
    let index = assets.iter().fold(INDEX_TEMPLATE.to_owned(), |page, a| {
        let ext = a.name.rsplit('.').next().unwrap_or_default();
        page.replace(&format!("{{{{app.{ext}}}}}"), &a.name)
    });
    Dashboard { index, assets }
});

fn asset(stem: &str, ext: &str, content_type: &'static str, body: &'static [u8]) -> Asset {
    // Only for cache busting: a name is stable for a given build and content.
    let mut hasher = DefaultHasher::new();
    hasher.write(body);
    Asset {
        name: format!("{stem}-{:016x}.{ext}", hasher.finish()),
        content_type,
        body,
    }
}

pub fn router() -> Router<Server> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{name}", get(asset_file))
}

async fn index(
    axum::extract::State(state): axum::extract::State<Server>,
    sent: Option<axum::Extension<super::SentUri>>,
) -> Response {
    // Under --base-path the page must be at `/prefix/` (with the slash), or its
    // relative links would leave the prefix.
    let prefix = state.limits.base_path.as_str();
    if !prefix.is_empty() && sent.is_none() {
        return axum::response::Redirect::permanent(&format!("{prefix}/")).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        DASHBOARD.index.clone(),
    )
        .into_response()
}

async fn asset_file(Path(name): Path<String>) -> Result<Response, ApiError> {
    let asset = DASHBOARD
        .assets
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, format!("Cannot GET /assets/{name}"))
        })?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        asset.body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_links_every_asset_by_its_hashed_name() {
        let page = &DASHBOARD.index;
        assert!(!page.contains("{{"), "a placeholder is left: {page}");
        for asset in &DASHBOARD.assets {
            assert!(
                page.contains(&format!("\"assets/{}\"", asset.name)),
                "{} is not linked",
                asset.name
            );
        }
    }

    #[test]
    fn a_change_of_content_changes_the_name() {
        let a = asset("app", "js", "text/javascript", b"one");
        let b = asset("app", "js", "text/javascript", b"two");
        assert_ne!(a.name, b.name);
        assert!(a.name.starts_with("app-") && a.name.ends_with(".js"));
    }
}
