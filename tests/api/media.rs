//! `/send/image`, `/send/file`, `/send/video` with real files made here: what is
//! uploaded and sent, and that no temporary file outlives its request.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use whatsapp_api::whatsapp::{MediaKind, Outgoing, SessionStatus};

use crate::common::{file_part, jpeg, sample_video};
use crate::helpers::{TestApp, sent_status};

const PHONE: &str = "6289685024091";
const JID: &str = "6289685024091@s.whatsapp.net";

fn png(width: u32, height: u32) -> Vec<u8> {
    let img = RgbImage::from_pixel(width, height, Rgb([200, 10, 10]));
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .unwrap();
    out
}

/// Inserts an EXIF block with `orientation` right after the JPEG's SOI marker.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"II*\0");
    tiff.extend_from_slice(&8u32.to_le_bytes()); // first IFD offset
    tiff.extend_from_slice(&1u16.to_le_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_le_bytes()); // count
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn decoded(bytes: &[u8]) -> DynamicImage {
    image::load_from_memory(bytes).unwrap()
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).to_vec()
}

#[tokio::test]
async fn image_is_compressed_upright_with_a_thumbnail() {
    let app = TestApp::spawn().await;
    // Stored 1200x800, shown rotated a quarter turn: 800x1200 upright.
    let photo = with_exif_orientation(&jpeg(1200, 800), 6);
    let form = reqwest::multipart::Form::new()
        .text("phone", PHONE)
        .text("caption", "selamat malam")
        .text("view_once", "true")
        .part("image", file_part(photo, "photo.jpg", "image/jpeg"));

    let res = app.post_multipart("/send/image", form).await;

    res.assert_success("Success");
    assert_eq!(
        res.body["results"]["status"],
        sent_status("Image message sent to", JID)
    );
    let uploads = app.wa.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].1, MediaKind::Image);
    let uploaded = decoded(&uploads[0].0);
    assert_eq!((uploaded.width(), uploaded.height()), (600, 900));
    let Outgoing::Image {
        file,
        mime_type,
        width,
        height,
        thumbnail,
        caption,
        view_once,
    } = app.wa.sent()[0].1.clone()
    else {
        panic!("not an image");
    };
    assert_eq!(caption.as_deref(), Some("selamat malam"));
    assert!(view_once);
    assert_eq!(mime_type, "image/jpeg");
    assert_eq!((width, height), (600, 900));
    assert_eq!(file.file_length, uploads[0].0.len() as u64);
    let thumb = decoded(&thumbnail);
    assert_eq!((thumb.width(), thumb.height()), (100, 150));
    assert!(app.temp_files().is_empty(), "{:?}", app.temp_files());
}

#[tokio::test]
async fn image_without_compress_keeps_the_original_bytes() {
    let app = TestApp::spawn().await;
    let original = png(300, 200);
    let form = reqwest::multipart::Form::new()
        .text("phone", PHONE)
        .text("compress", "false")
        .part("image", file_part(original.clone(), "a.png", "image/png"));

    app.post_multipart("/send/image", form)
        .await
        .assert_success("Success");

    let uploads = app.wa.uploads();
    assert_eq!(sha256(&uploads[0].0), sha256(&original));
    let Outgoing::Image {
        mime_type,
        thumbnail,
        view_once,
        ..
    } = app.wa.sent()[0].1.clone()
    else {
        panic!("not an image");
    };
    assert_eq!(mime_type, "image/png");
    assert!(!view_once);
    let thumb = decoded(&thumbnail);
    assert_eq!((thumb.width(), thumb.height()), (100, 67));
}

#[tokio::test]
async fn image_needs_its_part_and_an_image_type() {
    let app = TestApp::spawn().await;
    app.wa.set_status(SessionStatus::LoggedOut);
    app.post_form("/send/image", &[("phone", PHONE)])
        .await
        .assert_error(400, "image: cannot be blank.");
    app.post_form("/send/image", &[])
        .await
        .assert_error(400, "image: cannot be blank; phone: cannot be blank.");
    let form = reqwest::multipart::Form::new()
        .text("phone", PHONE)
        .part("image", file_part(b"GIF89a".to_vec(), "a.gif", "image/gif"));
    app.post_multipart("/send/image", form)
        .await
        .assert_error(400, "your image is not allowed. please use jpg/jpeg/png");
    let form = reqwest::multipart::Form::new()
        .text("phone", PHONE)
        .text("caption", "x".repeat(201))
        .part("image", file_part(png(10, 10), "a.png", "image/png"));
    app.post_multipart("/send/image", form)
        .await
        .assert_error(400, "caption: the length must be no more than 200.");
    assert!(app.temp_files().is_empty());
}

