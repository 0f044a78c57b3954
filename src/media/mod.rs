//! Media handling for the send routes: uploads land in temporary files (removed when
//! dropped, whatever happens to the request), and are checked, converted and
//! thumbnailed here before they go to WhatsApp.

pub mod document;
pub mod ffmpeg;
pub mod image;
pub mod video;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempPath;

use crate::service::ServiceError;

/// Settings of the media pipeline.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Where temporary files (uploads, ffmpeg outputs) go.
    pub temp_dir: PathBuf,
    pub ffmpeg: PathBuf,
    pub ffmpeg_timeout: Duration,
}

/// An uploaded file, stored under a random name in the temp folder and deleted on drop.
#[derive(Debug)]
pub struct Upload {
    pub path: TempPath,
    /// The client's file name, as sent (never used as a path).
    pub file_name: Option<String>,
    /// The part's `Content-Type`, as sent.
    pub content_type: Option<String>,
    pub len: u64,
}

/// Reads a whole temporary media file (an upload or an ffmpeg output). A failure is
/// the server's fault: the file was just written.
async fn read_file(path: &Path) -> Result<Vec<u8>, ServiceError> {
    tokio::fs::read(path).await.map_err(read_error)
}

/// The first bytes of an upload, enough to recognise its format.
async fn read_head(upload: &Upload, max: usize) -> Result<Vec<u8>, ServiceError> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(&upload.path)
        .await
        .map_err(read_error)?;
    let mut head = Vec::with_capacity(max);
    file.take(max as u64)
        .read_to_end(&mut head)
        .await
        .map_err(read_error)?;
    Ok(head)
}

fn read_error(e: std::io::Error) -> ServiceError {
    ServiceError::Internal(format!("cannot read a temporary media file: {e}"))
}

/// Runs CPU-heavy work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ServiceError::Internal(format!("media processing stopped: {e}")))?
}
