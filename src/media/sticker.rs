//! Stickers: a JPEG, PNG, WebP or GIF (checked by content) becomes a 512×512 WebP,
//! the picture fitted inside with transparent margins, as WhatsApp shows stickers.
//! A GIF gives its first frame. ffmpeg does the work, reading the upload only as
//! its sniffed format.

use super::MediaError;
use super::ffmpeg::{self, Demuxer, FfmpegError};
use super::{MediaConfig, Upload, read_file, read_head, temp_output};

pub const NOT_ALLOWED: &str = "your sticker is not allowed. please use jpg/jpeg/png/webp/gif";
pub const SIDE: u32 = 512;

pub struct PreparedSticker {
    pub bytes: Vec<u8>,
}

fn format_of(head: &[u8]) -> Option<Demuxer> {
    Some(match infer::get(head)?.mime_type() {
        "image/jpeg" => Demuxer::Jpeg,
        "image/png" => Demuxer::Png,
        "image/webp" => Demuxer::WebP,
        "image/gif" => Demuxer::Gif,
        _ => return None,
    })
}

pub async fn prepare(upload: &Upload, config: &MediaConfig) -> Result<PreparedSticker, MediaError> {
    let head = read_head(upload, 64).await?;
    let demuxer = format_of(&head).ok_or_else(|| MediaError::Rejected(NOT_ALLOWED.to_owned()))?;
    let slot = config.heavy_work_slot().await?;
    let out = temp_output(config, ".webp")?;
    let fit = format!(
        "scale={SIDE}:{SIDE}:force_original_aspect_ratio=decrease,format=rgba,\
         pad={SIDE}:{SIDE}:(ow-iw)/2:(oh-ih)/2:color=0x00000000"
    );
    let mut args = ffmpeg::safe_input(&[], demuxer, &upload.path);
    args.extend(ffmpeg::output(
        &[
            "-map",
            "0:v:0",
            "-frames:v",
            "1",
            "-vf",
            &fit,
            "-c:v",
            "libwebp",
            "-quality",
            "80",
            "-f",
            "webp",
        ],
        &out,
    ));
    ffmpeg::run(&config.ffmpeg, args, config.ffmpeg_timeout)
        .await
        .map_err(|e| match e {
            e @ FfmpegError::NotFound(_) => MediaError::Failed(e.to_string()),
            FfmpegError::FrameTooLarge | FfmpegError::Failed { .. } => {
                MediaError::Rejected("the sticker image cannot be read".to_owned())
            }
            e => MediaError::Failed(format!("sticker processing failed: {e}")),
        })?;
    drop(slot);
    Ok(PreparedSticker {
        bytes: read_file(&out).await?,
    })
}
