//! Incoming media for webhooks (`--auto-download-media`): downloaded, verified and
//! decrypted into `statics/media/` under a random name with the right extension, no
//! larger than a cap, and deleted after the retention period.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tracing::{debug, info, warn};
use whatsapp_rust::Client;
use whatsapp_rust::wacore::download::DownloadWriter;

use super::event::IncomingMedia;

#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// `statics/media`: the folder, as the payload names it.
    pub dir: PathBuf,
    /// Media larger than this is not downloaded (the payload carries its URL).
    pub max_bytes: u64,
    /// Files older than this are deleted; `None` keeps them.
    pub retention: Option<Duration>,
}

pub struct MediaSaver {
    config: MediaConfig,
}

impl MediaSaver {
    pub fn new(config: MediaConfig) -> Self {
        Self { config }
    }

    /// Downloads `media` into the media folder; its path, or `None` when it is too
    /// large or the download failed (logged; the payload then carries the URL).
    pub async fn save(&self, client: &Client, media: &IncomingMedia<'_>) -> Option<String> {
        let max = self.config.max_bytes;
        if media.file_length.is_some_and(|len| len > max) {
            info!(
                kind = media.kind,
                bytes = media.file_length,
                max,
                "incoming media larger than --max-download-size-mb; not downloaded"
            );
            return None;
        }
        match self.download(client, media).await {
            Ok(path) => Some(path),
            Err(e) => {
                warn!(kind = media.kind, error = %format!("{e:#}"), "incoming media not downloaded; the webhook carries its URL");
                None
            }
        }
    }

    /// Downloads `media` into the folder under a fresh name; the file's path.
    pub async fn download(
        &self,
        client: &Client,
        media: &IncomingMedia<'_>,
    ) -> anyhow::Result<String> {
        let dir = &self.config.dir;
        std::fs::create_dir_all(dir)?;
        // A temp file in the same folder: renamed once verified, gone otherwise.
        let temp = tempfile::Builder::new()
            .prefix(".incoming-")
            .tempfile_in(dir)?;
        let writer = Capped {
            file: temp.as_file().try_clone()?,
            max: self.config.max_bytes,
        };
        client
            .download_to_writer(media.downloadable, writer)
            .await?;
        let extension = extension(temp.path(), media);
        // Go's shape (`<unix time>-<uuid>.<ext>`) with a UUID the sweep recognises:
        // it deletes only this server's files.
        let name = format!(
            "{}-{}.{extension}",
            jiff::Timestamp::now().as_second(),
            crate::storage::own_uuid()
        );
        let path = dir.join(name);
        temp.persist(&path)?;
        debug!(path = %path.display(), kind = media.kind, "incoming media saved");
        Ok(path.to_string_lossy().into_owned())
    }

    /// Deletes files this server saved in the media folder that are older than the
    /// retention period. Others (the Go server's, anyone's) are left alone.
    pub fn sweep(&self) -> usize {
        let Some(retention) = self.config.retention else {
            return 0;
        };
        let Ok(entries) = std::fs::read_dir(&self.config.dir) else {
            return 0;
        };
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > retention);
            let ours = saved_here(&entry.file_name().to_string_lossy());
            if old && ours && entry.file_type().is_ok_and(|t| t.is_file()) {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(e) => {
                        warn!(path = %entry.path().display(), error = %e, "cannot delete old media")
                    }
                }
            }
        }
        if removed > 0 {
            info!(
                files = removed,
                "deleted incoming media older than the retention period"
            );
        }
        removed
    }

    /// Sweeps now and then every hour.
    pub fn spawn_sweeper(self: &std::sync::Arc<Self>) {
        if self.config.retention.is_none() {
            return;
        }
        // Ends with the saver (its account removed or reopened).
        let saver = std::sync::Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(3600));
            loop {
                every.tick().await;
                let Some(s) = saver.upgrade() else {
                    return;
                };
                let _ = tokio::task::spawn_blocking(move || s.sweep()).await;
            }
        });
    }
}

/// The extension of a saved file: a document's own (when plain), else what its
/// bytes are, else its declared MIME type's, else `bin`.
/// A name [`MediaSaver::save`] gives: `<unix time>-<own uuid>.<ext>`.
fn saved_here(name: &str) -> bool {
    let Some((time, rest)) = name.split_once('-') else {
        return false;
    };
    let uuid = rest.split_once('.').map_or(rest, |(uuid, _)| uuid);
    time.bytes().all(|b| b.is_ascii_digit()) && crate::storage::is_own_uuid(uuid)
}

fn extension(path: &Path, media: &IncomingMedia<'_>) -> String {
    let plain =
        |e: &str| !e.is_empty() && e.len() <= 8 && e.chars().all(|c| c.is_ascii_alphanumeric());
    if let Some(ext) = media
        .file_name
        .and_then(|n| Path::new(n).extension())
        .and_then(|e| e.to_str())
        .filter(|e| plain(e))
    {
        return ext.to_ascii_lowercase();
    }
    if let Ok(Some(kind)) = infer::get_from_path(path) {
        return kind.extension().to_owned();
    }
    media
        .mimetype
        .and_then(|m| m.split(';').next())
        .and_then(|m| m.split('/').nth(1))
        .filter(|e| plain(e))
        .map_or_else(|| "bin".to_owned(), str::to_ascii_lowercase)
}

/// A file that refuses to grow beyond `max` bytes: a sender may declare a small
/// length and send more.
struct Capped {
    file: std::fs::File,
    max: u64,
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let at = self.file.stream_position()?;
        if at + buf.len() as u64 > self.max {
            return Err(std::io::Error::other("larger than --max-download-size-mb"));
        }
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Seek for Capped {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.file.seek(pos)
    }
}

impl DownloadWriter for Capped {
    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capped_file_refuses_to_grow_past_its_limit() {
        let file = tempfile::tempfile().unwrap();
        let mut capped = Capped { file, max: 10 };
        capped.write_all(b"12345678").unwrap();
        assert!(capped.write_all(b"abc").is_err());
        capped.seek(SeekFrom::Start(0)).unwrap();
        capped.write_all(b"0123456789").unwrap();
        DownloadWriter::truncate(&mut capped, 4).unwrap();
        assert_eq!(capped.file.metadata().unwrap().len(), 4);
    }

    #[test]
    fn only_our_old_files_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir
            .path()
            .join(format!("1700000000-{}.jpg", crate::storage::own_uuid()));
        let new = dir
            .path()
            .join(format!("1800000000-{}.jpg", crate::storage::own_uuid()));
        // The Go server's media in the same folder: its names carry version-4 UUIDs.
        let go = dir
            .path()
            .join(format!("1700000000-{}.jpg", uuid::Uuid::new_v4()));
        let other = dir.path().join("notes.jpg");
        let long_ago = SystemTime::now() - Duration::from_secs(3 * 86_400);
        for path in [&old, &new, &go, &other] {
            std::fs::write(path, b"x").unwrap();
            if path != &new {
                std::fs::File::options()
                    .write(true)
                    .open(path)
                    .unwrap()
                    .set_modified(long_ago)
                    .unwrap();
            }
        }
        let saver = MediaSaver::new(MediaConfig {
            dir: dir.path().to_path_buf(),
            max_bytes: 1,
            retention: Some(Duration::from_secs(86_400)),
        });
        assert_eq!(saver.sweep(), 1);
        assert!(!old.exists() && new.exists());
        assert!(go.exists() && other.exists(), "not ours: kept");
    }
}
