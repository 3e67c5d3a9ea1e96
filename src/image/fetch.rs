//! Streaming one layer from a registry into the store. The bytes go through a bounded channel
//! to a blocking thread that writes the blob's temp file, hashes it and unpacks it at the same
//! time (decompress + tar), so a layer is on disk and unpacked when its last byte arrives and
//! memory stays flat whatever the layer size. The blob and the layer directory are renamed into
//! place only when size, digest and diff_id all match; on any failure both temp paths go.
//!
//! Locks: `<store>/.locks/<hex>.lock` per blob (a second process pulling the same image waits,
//! then finds the blob), then the unpacker's per-layer lock. Always in that order.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use futures::StreamExt as _;
use oci_client::errors::OciDistributionError;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use super::error::ImageError;
use super::registry::client::{Remote, Target};
use super::registry::retry::with_retry;
use super::registry::{PullEvent, PROGRESS_STEP};
use super::store::ImageStore;
use super::unpack::{
    ensure_unpacked, fresh_layer_tmp, lock_layer, sha256_hex, unpack_layer_from, Compression,
};
use crate::store::FileLock;

pub(crate) const LOCKS_DIR: &str = ".locks";
/// Chunks in flight between the network and the unpacker per layer. A chunk is one HTTP read,
/// which hyper's adaptive buffer lets grow to a few hundred KiB on a fast link: keep the queue
/// short so peak memory stays flat (depth x chunk x parallel layers).
const CHANNEL_DEPTH: usize = 8;

/// One layer to bring in.
#[derive(Debug, Clone)]
pub(crate) struct LayerJob {
    pub digest: String,
    pub size: u64,
    pub compression: Compression,
    pub diff_id: String,
}

enum Chunk {
    Data(bytes::Bytes),
    /// The download failed: the unpacker must stop, not take a short stream for the end.
    Abort,
}

impl ImageStore {
    /// Makes sure the blob and the unpacked layer of `job` are in the store; returns the bytes
    /// downloaded (0 when both were there).
    pub(crate) async fn fetch_layer(
        &self,
        remote: &Remote,
        job: LayerJob,
        progress: &(dyn Fn(PullEvent) + Send + Sync),
    ) -> Result<u64, ImageError> {
        let blob = self.blob_path(&job.digest)?;
        let diff_hex = sha256_hex(&job.diff_id)?.to_string();
        let layer_dir = self.layers_dir().join(&diff_hex);
        progress(PullEvent::LayerStarted {
            digest: job.digest.clone(),
            size: job.size,
        });
        if blob.is_file() && layer_dir.is_dir() {
            progress(PullEvent::LayerDone {
                digest: job.digest.clone(),
                cached: true,
            });
            return Ok(0);
        }
        let lock_path = self
            .root()
            .join(LOCKS_DIR)
            .join(format!("{}.lock", sha256_hex(&job.digest)?));
        let _blob_lock = blocking(move || Ok(FileLock::exclusive(&lock_path)?)).await?;
        let downloaded = if blob.is_file() {
            // Another pull brought the blob in while we waited; unpack it if needed.
            let (layers, b, j) = (self.layers_dir().to_path_buf(), blob.clone(), job.clone());
            blocking(move || ensure_unpacked(&layers, &b, &j.digest, j.compression, &j.diff_id))
                .await?;
            0
        } else {
            let layers = self.layers_dir().to_path_buf();
            let hex = diff_hex.clone();
            let _layer_lock = blocking(move || lock_layer(&layers, &hex)).await?;
            let unpack = !layer_dir.is_dir();
            with_retry(&format!("layer {}", job.digest), progress, || {
                self.download(remote, &job, unpack, &blob, &layer_dir, progress)
            })
            .await?
        };
        progress(PullEvent::LayerDone {
            digest: job.digest.clone(),
            cached: false,
        });
        Ok(downloaded)
    }

