//! Audio: mp3, m4a, aac, ogg, wav or flac, checked by content. A voice note (`ptt`)
//! is always re-encoded to mono OGG/Opus, which WhatsApp plays as one; other audio
//! is sent as it is when WhatsApp plays the format, else re-encoded to OGG/Opus too.

use super::MediaError;
use super::ffmpeg::{self, Demuxer, FfmpegError};
use super::{MediaConfig, Upload, read_file, read_head, temp_output};

pub const NOT_ALLOWED: &str = "your audio type is not allowed. please use mp3/m4a/aac/ogg/wav/flac";
const OPUS: &str = "audio/ogg; codecs=opus";

pub struct PreparedAudio {
    pub bytes: Vec<u8>,
    pub mime_type: String,
}

/// The demuxer of the audio whose file starts with `head`, and its MIME type.
fn format_of(head: &[u8]) -> Option<(Demuxer, &'static str)> {
    let kind = infer::get(head)?;
    Some(match kind.mime_type() {
        "audio/mpeg" => (Demuxer::Mp3, "audio/mpeg"),
        "audio/ogg" | "audio/opus" => (Demuxer::Ogg, "audio/ogg"),
        "audio/x-wav" | "audio/wav" => (Demuxer::Wav, "audio/wav"),
        "audio/aac" => (Demuxer::Aac, "audio/aac"),
        "audio/x-flac" | "audio/flac" => (Demuxer::Flac, "audio/flac"),
        "audio/m4a" | "audio/x-m4a" | "video/mp4" | "audio/mp4" => (Demuxer::Mov, "audio/mp4"),
        _ => return None,
    })
}

pub async fn prepare(
    upload: &Upload,
    ptt: bool,
    config: &MediaConfig,
) -> Result<PreparedAudio, MediaError> {
    let head = read_head(upload, 8192).await?;
    let (demuxer, mime) =
        format_of(&head).ok_or_else(|| MediaError::Rejected(NOT_ALLOWED.to_owned()))?;
    let plays_as_is = matches!(demuxer, Demuxer::Mp3 | Demuxer::Aac | Demuxer::Mov);
    if !ptt && plays_as_is {
        return Ok(PreparedAudio {
            bytes: read_file(&upload.path).await?,
            mime_type: mime.to_owned(),
        });
    }
    let slot = config.heavy_work_slot().await?;
    let out = temp_output(config, ".ogg")?;
    let mut args = ffmpeg::safe_input(&[], demuxer, &upload.path);
    args.extend(ffmpeg::output(
        &[
            "-map",
            "0:a:0",
            "-vn",
            "-ac",
            "1",
            "-ar",
            "48000",
            "-c:a",
            "libopus",
            "-b:a",
            "32k",
            "-application",
            "voip",
            "-f",
            "ogg",
        ],
        &out,
    ));
    ffmpeg::run(&config.ffmpeg, args, config.ffmpeg_timeout)
        .await
        .map_err(|e| match e {
            e @ FfmpegError::NotFound(_) => MediaError::Failed(e.to_string()),
            FfmpegError::Failed { .. } => {
                MediaError::Rejected("the audio cannot be read".to_owned())
            }
            e => MediaError::Failed(format!("audio processing failed: {e}")),
        })?;
    drop(slot);
    Ok(PreparedAudio {
        bytes: read_file(&out).await?,
        mime_type: OPUS.to_owned(),
    })
}
