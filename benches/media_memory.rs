//! Memory for big media: the real server binary, paired with the fake WhatsApp server,
//! sends a 30 MB document and a 30 MB video (sent as it is, without re-encoding).
//! Reported: RSS idle after login, and how much each send raised the peak RSS
//! (VmHWM), against the file's size in the same run.
//!
//! `cargo bench --features e2e --bench media_memory` (`MEDIA_MB=n` to change the size).

#[path = "../tests/common/mod.rs"]
#[allow(dead_code)]
mod common;
#[path = "../tests/e2e/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::time::Duration;

use fake_whatsapp::{ContactInfo, FakeWhatsApp};
use harness::Server;

const FRIEND: &str = "6289685028129";

/// About 30 MB of losslessly encoded noise: a video that does not compress.
fn noise_video(dir: &std::path::Path) -> Vec<u8> {
    common::lavfi(
        dir,
        "noise.mp4",
        "nullsrc=s=640x480:r=25,geq=random(1)*255:128:128",
        &[
            "-t",
            "2.5",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-qp",
            "0",
            "-pix_fmt",
            "yuv420p",
        ],
    )
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

#[tokio::main]
async fn main() {
    let size_mb: usize = std::env::var("MEDIA_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let fake = FakeWhatsApp::start_local().await.unwrap();
    fake.add_contact(FRIEND, ContactInfo::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &fake,
        dir.path(),
        &["--max-file-size-mb", "200", "--max-video-size-mb", "200"],
    )
    .await;
    server.pair(&fake).await;
    // Let the login settle (prekey upload, app state) before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = server.rss_kb();
    let idle_peak = server.peak_rss_kb();
    let (idle_anon, idle_file) = server.rss_split_kb();

    // Incompressible bytes: a document of `size_mb` MB.
    let mut data = vec![0u8; size_mb * 1_000_000];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let form = reqwest::multipart::Form::new().text("phone", FRIEND).part(
        "file",
        reqwest::multipart::Part::bytes(data).file_name("big.bin"),
    );
    let res = server.post_multipart("/send/file", form).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let after_file = server.peak_rss_kb();

    // A video of the same size sent as it is (mp4, not compressed).
    let video = noise_video(dir.path());
    let form = reqwest::multipart::Form::new().text("phone", FRIEND).part(
        "video",
        reqwest::multipart::Part::bytes(video.clone())
            .file_name("big.mp4")
            .mime_str("video/mp4")
            .unwrap(),
    );
    let res = server.post_multipart("/send/video", form).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let after_video = server.peak_rss_kb();
    let received = fake.received();
    assert!(
        received.iter().any(|r| r
            .media
            .as_ref()
            .is_some_and(|m| m.len() == size_mb * 1_000_000)),
        "the document arrived whole"
    );
    assert!(
        received
            .iter()
            .any(|r| r.media.as_ref().is_some_and(|m| *m == video)),
        "the video arrived whole"
    );
    assert_eq!(fake.problems(), Vec::<String>::new());

    println!(
        "media_memory: a {size_mb} MB document, then a {:.1} MB video sent as is",
        video.len() as f64 / 1e6
    );
    println!(
        "  RSS idle after login: {:.1} MB (peak so far {:.1} MB)",
        mb(idle),
        mb(idle_peak)
    );
    println!(
        "    of which heap and other anonymous memory {:.1} MB, file-backed pages (code) {:.1} MB",
        mb(idle_anon),
        mb(idle_file)
    );
    println!(
        "  peak RSS after the document: {:.1} MB (+{:.1} MB, {:.2}x the file)",
        mb(after_file),
        mb(after_file.saturating_sub(idle_peak)),
        mb(after_file.saturating_sub(idle_peak)) / size_mb as f64
    );
    println!(
        "  peak RSS after the video: {:.1} MB (+{:.1} MB over the idle peak)",
        mb(after_video),
        mb(after_video.saturating_sub(idle_peak)),
    );
}
