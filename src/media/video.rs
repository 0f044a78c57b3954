//! Videos: mp4, mkv or avi, checked by content; a JPEG thumbnail from a frame near
//! 1 s; re-encoded to H.264/AAC mp4 when asked to compress, or when the container is
//! not mp4 (WhatsApp only plays mp4). ffmpeg does the work in temporary files.

use std::ffi::OsStr;

use tempfile::TempPath;

use super::ffmpeg::{self, FfmpegError};
use super::{MediaConfig, Upload, read_file, read_head};
use crate::service::ServiceError;

pub const NOT_ALLOWED: &str = "your video type is not allowed. please use mp4/mkv";
/// MIME types a video part may declare.
pub const ALLOWED_TYPES: [&str; 4] = [
    "video/mp4",
    "video/x-matroska",
    "video/avi",
    "video/x-msvideo",
];
const THUMBNAIL_WIDTH: u32 = 100;
/// H.264/AAC in mp4 with even dimensions, playable on every WhatsApp client.
const ENCODE_ARGS: &str = "-c:v libx264 -preset veryfast -crf 28 -pix_fmt yuv420p \
     -vf scale=trunc(iw/2)*2:trunc(ih/2)*2 -c:a aac -b:a 128k -movflags +faststart -f mp4";

pub struct PreparedVideo {
    pub bytes: Vec<u8>,
    pub mime_type: &'static str,
    pub thumbnail: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Mp4,
    Matroska,
    Avi,
}

fn container_of(head: &[u8]) -> Option<Container> {
    match infer::get(head)?.mime_type() {
        "video/mp4" | "video/quicktime" => Some(Container::Mp4),
        "video/x-matroska" | "video/webm" => Some(Container::Matroska),
        "video/x-msvideo" => Some(Container::Avi),
        _ => None,
    }
}

fn ffmpeg_error(e: FfmpegError) -> ServiceError {
    ServiceError::Internal(format!("video processing failed: {e}"))
}

fn temp_output(config: &MediaConfig, suffix: &str) -> Result<TempPath, ServiceError> {
    tempfile::Builder::new()
        .prefix("video-")
        .suffix(suffix)
        .tempfile_in(&config.temp_dir)
        .map(|f| f.into_temp_path())
        .map_err(|e| ServiceError::Internal(format!("cannot create a temporary file: {e}")))
}

pub async fn prepare(
    upload: &Upload,
    compress: bool,
    config: &MediaConfig,
) -> Result<PreparedVideo, ServiceError> {
    let head = read_head(upload, 8192).await?;
    let container =
        container_of(&head).ok_or_else(|| ServiceError::BadRequest(NOT_ALLOWED.to_owned()))?;

    let thumbnail = thumbnail(&upload.path, config).await?;

    let bytes = if compress || container != Container::Mp4 {
        let out = temp_output(config, ".mp4")?;
        let args = [OsStr::new("-i"), upload.path.as_os_str()]
            .into_iter()
            .chain(ENCODE_ARGS.split(' ').map(OsStr::new))
            .chain([out.as_os_str()]);
        ffmpeg::run(&config.ffmpeg, args, config.ffmpeg_timeout)
            .await
            .map_err(ffmpeg_error)?;
        read_file(&out).await?
    } else {
        read_file(&upload.path).await?
    };

    Ok(PreparedVideo {
        bytes,
        mime_type: "video/mp4",
        thumbnail,
    })
}

/// A JPEG of the frame at 1 s (the first frame for shorter videos), 100 px wide.
async fn thumbnail(input: &std::path::Path, config: &MediaConfig) -> Result<Vec<u8>, ServiceError> {
    let out = temp_output(config, ".jpg")?;
    let scale = format!("scale={THUMBNAIL_WIDTH}:-2");
    for seek in ["1", "0"] {
        let args = [
            OsStr::new("-ss"),
            OsStr::new(seek),
            OsStr::new("-i"),
            input.as_os_str(),
            OsStr::new("-frames:v"),
            OsStr::new("1"),
            OsStr::new("-vf"),
            OsStr::new(&scale),
            OsStr::new("-f"),
            OsStr::new("image2"),
            OsStr::new("-c:v"),
            OsStr::new("mjpeg"),
            out.as_os_str(),
        ];
        ffmpeg::run(&config.ffmpeg, args, config.ffmpeg_timeout)
            .await
            .map_err(ffmpeg_error)?;
        let jpeg = read_file(&out).await?;
        if !jpeg.is_empty() {
            return Ok(jpeg);
        }
    }
    Err(ServiceError::BadRequest(
        "the video has no frame to make a thumbnail from".to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_are_recognised_by_content() {
        let mp4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom";
        assert_eq!(container_of(mp4), Some(Container::Mp4));
        let mut mkv = b"\x1a\x45\xdf\xa3\x93\x42\x82\x88matroska".to_vec();
        mkv.resize(300, 0);
        assert_eq!(container_of(&mkv), Some(Container::Matroska));
        let avi = b"RIFF\x00\x00\x00\x00AVI LIST";
        assert_eq!(container_of(avi), Some(Container::Avi));
        assert_eq!(container_of(b"%PDF-1.4"), None);
    }
}
