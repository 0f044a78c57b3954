//! Uploads made to turn ffmpeg against the server: HLS playlists and concat scripts
//! dressed up as videos, and an AVI whose embedded subtitle (a "GAB2" chunk) carries
//! such a playlist. None may make ffmpeg read a local file or fetch a URL: each is
//! refused, or sent without the smuggled content. A local listener stands for the
//! URL (any connection to it fails the test), and the first line of `/etc/passwd`
//! must appear in nothing that was uploaded or sent.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use whatsapp_api::media::ffmpeg::{self, Demuxer};
use whatsapp_api::whatsapp::{MediaKind, Outgoing};

use crate::common::{file_part, jpeg};
use crate::helpers::TestApp;

const PHONE: &str = "6289685024091";
const NOT_ALLOWED: &str = "your video type is not allowed. please use mp4/mkv";

/// A URL nobody should ever fetch: any connection to it is seen.
struct Canary {
    listener: TcpListener,
}

impl Canary {
    fn new() -> Canary {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Canary { listener }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.listener.local_addr().unwrap())
    }

    fn assert_untouched(&self) {
        match self.listener.accept() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("canary listener failed: {e}"),
            Ok((_, from)) => panic!("ffmpeg fetched the smuggled URL (from {from})"),
        }
    }
}

/// The first line of `/etc/passwd`, which no upload may carry.
fn passwd_line() -> Vec<u8> {
    let passwd = std::fs::read("/etc/passwd").unwrap();
    let line = passwd.split(|&b| b == b'\n').next().unwrap().to_vec();
    assert!(line.len() > 8, "a usable first line in /etc/passwd");
    line
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Nothing uploaded or sent holds a line of `/etc/passwd`, and no URL was fetched.
fn assert_nothing_leaked(app: &TestApp, canary: &Canary) {
    let needle = passwd_line();
    for (bytes, kind) in app.wa.uploads() {
        assert!(
            !contains(&bytes, &needle),
            "/etc/passwd leaked into a {kind:?} upload"
        );
    }
    for (_, message) in app.wa.sent() {
        if let Outgoing::Video { thumbnail, .. } = message {
            assert!(!contains(&thumbnail, &needle), "/etc/passwd in a thumbnail");
        }
    }
    canary.assert_untouched();
}

/// Playlists and scripts that would make ffmpeg open `/etc/passwd` or `canary`.
fn smuggling_texts(canary: &Canary) -> Vec<(&'static str, String)> {
    let url = canary.url("segment.ts");
    vec![
        (
            "hls",
            format!(
                "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\n/etc/passwd\n\
                 #EXTINF:10.0,\nfile:///etc/passwd\n#EXTINF:10.0,\n{url}\n#EXT-X-ENDLIST\n"
            ),
        ),
        (
            "hls through concat",
            format!(
                "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:1.0,\n\
                 concat:{url}|file:///etc/passwd\n#EXT-X-ENDLIST\n"
            ),
        ),
        (
            "ffconcat",
            format!("ffconcat version 1.0\nfile /etc/passwd\nfile '{url}'\n"),
        ),
    ]
}

fn video_form(bytes: Vec<u8>, name: &str, mime: &str) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .text("phone", PHONE)
        .text("compress", "true")
        .part("video", file_part(bytes, name, mime))
}

#[tokio::test]
async fn a_playlist_or_concat_script_sent_as_a_video_is_refused() {
    let app = TestApp::spawn().await;
    let canary = Canary::new();
    for (what, text) in smuggling_texts(&canary) {
        for (name, mime) in [
            ("clip.mp4", "video/mp4"),
            ("clip.mkv", "video/x-matroska"),
            ("clip.avi", "video/x-msvideo"),
        ] {
            let res = app
                .post_multipart("/send/video", video_form(text.clone().into(), name, mime))
                .await;
            assert_eq!(res.status, 400, "{what} as {name}: {}", res.text);
            res.assert_error(400, NOT_ALLOWED);
        }
    }
    assert!(app.wa.uploads().is_empty());
    assert!(app.wa.sent().is_empty());
    assert_nothing_leaked(&app, &canary);
    assert!(app.temp_files().is_empty(), "{:?}", app.temp_files());
}

/// Appends a RIFF chunk (padded to an even length).
fn chunk(out: &mut Vec<u8>, id: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(id);
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(0);
    }
}

fn list(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut data = kind.to_vec();
    data.extend_from_slice(body);
    let mut out = Vec::new();
    chunk(&mut out, b"LIST", &data);
    out
}

