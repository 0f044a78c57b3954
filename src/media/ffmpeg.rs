//! ffmpeg as a bounded child process: killed when dropped or when it overruns its
//! time limit, with typed failures.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum FfmpegError {
    #[error("ffmpeg is not installed or not found at {0}")]
    NotFound(String),
    #[error("ffmpeg could not be started: {0}")]
    Spawn(std::io::Error),
    #[error("ffmpeg did not finish within {0} s and was stopped")]
    TimedOut(u64),
    #[error("ffmpeg failed ({status}): {stderr}")]
    Failed { status: String, stderr: String },
}

/// Runs `ffmpeg` with `args`, quietly, overwriting outputs.
pub async fn run<I, S>(ffmpeg: &Path, args: I, timeout: Duration) -> Result<(), FfmpegError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let child = Command::new(ffmpeg)
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
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
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| FfmpegError::TimedOut(timeout.as_secs()))?
        .map_err(FfmpegError::Spawn)?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last_line = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    Err(FfmpegError::Failed {
        status: output.status.to_string(),
        stderr: last_line.chars().take(300).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