    /// One download attempt: stream, tee into blob temp file and unpacker, verify, rename.
    async fn download(
        &self,
        remote: &Remote,
        job: &LayerJob,
        unpack: bool,
        blob: &Path,
        layer_dir: &Path,
        progress: &(dyn Fn(PullEvent) + Send + Sync),
    ) -> Result<u64, ImageError> {
        let blob_tmp = self.temp_path("blob")?;
        let layer_tmp = if unpack {
            let hex = sha256_hex(&job.diff_id)?;
            Some(fresh_layer_tmp(self.layers_dir(), hex)?)
        } else {
            None
        };
        let result = self
            .stream_into(remote, job, &blob_tmp, layer_tmp.as_deref(), progress)
            .await
            .and_then(|n| {
                if let Some(tmp) = &layer_tmp {
                    fs::rename(tmp, layer_dir).map_err(|e| ImageError::io(layer_dir, e))?;
                }
                fs::rename(&blob_tmp, blob).map_err(|e| ImageError::io(blob, e))?;
                Ok(n)
            });
        if result.is_err() {
            let _ = fs::remove_file(&blob_tmp);
            if let Some(tmp) = &layer_tmp {
                if let Err(e) = fs::remove_dir_all(tmp) {
                    if e.kind() != io::ErrorKind::NotFound {
                        tracing::warn!(?tmp, error = %e, "failed to remove a partly unpacked layer");
                    }
                }
            }
        }
        result
    }

    async fn stream_into(
        &self,
        remote: &Remote,
        job: &LayerJob,
        blob_tmp: &Path,
        layer_tmp: Option<&Path>,
        progress: &(dyn Fn(PullEvent) + Send + Sync),
    ) -> Result<u64, ImageError> {
        let mut stream = remote.blob_stream(&job.digest).await?;
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let sink = {
            let (job, blob_tmp) = (job.clone(), blob_tmp.to_path_buf());
            let layer_tmp = layer_tmp.map(Path::to_path_buf);
            tokio::task::spawn_blocking(move || sink(rx, &job, &blob_tmp, layer_tmp.as_deref()))
        };
        let mut done = 0u64;
        let mut reported = 0u64;
        let mut failure = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(bytes) => {
                    done += bytes.len() as u64;
                    if done > job.size {
                        failure = Some(ImageError::BlobSize {
                            digest: job.digest.clone(),
                            expected: job.size,
                            actual: done,
                        });
                        break;
                    }
                    if tx.send(Chunk::Data(bytes)).await.is_err() {
                        break; // the sink failed; its error is reported below
                    }
                    if done - reported >= PROGRESS_STEP || done == job.size {
                        reported = done;
                        progress(PullEvent::LayerProgress {
                            digest: job.digest.clone(),
                            done,
                            total: job.size,
                        });
                    }
                }
                Err(e) => {
                    failure = Some(remote.classify(
                        OciDistributionError::IoError(e),
                        &Target::Blob(job.digest.clone()),
                    ));
                    break;
                }
            }
        }
        if failure.is_some() {
            let _ = tx.send(Chunk::Abort).await;
        }
        drop(tx);
        let sunk = sink
            .await
            .map_err(|e| ImageError::io(blob_tmp, io::Error::other(e)))?;
        match failure {
            Some(e) => Err(e),
            None => sunk.map(|()| done),
        }
    }

    /// Stores a small verified document (manifest, index, config) as a blob.
    pub(crate) fn put_bytes(&self, digest: &str, data: &[u8]) -> Result<PathBuf, ImageError> {
        let dest = self.blob_path(digest)?;
        if dest.is_file() {
            return Ok(dest);
        }
        super::pull::verify_bytes(digest, data.len() as u64, data)?;
        let tmp = self.temp_path("blob")?;
        let result = fs::write(&tmp, data)
            .and_then(|()| fs::rename(&tmp, &dest))
            .map_err(|e| ImageError::io(&dest, e));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|()| dest)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ImageError> + Send + 'static,
) -> Result<T, ImageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ImageError::io("blocking task", io::Error::other(e)))?
}

/// The receiving end: every chunk is written to the blob temp file and hashed as it is read
/// by the unpacker (or by the final drain when there is nothing to unpack).
struct TeeReader<W> {
    rx: mpsc::Receiver<Chunk>,
    current: bytes::Bytes,
    file: W,
    path: PathBuf,
    hasher: Sha256,
    size: u64,
    /// The first write error on the blob file. It sticks: once a chunk is lost the blob is
    /// wrong whatever comes after, and every later read must say why (a disk that fills while
    /// another layer is unpacked may have room again a moment later, when that layer's
    /// temp files are gone; the drain would then count a short blob instead of the full disk).
    write_error: Option<(io::ErrorKind, String)>,
}

