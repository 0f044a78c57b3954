//! Videos: mp4, mkv or avi, checked by content; a JPEG thumbnail from a frame near
//! 1 s; re-encoded to H.264/AAC mp4 when asked to compress, or when the container is
//! not mp4 (WhatsApp only plays mp4). ffmpeg does the work in temporary files, reading
//! the upload only as the container sniffed here (see [`super::ffmpeg`]), one media job
//! slot held for the whole preparation.

use std::ffi::OsString;
use std::path::Path;

use super::MediaError;
use super::ffmpeg::{self, Demuxer, FfmpegError};
use super::{MediaConfig, Upload, read_file, read_head, temp_output};

pub const NOT_ALLOWED: &str = "your video type is not allowed. please use mp4/mkv";
/// MIME types a video part may declare.
pub const ALLOWED_TYPES: [&str; 4] = [
    "video/mp4",
    "video/x-matroska",
    "video/avi",
    "video/x-msvideo",
];
const THUMBNAIL_WIDTH: u32 = 100;
/// The first video and the first audio stream (if any) only, as H.264/AAC in mp4 with
/// even dimensions, playable on every WhatsApp client. Subtitle and data streams are
/// left out: they are never sent, and an AVI's embedded subtitle is a way to smuggle
/// in another format.
const ENCODE_ARGS: [&str; 22] = [
    "-map",
    "0:v:0",
    "-map",
    "0:a:0?",
    "-c:v",
    "libx264",
    "-preset",
    "veryfast",
    "-crf",
    "28",
    "-pix_fmt",
    "yuv420p",
    "-vf",
    "scale=trunc(iw/2)*2:trunc(ih/2)*2",
    "-c:a",
    "aac",
    "-b:a",
    "128k",
    "-movflags",
    "+faststart",
    "-f",
    "mp4",
];

pub struct PreparedVideo {
    /// The re-encoded file; `None`: the upload is sent as it is.
    pub encoded: Option<tempfile::TempPath>,
    pub mime_type: &'static str,
    pub thumbnail: Vec<u8>,
}

/// The container of a video, from its first bytes: the only format ffmpeg will read it
/// as. Anything else (an HLS playlist, a concat script, text…) is refused here.
pub fn container_of(head: &[u8]) -> Option<Demuxer> {
    match infer::get(head)?.mime_type() {
        "video/mp4" | "video/quicktime" => Some(Demuxer::Mov),
        "video/x-matroska" | "video/webm" => Some(Demuxer::Matroska),
        "video/x-msvideo" => Some(Demuxer::Avi),
        _ => None,
    }
}

fn ffmpeg_error(e: FfmpegError) -> MediaError {
    match e {
        FfmpegError::FrameTooLarge => MediaError::Rejected(format!(
            "the video is too large: at most {} megapixels per frame (8192x8192)",
            ffmpeg::MAX_PIXELS / 1_000_000
        )),
        // The operator's to fix; the message names no upload.
        e @ FfmpegError::NotFound(_) => MediaError::Failed(e.to_string()),
        e => MediaError::Failed(format!("video processing failed: {e}")),
    }
}

pub async fn prepare(
    upload: &Upload,
    compress: bool,
    config: &MediaConfig,
) -> Result<PreparedVideo, MediaError> {
    let head = read_head(upload, 8192).await?;
    let container =
        container_of(&head).ok_or_else(|| MediaError::Rejected(NOT_ALLOWED.to_owned()))?;

    let slot = config.heavy_work_slot().await?;
    let thumbnail = thumbnail(container, &upload.path, config).await?;

    let encoded = if compress || container != Demuxer::Mov {
        let out = temp_output(config, ".mp4")?;
        ffmpeg::run(
            &config.ffmpeg,
            encode_args(container, &upload.path, &out),
            config.ffmpeg_timeout,
        )
        .await
        .map_err(ffmpeg_error)?;
        Some(out)
    } else {
        None
    };
    drop(slot);

    Ok(PreparedVideo {
        encoded,
        mime_type: "video/mp4",
        thumbnail,
    })
}

/// ffmpeg's arguments to re-encode `input`, read as `container`, into the mp4 `out`.
fn encode_args(container: Demuxer, input: &Path, out: &Path) -> Vec<OsString> {
    let mut args = ffmpeg::safe_input(&[], container, input);
    args.extend(ffmpeg::output(&ENCODE_ARGS, out));
    args
}

/// ffmpeg's arguments to write the frame at `seek` seconds of `input`, read as
/// `container`, as a JPEG `out`.
fn thumbnail_args(container: Demuxer, seek: &str, input: &Path, out: &Path) -> Vec<OsString> {
    let scale = format!("scale={THUMBNAIL_WIDTH}:-2");
    let mut args = ffmpeg::safe_input(&["-ss", seek], container, input);
    args.extend(ffmpeg::output(
        &[
            "-map",
            "0:v:0",
            "-frames:v",
            "1",
            "-vf",
            &scale,
            "-c:v",
            "mjpeg",
            "-f",
            "image2",
            // One file, its name taken as it is (no %d pattern).
            "-update",
            "1",
        ],
        out,
    ));
    args
}

