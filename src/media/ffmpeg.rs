//! ffmpeg as a bounded child process: killed when dropped or when it overruns its
//! time limit, with typed failures; and the arguments that make it read an upload
//! safely.
//!
//! An upload is hostile until proven otherwise. ffmpeg is never left to guess what it
//! reads: the input format is the one sniffed from the content (`-f`, and the same
//! single demuxer in `-format_whitelist`, so no nested demuxer such as HLS, concat or
//! a subtitle probed inside an AVI can open), only the `file` protocol may be opened
//! (`-protocol_whitelist`, inherited by every nested open), paths are given as
//! `file:` URLs (a temp folder named like `concat:` or `http:` stays a folder),
//! decoders refuse frames above [`MAX_PIXELS`], and each run uses at most
//! [`THREADS`] threads per decoder, encoder and filter graph.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{ChildStderr, Command};

/// Threads per decoder, encoder and filter graph of one ffmpeg run. Concurrent runs
/// are bounded by the media semaphore ([`super::MediaConfig::heavy_work`]).
pub const THREADS: &str = "2";
/// Largest video frame decoded, in pixels: 8192x8192 (8K phone video fits).
pub const MAX_PIXELS: u64 = 8192 * 8192;
/// What libavutil logs when a frame is over `-max_pixels` (since FFmpeg 3.3).
const MAX_PIXELS_LOG: &str = "exceeds specified max pixel count";
/// Longest stderr line kept for an error message.
const MAX_LINE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum FfmpegError {
    #[error("ffmpeg is not installed or not found at {0}")]
    NotFound(String),
    #[error("ffmpeg could not be started: {0}")]
    Spawn(std::io::Error),
    #[error("ffmpeg did not finish within {0} s and was stopped")]
    TimedOut(u64),
    /// A decoder met a frame larger than [`MAX_PIXELS`].
    #[error("a frame is larger than {MAX_PIXELS} pixels")]
    FrameTooLarge,
    #[error("ffmpeg failed ({status}): {stderr}")]
    Failed { status: String, stderr: String },
}

/// Input formats an upload may be read as: the demuxer names ffmpeg knows them by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demuxer {
    /// MP4 and QuickTime.
    Mov,
    /// Matroska and WebM.
    Matroska,
    Avi,
    Mp3,
    Ogg,
    Wav,
    Aac,
    Flac,
    /// Still images, one per format.
    Jpeg,
    Png,
    WebP,
    Gif,
}

impl Demuxer {
    pub fn name(self) -> &'static str {
        match self {
            Demuxer::Mov => "mov",
            Demuxer::Matroska => "matroska",
            Demuxer::Avi => "avi",
            Demuxer::Mp3 => "mp3",
            Demuxer::Ogg => "ogg",
            Demuxer::Wav => "wav",
            Demuxer::Aac => "aac",
            Demuxer::Flac => "flac",
            Demuxer::Jpeg => "jpeg_pipe",
            Demuxer::Png => "png_pipe",
            Demuxer::WebP => "webp_pipe",
            Demuxer::Gif => "gif",
        }
    }

    /// Demuxer options that keep it inside the file (already the defaults; stated so
    /// that a build with other defaults cannot change them).
    fn private_options(self) -> &'static [&'static str] {
        match self {
            // External data references ("drefs") and absolute alias paths would let
            // an mp4 name other files to read.
            Demuxer::Mov => &["-enable_drefs", "0", "-use_absolute_path", "0"],
            _ => &[],
        }
    }
}

/// `path` as a `file:` URL, so that ffmpeg never takes part of it for a protocol
/// (`concat:`, `subfile,,…:`, `http:` …).
pub fn file_url(path: &Path) -> OsString {
    let mut url = OsString::from("file:");
    url.push(path.as_os_str());
    url
}

/// The options before `-i` that make ffmpeg read the upload at `path` safely as
/// `demuxer`, then `-i` and the input itself. Options of the same input that
/// `before` holds (such as `-ss`) come first.
pub fn safe_input(before: &[&str], demuxer: Demuxer, path: &Path) -> Vec<OsString> {
    let max_pixels = MAX_PIXELS.to_string();
    let mut args: Vec<OsString> = before.iter().map(OsString::from).collect();
    args.extend(
        [
            "-protocol_whitelist",
            "file",
            "-format_whitelist",
            demuxer.name(),
            "-f",
            demuxer.name(),
        ]
        .into_iter()
        .chain(demuxer.private_options().iter().copied())
        .chain(["-threads", THREADS, "-max_pixels", &max_pixels, "-i"])
        .map(OsString::from),
    );
    args.push(file_url(path));
    args
}

/// The options of an output (with `-threads` capped), then its `file:` URL.
pub fn output(options: &[&str], path: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["-threads", THREADS]
        .iter()
        .chain(options)
        .map(OsString::from)
        .collect();
    args.push(file_url(path));
    args
}

/// Runs `ffmpeg` with `args`, quietly, overwriting outputs.
pub async fn run<I, S>(ffmpeg: &Path, args: I, timeout: Duration) -> Result<(), FfmpegError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = Command::new(ffmpeg)
        .args([
            "-hide_banner",
            "-nostdin",
            "-nostats",
            "-loglevel",
            "error",
            "-filter_threads",
            THREADS,
            "-y",
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => FfmpegError::NotFound(ffmpeg.display().to_string()),
            _ => FfmpegError::Spawn(e),
        })?;
    let stderr = child.stderr.take().expect("stderr is piped");
    // The child is killed on drop if the time runs out.
    let (status, log) = tokio::time::timeout(timeout, async {
        tokio::join!(child.wait(), read_log(stderr))
    })
    .await
    .map_err(|_| FfmpegError::TimedOut(timeout.as_secs()))?;
    let status = status.map_err(FfmpegError::Spawn)?;
    if log.frame_too_large {
        return Err(FfmpegError::FrameTooLarge);
    }
    if status.success() {
        return Ok(());
    }
    Err(FfmpegError::Failed {
        status: status.to_string(),
        stderr: log.last_line.chars().take(300).collect(),
    })
}