#[tokio::test]
async fn an_image_declared_as_jpeg_but_not_one_is_refused() {
    let app = TestApp::spawn().await;
    let form = reqwest::multipart::Form::new().text("phone", PHONE).part(
        "image",
        file_part(b"%PDF-1.4 not an image".to_vec(), "a.jpg", "image/jpeg"),
    );
    app.post_multipart("/send/image", form)
        .await
        .assert_error(400, "your image is not allowed. please use jpg/jpeg/png");
    assert!(app.wa.uploads().is_empty());
    assert!(app.temp_files().is_empty());
}

#[tokio::test]
async fn file_is_sent_as_a_document_with_a_clean_name_and_sniffed_type() {
    let app = TestApp::spawn().await;
    let pdf = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n%%EOF\n".to_vec();
    let form = reqwest::multipart::Form::new()
        .text("phone", PHONE)
        .text("caption", "the report")
        .part(
            "file",
            file_part(
                pdf.clone(),
                "../../etc/report.pdf",
                "application/octet-stream",
            ),
        );

    let res = app.post_multipart("/send/file", form).await;

    res.assert_success("Success");
    assert_eq!(
        res.body["results"]["status"],
        sent_status("Document sent to", JID)
    );
    let uploads = app.wa.uploads();
    assert_eq!(uploads[0].1, MediaKind::Document);
    assert_eq!(sha256(&uploads[0].0), sha256(&pdf));
    let Outgoing::Document {
        file,
        mime_type,
        file_name,
        caption,
    } = app.wa.sent()[0].1.clone()
    else {
        panic!("not a document");
    };
    assert_eq!(file_name, "report.pdf");
    assert_eq!(mime_type, "application/pdf");
    assert_eq!(caption.as_deref(), Some("the report"));
    assert_eq!(file.file_length, pdf.len() as u64);
    assert!(app.temp_files().is_empty());
    assert!(!app.temp.join("../../etc/report.pdf").exists());
}

#[tokio::test]
async fn a_file_over_the_limit_is_refused_and_not_kept() {
    let app = TestApp::spawn_with(&["--max-file-size-mb", "1"]).await;
    let form = reqwest::multipart::Form::new().text("phone", PHONE).part(
        "file",
        file_part(
            vec![7u8; 1024 * 1024 + 1],
            "big.bin",
            "application/octet-stream",
        ),
    );
    app.post_multipart("/send/file", form).await.assert_error(
        400,
        "max file upload is 1 MB, please upload in cloud and send via text if your file is higher than 1 MB",
    );
    assert!(app.wa.uploads().is_empty());
    assert!(app.temp_files().is_empty());
}

#[tokio::test]
async fn a_video_over_the_limit_names_videos() {
    let app = TestApp::spawn_with(&["--max-video-size-mb", "1"]).await;
    let form = reqwest::multipart::Form::new().text("phone", PHONE).part(
        "video",
        file_part(vec![0u8; 1_000_001], "big.mp4", "video/mp4"),
    );
    app.post_multipart("/send/video", form).await.assert_error(
        400,
        "max video upload is 1 MB, please upload in cloud and send via text if your file is higher than 1 MB",
    );
    assert!(app.temp_files().is_empty());
}

#[tokio::test]
async fn file_needs_its_part() {
    let app = TestApp::spawn().await;
    app.post_form("/send/file", &[("phone", PHONE)])
        .await
        .assert_error(400, "file: cannot be blank.");
    // JSON is taken too (its file may come by `file_url`).
    app.post_json("/send/file", serde_json::json!({"phone": PHONE}))
        .await
        .assert_error(400, "file: cannot be blank.");
}