impl<W: Write> Read for TeeReader<W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            if let Some((kind, message)) = &self.write_error {
                return Err(io::Error::new(*kind, message.clone()));
            }
            match self.rx.blocking_recv() {
                Some(Chunk::Data(b)) => {
                    if let Err(e) = self.file.write_all(&b) {
                        let message = format!("{}: {e}", self.path.display());
                        self.write_error = Some((e.kind(), message));
                        continue;
                    }
                    self.hasher.update(&b);
                    self.size += b.len() as u64;
                    self.current = b;
                }
                Some(Chunk::Abort) => return Err(io::Error::other("download interrupted")),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// Runs on a blocking thread: unpacks (when asked) while teeing into the blob file, drains
/// what the unpacker did not read, and checks digest and size before the unpack result: a
/// corrupt blob is reported as such, not as the tar error it caused.
fn sink(
    rx: mpsc::Receiver<Chunk>,
    job: &LayerJob,
    blob_tmp: &Path,
    layer_tmp: Option<&Path>,
) -> Result<(), ImageError> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(blob_tmp)
        .map_err(|e| ImageError::io(blob_tmp, e))?;
    let mut reader = TeeReader {
        rx,
        current: bytes::Bytes::new(),
        file,
        path: blob_tmp.to_path_buf(),
        hasher: Sha256::new(),
        size: 0,
        write_error: None,
    };
    let unpacked = match layer_tmp {
        Some(dir) => {
            unpack_layer_from(dir, &mut reader, &job.digest, job.compression, &job.diff_id)
        }
        None => Ok(()),
    };
    let drained = io::copy(&mut reader, &mut io::sink());
    let actual = format!("sha256:{}", hex::encode(reader.hasher.finalize_reset()));
    if let Err(e) = drained {
        // Interrupted download (reported by the caller) or a write error on the temp file,
        // whose message names the file already: say which layer it was.
        return Err(ImageError::io(format!("layer {}", job.digest), e));
    }
    if reader.size != job.size {
        return Err(ImageError::BlobSize {
            digest: job.digest.clone(),
            expected: job.size,
            actual: reader.size,
        });
    }
    if actual != job.digest {
        return Err(ImageError::BlobCorrupt {
            digest: job.digest.clone(),
            actual,
        });
    }
    unpacked?;
    // The blob and the layer are trusted as soon as their final names exist, so their bytes
    // must be on disk before the renames: otherwise a power cut could leave a named but empty
    // file that every later pull would take as verified. One syncfs covers the blob and every
    // file of the layer (and whatever else is dirty on that filesystem, written anyway).
    reader
        .file
        .sync_all()
        .and_then(|()| syncfs(&reader.file))
        .map_err(|e| ImageError::io(blob_tmp, e))
}

/// syncfs(2) on the filesystem holding `file`.
fn syncfs(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for the duration of the call; syncfs only reads it.
    if unsafe { libc::syncfs(file.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blob file on a disk that is full for one write, then has room again.
    struct FullOnce {
        failed: bool,
        written: Vec<u8>,
    }

    impl Write for FullOnce {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if !self.failed {
                self.failed = true;
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_lost_chunk_fails_every_later_read_with_the_write_error() {
        let (tx, rx) = mpsc::channel(4);
        for chunk in [&b"first"[..], b"second", b"third"] {
            tx.try_send(Chunk::Data(bytes::Bytes::from_static(chunk)))
                .expect("the channel has room");
        }
        drop(tx);
        let mut reader = TeeReader {
            rx,
            current: bytes::Bytes::new(),
            file: FullOnce {
                failed: false,
                written: Vec::new(),
            },
            path: PathBuf::from("/lib/images/tmp/blob-1"),
            hasher: Sha256::new(),
            size: 0,
            write_error: None,
        };
        let mut buf = [0u8; 16];
        for _ in 0..2 {
            let e = reader
                .read(&mut buf)
                .expect_err("a read after a failed write succeeded");
            assert_eq!(e.raw_os_error(), None);
            assert_eq!(e.kind(), io::ErrorKind::StorageFull);
            assert!(e.to_string().starts_with("/lib/images/tmp/blob-1: "), "{e}");
            assert!(e.to_string().contains("No space left on device"), "{e}");
        }
        let drained = io::copy(&mut reader, &mut io::sink());
        assert!(
            drained.is_err(),
            "the drain took a short blob for a whole one"
        );
        assert_eq!(reader.size, 0, "bytes counted past a lost chunk");
    }
}