fn le32(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A stream header (`strh`) of type `kind`.
fn strh(kind: &[u8; 4], handler: &[u8; 4], length: u32, width: u16, height: u16) -> Vec<u8> {
    let mut h = kind.to_vec();
    h.extend_from_slice(handler);
    h.extend(le32(&[0, 0, 0])); // flags, priority + language, initial frames
    h.extend(le32(&[1, 10, 0, length, 0, u32::MAX, 0])); // scale, rate (10/s), start, length…
    for v in [0, 0, width, height] {
        h.extend_from_slice(&v.to_le_bytes());
    }
    h
}

/// A 2 s, 64x48 MJPEG AVI with a second stream: a subtitle whose one packet is a
/// "GAB2" chunk carrying `payload`, which ffmpeg's AVI demuxer probes and opens
/// with a nested demuxer of whatever format it looks like.
fn avi_with_gab2(payload: &[u8]) -> Vec<u8> {
    const FRAMES: u32 = 20;
    let (width, height) = (64u16, 48u16);
    let frame = jpeg(u32::from(width), u32::from(height));

    let mut avih = le32(&[100_000, 0, 0, 0x10, FRAMES, 0, 2, 0]);
    avih.extend(le32(&[width.into(), height.into(), 0, 0, 0, 0]));
    let mut bitmap = le32(&[40, width.into(), height.into()]);
    bitmap.extend_from_slice(&1u16.to_le_bytes()); // planes
    bitmap.extend_from_slice(&24u16.to_le_bytes()); // bits per pixel
    bitmap.extend_from_slice(b"MJPG");
    bitmap.extend(le32(&[
        u32::from(width) * u32::from(height) * 3,
        0,
        0,
        0,
        0,
    ]));

    let mut video = Vec::new();
    chunk(
        &mut video,
        b"strh",
        &strh(b"vids", b"MJPG", FRAMES, width, height),
    );
    chunk(&mut video, b"strf", &bitmap);
    let mut subtitle = Vec::new();
    chunk(&mut subtitle, b"strh", &strh(b"txts", &[0; 4], 1, 0, 0));
    chunk(&mut subtitle, b"strf", &[]);
    let mut hdrl = Vec::new();
    chunk(&mut hdrl, b"avih", &avih);
    hdrl.extend(list(b"strl", &video));
    hdrl.extend(list(b"strl", &subtitle));

    let mut gab2 = b"GAB2\0".to_vec();
    gab2.extend_from_slice(&2u16.to_le_bytes());
    let title: Vec<u8> = "sub\0".encode_utf16().flat_map(u16::to_le_bytes).collect();
    gab2.extend(le32(&[title.len() as u32]));
    gab2.extend_from_slice(&title);
    gab2.extend_from_slice(&4u16.to_le_bytes());
    gab2.extend(le32(&[payload.len() as u32]));
    gab2.extend_from_slice(payload);

    let mut movi = Vec::new();
    let mut index = Vec::new();
    let packets = std::iter::once((b"01tx", &gab2)).chain((0..FRAMES).map(|_| (b"00dc", &frame)));
    for (id, data) in packets {
        index.extend_from_slice(id);
        index.extend(le32(&[0x10, 4 + movi.len() as u32, data.len() as u32]));
        chunk(&mut movi, id, data);
    }

    let mut body = b"AVI ".to_vec();
    body.extend(list(b"hdrl", &hdrl));
    body.extend(list(b"movi", &movi));
    chunk(&mut body, b"idx1", &index);
    let mut riff = Vec::new();
    chunk(&mut riff, b"RIFF", &body);
    riff
}

#[tokio::test]
async fn an_avi_smuggling_a_playlist_in_its_subtitle_is_sent_without_it() {
    let app = TestApp::spawn().await;
    let canary = Canary::new();
    let texts = smuggling_texts(&canary);
    for (what, text) in &texts {
        let avi = avi_with_gab2(text.as_bytes());
        let res = app
            .post_multipart("/send/video", video_form(avi, "clip.avi", "video/avi"))
            .await;
        res.assert_success("Success");
        let uploads = app.wa.uploads();
        let (mp4, kind) = uploads.last().unwrap();
        assert_eq!(*kind, MediaKind::Video);
        assert_eq!(&mp4[4..8], b"ftyp", "{what}: re-encoded to mp4");
    }
    assert_eq!(app.wa.sent().len(), texts.len());
    assert_nothing_leaked(&app, &canary);
    assert!(app.temp_files().is_empty(), "{:?}", app.temp_files());
}

/// What ffmpeg writes out of the subtitle stream of `avi`, read with `input` args.
fn subtitle_text(input: Vec<std::ffi::OsString>) -> String {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
        .args(input)
        .args(["-map", "0:s?", "-f", "srt", "-"])
        .output()
        .expect("ffmpeg is needed by the tests");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_server_s_input_options_stop_ffmpeg_opening_a_format_nested_in_an_upload() {
    // A harmless nested format (SubRip, which ffmpeg still opens inside an AVI;
    // HLS is refused there since FFmpeg 3.3.2) shows whether the options the server
    // reads uploads with let ffmpeg open a second demuxer at all.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("subtitled.avi");
    let srt = "1\n00:00:00,000 --> 00:00:05,000\nNESTED DEMUXER RAN\n\n";
    std::fs::write(&path, avi_with_gab2(srt.as_bytes())).unwrap();

    let plain = subtitle_text(vec!["-i".into(), path.clone().into()]);
    assert!(
        plain.contains("NESTED DEMUXER RAN"),
        "the fixture carries a nested format that a plain ffmpeg opens: {plain:?}"
    );
    let hardened = subtitle_text(ffmpeg::safe_input(&[], Demuxer::Avi, Path::new(&path)));
    assert!(
        !hardened.contains("NESTED DEMUXER RAN"),
        "the server's input options let ffmpeg open a nested demuxer: {hardened:?}"
    );
}

#[tokio::test]
async fn a_video_with_frames_over_the_pixel_cap_is_refused() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.avi");
    // 8200x8200 > 8192x8192: one plain MJPEG frame, small and quick to make.
    let made = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg("color=c=blue:s=8200x8200:d=0.2:r=5")
        .args(["-c:v", "mjpeg", "-q:v", "31"])
        .arg(&big)
        .status()
        .expect("ffmpeg is needed by the tests");
    assert!(made.success());
    let bytes = std::fs::read(&big).unwrap();

    app.post_multipart("/send/video", video_form(bytes, "big.avi", "video/avi"))
        .await
        .assert_error(
            400,
            "the video is too large: at most 67 megapixels per frame (8192x8192)",
        );
    assert!(app.wa.uploads().is_empty());
    assert!(app.temp_files().is_empty(), "{:?}", app.temp_files());
}
