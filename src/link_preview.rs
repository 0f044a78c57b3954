//! The preview of a link: the page's title, description and image, read from its
//! Open Graph tags (or `<title>` and the description meta tag), fetched under the
//! same address rules as every URL the server fetches, with a short time limit and
//! size caps. A page that cannot be read gives no preview, never an error.

use std::path::Path;

use scraper::{Html, Selector};

use crate::fetch::Fetcher;
use crate::media::image::process as process_image;

/// Most of a page read for its tags.
const MAX_PAGE: u64 = 1024 * 1024;
/// Largest preview image fetched.
const MAX_IMAGE: u64 = 5 * 1024 * 1024;
/// Longest title and description kept.
const MAX_TEXT: usize = 300;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preview {
    pub title: Option<String>,
    pub description: Option<String>,
    /// A small JPEG of the page's image.
    pub thumbnail: Option<Vec<u8>>,
}

/// The preview of `url` (blocking: run it on the blocking pool).
pub fn preview(fetcher: &Fetcher, url: &str, temp_dir: &Path) -> Preview {
    let page = match fetcher.download(url, temp_dir, MAX_PAGE) {
        Ok(page) => page,
        Err(e) => {
            tracing::debug!(error = %e, "no link preview: the page cannot be fetched");
            return Preview::default();
        }
    };
    let is_html = page
        .content_type
        .as_deref()
        .is_none_or(|t| t.to_ascii_lowercase().contains("html"));
    let Ok(bytes) = std::fs::read(&page.path) else {
        return Preview::default();
    };
    if !is_html {
        return Preview::default();
    }
    let tags = tags_of(&String::from_utf8_lossy(&bytes));
    let thumbnail = tags.image.as_deref().and_then(|src| {
        let image_url = absolute(url, src)?;
        let image = fetcher.download(&image_url, temp_dir, MAX_IMAGE).ok()?;
        let bytes = std::fs::read(&image.path).ok()?;
        process_image(bytes, false).ok().map(|p| p.thumbnail)
    });
    Preview {
        title: tags.title,
        description: tags.description,
        thumbnail,
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Tags {
    title: Option<String>,
    description: Option<String>,
    image: Option<String>,
}

/// The Open Graph tags of a page, falling back to `<title>` and the description.
fn tags_of(html: &str) -> Tags {
    let doc = Html::parse_document(html);
    let meta = |selector: &str| -> Option<String> {
        let selector = Selector::parse(selector).ok()?;
        doc.select(&selector)
            .filter_map(|e| e.value().attr("content"))
            .map(clean)
            .find(|v| !v.is_empty())
    };
    let title = meta(r#"meta[property="og:title"]"#).or_else(|| {
        let selector = Selector::parse("title").ok()?;
        doc.select(&selector)
            .map(|e| clean(&e.text().collect::<String>()))
            .find(|t| !t.is_empty())
    });
    Tags {
        title,
        description: meta(r#"meta[property="og:description"]"#)
            .or_else(|| meta(r#"meta[name="description"]"#)),
        image: meta(r#"meta[property="og:image"]"#),
    }
}

/// Whitespace collapsed, at most [`MAX_TEXT`] characters.
fn clean(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(MAX_TEXT)
        .collect()
}

/// `src` resolved against the page's `base` URL (absolute, root-relative or
/// scheme-relative).
fn absolute(base: &str, src: &str) -> Option<String> {
    if src.starts_with("http://") || src.starts_with("https://") {
        return Some(src.to_owned());
    }
    let (scheme, rest) = base.split_once("://")?;
    if let Some(rest_src) = src.strip_prefix("//") {
        return Some(format!("{scheme}://{rest_src}"));
    }
    let host = rest.split(['/', '?', '#']).next()?;
    if src.starts_with('/') {
        return Some(format!("{scheme}://{host}{src}"));
    }
    let dir = base.rsplit_once('/').map_or(base, |(d, _)| d);
    Some(format!("{dir}/{src}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_graph_tags_win_and_plain_tags_are_the_fallback() {
        let page = r#"<html><head><title> Plain
            title </title><meta name="description" content="plain description">
            <meta property="og:title" content="OG title"><meta property="og:image" content="/i.png">
            </head><body></body></html>"#;
        assert_eq!(
            tags_of(page),
            Tags {
                title: Some("OG title".into()),
                description: Some("plain description".into()),
                image: Some("/i.png".into()),
            }
        );
        let plain = "<title>Just a title</title>";
        assert_eq!(tags_of(plain).title.as_deref(), Some("Just a title"));
        assert_eq!(tags_of("not html at all").title, None);
    }

    #[test]
    fn image_sources_resolve_against_the_page() {
        let page = "https://example.com/blog/post.html";
        assert_eq!(
            absolute(page, "/i.png").unwrap(),
            "https://example.com/i.png"
        );
        assert_eq!(
            absolute(page, "i.png").unwrap(),
            "https://example.com/blog/i.png"
        );
        assert_eq!(
            absolute(page, "//cdn.example.com/i.png").unwrap(),
            "https://cdn.example.com/i.png"
        );
        assert_eq!(
            absolute(page, "http://x.org/a.png").unwrap(),
            "http://x.org/a.png"
        );
    }
}