/// A JPEG of the frame at 1 s (the first frame for shorter videos), 100 px wide.
async fn thumbnail(
    container: Demuxer,
    input: &Path,
    config: &MediaConfig,
) -> Result<Vec<u8>, MediaError> {
    let out = temp_output(config, ".jpg")?;
    for seek in ["1", "0"] {
        let args = thumbnail_args(container, seek, input, &out);
        ffmpeg::run(&config.ffmpeg, args, config.ffmpeg_timeout)
            .await
            .map_err(ffmpeg_error)?;
        let jpeg = read_file(&out).await?;
        if !jpeg.is_empty() {
            return Ok(jpeg);
        }
    }
    Err(MediaError::Rejected(
        "the video has no frame to make a thumbnail from".to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_are_recognised_by_content() {
        let mp4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom";
        assert_eq!(container_of(mp4), Some(Demuxer::Mov));
        let mut mkv = b"\x1a\x45\xdf\xa3\x93\x42\x82\x88matroska".to_vec();
        mkv.resize(300, 0);
        assert_eq!(container_of(&mkv), Some(Demuxer::Matroska));
        let avi = b"RIFF\x00\x00\x00\x00AVI LIST";
        assert_eq!(container_of(avi), Some(Demuxer::Avi));
        assert_eq!(container_of(b"%PDF-1.4"), None);
    }

    #[test]
    fn playlists_and_scripts_are_not_containers() {
        for text in [
            &b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\n/etc/passwd\n"[..],
            b"#EXTM3U\n#EXTINF:1,\nhttp://127.0.0.1:1/x.ts\n#EXT-X-ENDLIST\n",
            b"ffconcat version 1.0\nfile /etc/passwd\n",
            b"file:///etc/passwd",
            b"concat:/etc/passwd|/etc/passwd",
            // A playlist behind a byte-order mark or blank lines is still text.
            b"\xef\xbb\xbf#EXTM3U\n/etc/passwd\n",
            b"\n\n#EXTM3U\n/etc/passwd\n",
        ] {
            assert_eq!(
                container_of(text),
                None,
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    /// `args` holds `piece` as consecutive arguments.
    fn holds(args: &[String], piece: &[&str]) -> bool {
        args.windows(piece.len()).any(|w| w == piece)
    }

    #[test]
    fn thumbnail_reads_the_upload_safely_and_writes_one_file() {
        let args = strings(&thumbnail_args(
            Demuxer::Avi,
            "1",
            Path::new("/t/video-in.avi"),
            Path::new("/t/video-out.jpg"),
        ));
        let input = args.iter().position(|a| a == "-i").unwrap();
        let (before, after) = args.split_at(input);
        assert!(holds(before, &["-ss", "1"]), "{args:?}");
        assert!(holds(before, &["-protocol_whitelist", "file"]), "{args:?}");
        assert!(holds(before, &["-format_whitelist", "avi"]), "{args:?}");
        assert!(holds(before, &["-f", "avi"]), "{args:?}");
        assert!(holds(before, &["-threads", "2"]), "{args:?}");
        assert!(holds(before, &["-max_pixels", "67108864"]), "{args:?}");
        assert_eq!(after[1], "file:/t/video-in.avi");
        assert!(holds(after, &["-threads", "2"]), "{args:?}");
        assert!(holds(after, &["-map", "0:v:0"]), "{args:?}");
        assert!(holds(after, &["-update", "1"]), "{args:?}");
        assert_eq!(args.last().unwrap(), "file:/t/video-out.jpg");
    }

    #[test]
    fn encoding_reads_the_upload_safely_and_drops_subtitles() {
        for (container, name) in [
            (Demuxer::Mov, "mov"),
            (Demuxer::Matroska, "matroska"),
            (Demuxer::Avi, "avi"),
        ] {
            let args = strings(&encode_args(
                container,
                Path::new("/t/video-in"),
                Path::new("/t/video-out.mp4"),
            ));
            let input = args.iter().position(|a| a == "-i").unwrap();
            let (before, after) = args.split_at(input);
            assert!(holds(before, &["-protocol_whitelist", "file"]), "{args:?}");
            assert!(holds(before, &["-format_whitelist", name]), "{args:?}");
            assert!(holds(before, &["-f", name]), "{args:?}");
            assert!(holds(before, &["-threads", "2"]), "{args:?}");
            assert!(holds(before, &["-max_pixels", "67108864"]), "{args:?}");
            assert_eq!(after[1], "file:/t/video-in");
            assert!(holds(after, &["-threads", "2"]), "{args:?}");
            assert!(
                holds(after, &["-map", "0:v:0", "-map", "0:a:0?"]),
                "{args:?}"
            );
            assert!(
                holds(after, &["-f", "mp4", "file:/t/video-out.mp4"]),
                "{args:?}"
            );
            // The upload is the only input.
            assert_eq!(args.iter().filter(|a| *a == "-i").count(), 1);
        }
    }
}