/// What is kept of ffmpeg's stderr: a fixed amount, however much a hostile input
/// makes it write.
#[derive(Debug, Default)]
struct Log {
    last_line: String,
    frame_too_large: bool,
}

async fn read_log(mut stderr: ChildStderr) -> Log {
    let mut log = Log::default();
    let mut line = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut note = |line: &mut Vec<u8>| {
        let text = String::from_utf8_lossy(line);
        log.frame_too_large |= text.contains(MAX_PIXELS_LOG);
        if !text.trim().is_empty() {
            log.last_line = text.trim().to_owned();
        }
        line.clear();
    };
    loop {
        let n = match stderr.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &byte in &chunk[..n] {
            if byte == b'\n' || byte == b'\r' {
                note(&mut line);
            } else if line.len() < MAX_LINE {
                line.push(byte);
            }
        }
    }
    note(&mut line);
    log
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn an_upload_is_read_with_its_sniffed_demuxer_only_and_from_a_file_url() {
        let path = Path::new("/tmp/up/video-1.mp4");
        assert_eq!(
            strings(&safe_input(&["-ss", "1"], Demuxer::Mov, path)),
            [
                "-ss",
                "1",
                "-protocol_whitelist",
                "file",
                "-format_whitelist",
                "mov",
                "-f",
                "mov",
                "-enable_drefs",
                "0",
                "-use_absolute_path",
                "0",
                "-threads",
                "2",
                "-max_pixels",
                "67108864",
                "-i",
                "file:/tmp/up/video-1.mp4",
            ]
        );
        for (demuxer, name) in [(Demuxer::Matroska, "matroska"), (Demuxer::Avi, "avi")] {
            assert_eq!(
                strings(&safe_input(&[], demuxer, path)),
                [
                    "-protocol_whitelist",
                    "file",
                    "-format_whitelist",
                    name,
                    "-f",
                    name,
                    "-threads",
                    "2",
                    "-max_pixels",
                    "67108864",
                    "-i",
                    "file:/tmp/up/video-1.mp4",
                ]
            );
        }
    }

    /// Writes a video made by ffmpeg's `lavfi` `source` to `path`.
    fn generate(path: &Path, source: &str, options: &[&str]) {
        let made = std::process::Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-f",
                "lavfi",
                "-i",
                source,
            ])
            .args(options)
            .arg(path)
            .status()
            .unwrap();
        assert!(made.success(), "ffmpeg could not make {}", path.display());
    }

    #[test]
    fn an_output_is_a_file_url_with_capped_threads() {
        assert_eq!(
            strings(&output(&["-f", "mp4"], Path::new("out/concat:x.mp4"))),
            ["-threads", "2", "-f", "mp4", "file:out/concat:x.mp4"]
        );
    }

    #[tokio::test]
    async fn a_path_that_looks_like_a_protocol_is_read_as_a_file() {
        // Without the `file:` prefix, ffmpeg would read "concat:a|b" as the concat
        // protocol over other files.
        let dir = tempfile::tempdir().unwrap();
        let decoy = dir.path().join("decoy.mkv");
        generate(&decoy, "testsrc=duration=1:size=64x48:rate=5", &[]);
        let tricky = format!("concat:{}", decoy.display());
        let err = run(
            Path::new("ffmpeg"),
            safe_input(&[], Demuxer::Matroska, Path::new(&tricky))
                .into_iter()
                .chain(output(&["-f", "null"], Path::new("-"))),
            Duration::from_secs(30),
        )
        .await
        .unwrap_err();
        // "file:concat:/…/decoy.mkv" names a file that does not exist.
        assert!(
            matches!(&err, FfmpegError::Failed { stderr, .. } if stderr.contains("No such file")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_frame_over_the_pixel_cap_is_reported_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.avi");
        // 8200x8200 > 8192x8192; one plain MJPEG frame, made in well under a second.
        generate(
            &big,
            "color=c=blue:s=8200x8200:d=0.2:r=5",
            &["-c:v", "mjpeg", "-q:v", "31"],
        );
        let out = dir.path().join("t.jpg");
        let err = run(
            Path::new("ffmpeg"),
            safe_input(&[], Demuxer::Avi, &big)
                .into_iter()
                .chain(output(
                    &["-frames:v", "1", "-f", "image2", "-update", "1"],
                    &out,
                )),
            Duration::from_secs(30),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, FfmpegError::FrameTooLarge), "{err}");
    }

    #[tokio::test]
    async fn a_missing_binary_is_reported_by_name() {
        let err = run(
            Path::new("/nonexistent/ffmpeg"),
            ["-version"],
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, FfmpegError::NotFound(ref p) if p == "/nonexistent/ffmpeg"));
    }

    #[tokio::test]
    async fn an_overrun_is_stopped() {
        // An endless silent input read in real time: ffmpeg never finishes on its own.
        // (A script written here and executed could hit ETXTBSY when another test
        // forks meanwhile.)
        let endless = ["-re", "-f", "lavfi", "-i", "anullsrc", "-f", "null", "-"];
        let err = run(Path::new("ffmpeg"), endless, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, FfmpegError::TimedOut(_)), "{err}");
    }
}
