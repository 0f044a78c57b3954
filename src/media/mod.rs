//! Media handling for the send routes: uploads land in temporary files (removed when
//! dropped, whatever happens to the request), and are checked, converted and
//! thumbnailed here before they go to WhatsApp. Heavy work (image decoding and
//! resizing, ffmpeg runs) takes a slot of [`MediaConfig::heavy_work`] first, so that a
//! burst of uploads queues instead of oversubscribing the CPUs and memory.

pub mod audio;
pub mod document;
pub mod ffmpeg;
pub mod image;
pub mod sticker;
pub mod video;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempPath;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Prefixes of this server's temporary files (swept at start after a crash);
/// `video-` is what earlier versions named ffmpeg's outputs.
pub const TEMP_PREFIXES: [&str; 4] = ["upload-", "media-", "fetched-", "video-"];

/// A fresh temporary output file named `media-…{suffix}` in the temp folder.
pub(crate) fn temp_output(config: &MediaConfig, suffix: &str) -> Result<TempPath, MediaError> {
    tempfile::Builder::new()
        .prefix("media-")
        .suffix(suffix)
        .tempfile_in(&config.temp_dir)
        .map(|f| f.into_temp_path())
        .map_err(|e| MediaError::Failed(format!("cannot create a temporary file: {e}")))
}

/// Why media could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The upload itself is at fault (type, size, content): the client's error.
    #[error("{0}")]
    Rejected(String),
    /// Media work waited too long for a slot: retry later.
    #[error("{0}")]
    Busy(String),
    /// Anything else: a short cause; details went to the log.
    #[error("{0}")]
    Failed(String),
}

/// Settings of the media pipeline.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Where temporary files (uploads, ffmpeg outputs) go.
    pub temp_dir: PathBuf,
    pub ffmpeg: PathBuf,
    pub ffmpeg_timeout: Duration,
    /// Slots for heavy media work, shared by all requests: one per image decode and
    /// resize, one per video preparation (its ffmpeg runs). Build it with
    /// [`MediaConfig::heavy_work_slots`]; [`MediaConfig::default_heavy_work_slots`]
    /// is one per CPU.
    pub heavy_work: Arc<Semaphore>,
    /// Longest a request waits for a heavy work slot before it is refused as busy
    /// ([`MediaConfig::DEFAULT_HEAVY_WORK_WAIT`] by default).
    pub heavy_work_wait: Duration,
}

impl MediaConfig {
    /// Default of [`MediaConfig::heavy_work_wait`].
    pub const DEFAULT_HEAVY_WORK_WAIT: Duration = Duration::from_secs(30);

    /// One heavy work slot per CPU (1 when the count is unknown).
    pub fn default_heavy_work_slots() -> usize {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    }

    /// A semaphore of `slots` heavy work slots (at least 1).
    pub fn heavy_work_slots(slots: usize) -> Arc<Semaphore> {
        Arc::new(Semaphore::new(slots.clamp(1, Semaphore::MAX_PERMITS)))
    }

    /// Waits for a heavy work slot, at most [`MediaConfig::heavy_work_wait`]. The slot
    /// is free again when the permit is dropped.
    async fn heavy_work_slot(&self) -> Result<OwnedSemaphorePermit, MediaError> {
        let wait = self.heavy_work_wait;
        match tokio::time::timeout(wait, self.heavy_work.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(MediaError::Failed(
                "media processing is shut down".to_owned(),
            )),
            Err(_elapsed) => Err(busy(wait)),
        }
    }
}