#[tokio::test]
async fn video_is_sent_with_a_thumbnail_from_near_one_second() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let mp4 = sample_video(
        dir.path(),
        "clip.mp4",
        &["-pix_fmt", "yuv420p", "-c:v", "libx264"],
    );
    let form = reqwest::multipart::Form::new()
        .text("phone", PHONE)
        .text("caption", "ini contoh caption video")
        .part("video", file_part(mp4.clone(), "clip.mp4", "video/mp4"));

    let res = app.post_multipart("/send/video", form).await;

    res.assert_success("Success");
    assert_eq!(
        res.body["results"]["status"],
        sent_status("Video sent to", JID)
    );
    let uploads = app.wa.uploads();
    assert_eq!(uploads[0].1, MediaKind::Video);
    assert_eq!(
        sha256(&uploads[0].0),
        sha256(&mp4),
        "mp4 without compress is sent as it is"
    );
    let Outgoing::Video {
        mime_type,
        caption,
        thumbnail,
        ..
    } = app.wa.sent()[0].1.clone()
    else {
        panic!("not a video");
    };
    assert_eq!(mime_type, "video/mp4");
    assert_eq!(caption.as_deref(), Some("ini contoh caption video"));
    let thumb = decoded(&thumbnail);
    assert_eq!((thumb.width(), thumb.height()), (100, 76));
    assert!(app.temp_files().is_empty(), "{:?}", app.temp_files());
}

#[tokio::test]
async fn video_compress_re_encodes_to_mp4() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let mkv = sample_video(dir.path(), "clip.mkv", &[]);
    let form = reqwest::multipart::Form::new()
        .text("phone", PHONE)
        .text("compress", "true")
        .part(
            "video",
            file_part(mkv.clone(), "clip.mkv", "video/x-matroska"),
        );

    app.post_multipart("/send/video", form)
        .await
        .assert_success("Success");

    let uploaded = &app.wa.uploads()[0].0;
    assert_ne!(sha256(uploaded), sha256(&mkv));
    assert_eq!(&uploaded[4..8], b"ftyp", "an mp4 was uploaded");
    assert!(app.temp_files().is_empty(), "{:?}", app.temp_files());
}

#[tokio::test]
async fn video_type_is_checked() {
    let app = TestApp::spawn().await;
    let form = reqwest::multipart::Form::new().text("phone", PHONE).part(
        "video",
        file_part(b"not a video".to_vec(), "a.mov", "video/quicktime"),
    );
    app.post_multipart("/send/video", form)
        .await
        .assert_error(400, "your video type is not allowed. please use mp4/mkv");
    let form = reqwest::multipart::Form::new().text("phone", PHONE).part(
        "video",
        file_part(b"not a video at all".to_vec(), "a.mp4", "video/mp4"),
    );
    app.post_multipart("/send/video", form)
        .await
        .assert_error(400, "your video type is not allowed. please use mp4/mkv");
    assert!(app.temp_files().is_empty());
}

#[tokio::test]
async fn a_missing_ffmpeg_is_named_in_a_500() {
    let app = TestApp::spawn_with(&["--ffmpeg", "/nonexistent/ffmpeg"]).await;
    let dir = tempfile::tempdir().unwrap();
    let mp4 = sample_video(dir.path(), "clip.mp4", &["-pix_fmt", "yuv420p"]);
    let form = reqwest::multipart::Form::new()
        .text("phone", PHONE)
        .part("video", file_part(mp4, "clip.mp4", "video/mp4"));
    app.post_multipart("/send/video", form).await.assert_error(
        500,
        "ffmpeg is not installed or not found at /nonexistent/ffmpeg",
    );
    assert!(app.temp_files().is_empty());
}

#[tokio::test]
async fn a_burst_of_images_beyond_the_media_workers_gets_503s_not_a_pile_up() {
    let app =
        TestApp::spawn_with(&["--media-workers", "1", "--media-queue-timeout-secs", "0"]).await;
    let big = jpeg(3000, 3000);
    let sends = (0..6).map(|_| {
        let form = reqwest::multipart::Form::new()
            .text("phone", PHONE)
            .part("image", file_part(big.clone(), "big.jpg", "image/jpeg"));
        app.post_multipart("/send/image", form)
    });
    let replies = futures_util::future::join_all(sends).await;
    let busy: Vec<_> = replies.iter().filter(|r| r.status == 503).collect();
    assert!(!busy.is_empty(), "no request was turned away");
    for reply in &busy {
        assert_eq!(reply.body["code"], 503, "{}", reply.text);
        assert!(
            reply.body["message"]
                .as_str()
                .unwrap()
                .starts_with("the server is busy processing other media"),
            "{}",
            reply.text
        );
    }
    let sent = replies.iter().filter(|r| r.status == 200).count();
    assert!(sent >= 1, "the first image still went out");
    assert_eq!(sent + busy.len(), replies.len());
    assert_eq!(app.wa.sent().len(), sent);
    assert!(app.temp_files().is_empty(), "refused uploads left files");
}