/// The refusal of a request that found no heavy work slot in time: a temporary
/// condition (answered 503).
pub fn busy(waited: Duration) -> MediaError {
    MediaError::Busy(format!(
        "the server is busy processing other media; try again later (waited {} ms)",
        waited.as_millis()
    ))
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
async fn read_file(path: &Path) -> Result<Vec<u8>, MediaError> {
    tokio::fs::read(path).await.map_err(read_error)
}

/// The first bytes of an upload, enough to recognise its format.
async fn read_head(upload: &Upload, max: usize) -> Result<Vec<u8>, MediaError> {
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

fn read_error(e: std::io::Error) -> MediaError {
    MediaError::Failed(format!("cannot read a temporary media file: {e}"))
}

/// Runs CPU-heavy work off the async threads, holding `slot` until the work is done
/// (even when the request is dropped meanwhile: the blocking thread runs on).
async fn blocking<T: Send + 'static>(
    slot: OwnedSemaphorePermit,
    work: impl FnOnce() -> Result<T, MediaError> + Send + 'static,
) -> Result<T, MediaError> {
    tokio::task::spawn_blocking(move || {
        let result = work();
        drop(slot);
        result
    })
    .await
    .map_err(|e| MediaError::Failed(format!("media processing stopped: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, slots: usize, wait: Duration) -> MediaConfig {
        MediaConfig {
            temp_dir: dir.to_owned(),
            // Never found: a video job that gets past its slot fails naming it.
            ffmpeg: PathBuf::from("/nonexistent/ffmpeg"),
            ffmpeg_timeout: Duration::from_secs(30),
            heavy_work: MediaConfig::heavy_work_slots(slots),
            heavy_work_wait: wait,
        }
    }

    fn upload(dir: &Path, bytes: &[u8]) -> Upload {
        let file = tempfile::NamedTempFile::new_in(dir).unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        Upload {
            path: file.into_temp_path(),
            file_name: None,
            content_type: None,
            len: bytes.len() as u64,
        }
    }

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let img = ::image::RgbImage::from_fn(width, height, |x, y| {
            ::image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x ^ y) % 256) as u8])
        });
        let mut out = Vec::new();
        ::image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&img)
            .unwrap();
        out
    }

    fn is_busy(result: Result<impl Sized, MediaError>) -> bool {
        matches!(result, Err(MediaError::Busy(m)) if m.starts_with("the server is busy"))
    }

    #[tokio::test]
    async fn a_second_heavy_job_that_finds_no_slot_in_time_is_refused_as_busy() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), 1, Duration::from_millis(1));
        let photo = upload(dir.path(), &jpeg(3000, 3000));
        let other = upload(dir.path(), &jpeg(3000, 3000));

        // Two real image jobs at once: the first takes the only slot for far longer
        // than the 1 ms the second may wait.
        let (a, b) = tokio::join!(
            image::prepare(&photo, true, &config),
            image::prepare(&other, true, &config),
        );
        let (ok, refused) = if a.is_ok() { (a, b) } else { (b, a) };
        assert_eq!(ok.unwrap().width, 600);
        assert!(is_busy(refused));
        assert_eq!(
            config.heavy_work.available_permits(),
            1,
            "the slot is free again"
        );
        assert_eq!(
            busy(Duration::from_millis(1)).to_string(),
            "the server is busy processing other media; try again later (waited 1 ms)"
        );
    }

    #[tokio::test]
    async fn every_heavy_job_waits_for_a_slot() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), 1, Duration::from_millis(50));
        let running = config.heavy_work_slot().await.unwrap();

        let photo = upload(dir.path(), &jpeg(64, 48));
        assert!(is_busy(image::prepare(&photo, true, &config).await));
        // A video is refused before ffmpeg runs: else "ffmpeg is not installed".
        let mkv = b"\x1a\x45\xdf\xa3\x93\x42\x82\x88matroska";
        let mut mkv = mkv.to_vec();
        mkv.resize(300, 0);
        let clip = upload(dir.path(), &mkv);
        assert!(is_busy(video::prepare(&clip, true, &config).await));

        drop(running);
        assert_eq!(
            image::prepare(&photo, true, &config).await.unwrap().width,
            64
        );
        let err = video::prepare(&clip, true, &config).await.err().unwrap();
        assert!(err.to_string().contains("/nonexistent/ffmpeg"), "{err}");
    }

    #[tokio::test]
    async fn a_job_gets_a_slot_freed_within_its_wait() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), 1, Duration::from_secs(10));
        let running = config.heavy_work_slot().await.unwrap();
        let photo = upload(dir.path(), &jpeg(64, 48));
        let release = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            drop(running);
        };
        let (prepared, ()) = tokio::join!(image::prepare(&photo, false, &config), release);
        assert_eq!(prepared.unwrap().width, 64);
    }

    #[test]
    fn there_is_always_at_least_one_slot() {
        assert_eq!(MediaConfig::heavy_work_slots(0).available_permits(), 1);
        assert_eq!(MediaConfig::heavy_work_slots(3).available_permits(), 3);
        assert!(MediaConfig::default_heavy_work_slots() >= 1);
    }
}
