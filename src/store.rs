//! The on-disk layout shared by the CLI and the per-pod supervisors, atomic writes and locks.
//!
//! State on disk is the API between peapod's processes: `/var/lib/peapod` holds what survives a
//! reboot (images, layers, pod records, the IP allocator), `/run/peapod` what does not (sandbox
//! files, per-pod runtime state), `/var/log/pods` the container logs. Every write that another
//! process may read goes through [`write_atomic`]. This module must not know what a pod is.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Overrides for the three roots, mainly for tests and for running several instances side by side.
pub const ENV_LIB_DIR: &str = "PEAPOD_LIB_DIR";
pub const ENV_RUN_DIR: &str = "PEAPOD_RUN_DIR";
pub const ENV_LOG_DIR: &str = "PEAPOD_LOG_DIR";

pub const DEFAULT_LIB_DIR: &str = "/var/lib/peapod";
pub const DEFAULT_RUN_DIR: &str = "/run/peapod";
pub const DEFAULT_LOG_DIR: &str = "/var/log/pods";

/// A container instance's writable layer: overlay's upperdir and workdir, on one filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WritableLayer {
    pub upper: PathBuf,
    pub work: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl StoreError {
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }

    /// True when the underlying cause is a missing file.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// The roots of peapod's on-disk state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// Persistent state: `/var/lib/peapod`.
    pub lib: PathBuf,
    /// Runtime state, gone at reboot: `/run/peapod`.
    pub run: PathBuf,
    /// Container logs: `/var/log/pods`.
    pub log: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            lib: PathBuf::from(DEFAULT_LIB_DIR),
            run: PathBuf::from(DEFAULT_RUN_DIR),
            log: PathBuf::from(DEFAULT_LOG_DIR),
        }
    }
}

impl Paths {
    /// The defaults, each overridable by its `PEAPOD_*_DIR` environment variable.
    pub fn from_env() -> Self {
        let pick = |var: &str, default: &str| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(default))
        };
        Paths {
            lib: pick(ENV_LIB_DIR, DEFAULT_LIB_DIR),
            run: pick(ENV_RUN_DIR, DEFAULT_RUN_DIR),
            log: pick(ENV_LOG_DIR, DEFAULT_LOG_DIR),
        }
    }

    /// All three roots under one directory (tests).
    pub fn under(root: &Path) -> Self {
        Paths {
            lib: root.join("lib"),
            run: root.join("run"),
            log: root.join("log"),
        }
    }

    /// The content store: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`).
    pub fn images(&self) -> PathBuf {
        self.lib.join("images")
    }

    /// Unpacked layers, one directory per layer. Kept short: overlay's mount options are limited
    /// to one page, so lowerdir paths must stay small.
    pub fn layers(&self) -> PathBuf {
        self.lib.join("l")
    }

    /// The empty mount targets every container's overlay may have above its image
    /// (`container::mountpoints`); beside the layers, so that relative lowerdirs stay short.
    pub fn mountpoints_layer(&self) -> PathBuf {
        self.lib.join("mountpoints")
    }

    /// The node's seccomp profiles: a `Localhost` profile's `localhostProfile` is a path
    /// relative to this directory (the kubelet's `<root-dir>/seccomp`).
    pub fn seccomp_profiles(&self) -> PathBuf {
        self.lib.join("seccomp")
    }

    /// Per-pod persistent records: `pods/<uid>/`.
    pub fn pods(&self) -> PathBuf {
        self.lib.join("pods")
    }

    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.pods().join(uid)
    }

    /// Per-pod runtime directory: sandbox files (hosts, resolv.conf, hostname, shm), the
    /// supervisor's log and sockets, the containers' bundles ([`Paths::instance_bundle`]).
    pub fn pod_run_dir(&self, uid: &str) -> PathBuf {
        self.run_pods().join(uid)
    }

    /// A container instance's bundle (config.json, the rootfs mount point, the termination
    /// log): runtime state, gone with a reboot as its processes are, kept where containerd
    /// keeps its bundles (under /run, a tmpfs on a usual host: nothing on the disk is created
    /// for it at each start). `<run>/pods/<uid>/containers/<name>/<n>/`.
    pub fn instance_bundle(&self, uid: &str, name: &str, attempt: u32) -> PathBuf {
        self.pod_run_dir(uid)
            .join(crate::pod::record::CONTAINERS_DIR)
            .join(name)
            .join(attempt.to_string())
    }

    /// A container instance's writable layer: overlay's upperdir and workdir, on the disk with
    /// the pod's record, side by side in `<lib>/pods/<uid>/containers/` as
    /// `<name>.<n>.upper` and `<name>.<n>.work` (a container name has no dot). Flat, so that a
    /// pod's first instance makes three directories on the disk rather than the five of the
    /// earlier `<name>/<n>/{upper,work}` (each mkdir costs 0.1-0.3 ms on an ext4 without a
    /// journal that has seen many recent deletions: `docs/benchmarks.md`).
    pub fn instance_layer(&self, uid: &str, name: &str, attempt: u32) -> WritableLayer {
        let dir = self.pod_dir(uid).join(crate::pod::record::CONTAINERS_DIR);
        WritableLayer {
            upper: dir.join(format!("{name}.{attempt}.upper")),
            work: dir.join(format!("{name}.{attempt}.work")),
        }
    }

    /// The writable layer of the instance whose bundle is `bundle` (`instance_bundle`'s
    /// path: `<run>/pods/<uid>/containers/<name>/<n>`); None for a path of another shape.
    pub fn layer_of_bundle(&self, bundle: &Path) -> Option<WritableLayer> {
        let rel = bundle.strip_prefix(self.run_pods()).ok()?;
        let parts: Vec<_> = rel.iter().map(|p| p.to_str()).collect::<Option<_>>()?;
        match parts[..] {
            [uid, crate::pod::record::CONTAINERS_DIR, name, attempt] => {
                Some(self.instance_layer(uid, name, attempt.parse().ok()?))
            }
            _ => None,
        }
    }

    /// Every directory on the disk the writable layer of the instance whose bundle is `bundle`
    /// may occupy, in this layout or an earlier one (a pod started by an earlier build): for
    /// removal, which skips those that do not exist.
    pub fn layer_dirs_of_bundle(&self, bundle: &Path) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        if let Some(layer) = self.layer_of_bundle(bundle) {
            dirs.extend([layer.upper, layer.work]);
        }
        // Earlier: `<lib>/pods/<uid>/containers/<name>/<n>/{upper,work}` beside a bundle in
        // the run directory, and before that the bundle itself in the record directory.
        match bundle.strip_prefix(self.run_pods()) {
            Ok(rel) => dirs.push(self.pods().join(rel)),
            Err(_) => dirs.push(bundle.to_path_buf()),
        }
        dirs
    }

    /// The runtime directories of all pods: `<run>/pods/`.
    pub fn run_pods(&self) -> PathBuf {
        self.run.join("pods")
    }

    /// `/var/log/pods/<namespace>_<pod>_<uid>`, as the kubelet lays it out.
    pub fn pod_log_dir(&self, namespace: &str, name: &str, uid: &str) -> PathBuf {
        self.log.join(format!("{namespace}_{name}_{uid}"))
    }

    /// `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restartCount>.log`.
    pub fn container_log(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        container: &str,
        restart_count: u32,
    ) -> PathBuf {
        self.pod_log_dir(namespace, name, uid)
            .join(container)
            .join(format!("{restart_count}.log"))
    }

    /// The pod-network state (IP allocations).
    pub fn network(&self) -> PathBuf {
        self.lib.join("network")
    }

    /// Network runtime state, gone at reboot with the pods' namespaces: `<run>/network`.
    pub fn run_network(&self) -> PathBuf {
        self.run.join("network")
    }

    /// Stored API objects other than pods: `objects/<resource>/<namespace>/<name>.json`.
    pub fn objects(&self) -> PathBuf {
        self.lib.join("objects")
    }

    /// The lock taken while pods are created or removed, so two `apply`s cannot claim one name.
    pub fn pods_lock(&self) -> PathBuf {
        self.lib.join("pods.lock")
    }
}

/// Writes `data` to `path` so that a reader sees either the old or the new content, never a
/// torn one, and the content survives a power loss: a temp file in the same directory, fsync,
/// rename, fsync of the directory (the rename is a change of the directory, which the file's
/// fsync does not make durable: fsync(2), NOTES).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    write_replace(path, data, true, 0o644)
}

/// [`write_atomic`] for a file only root may read (mode 0600): stored Secrets, credentials.
pub fn write_atomic_private(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    write_replace(path, data, true, 0o600)
}

/// Like [`write_atomic`] without the fsync: readers never see a torn file, but a power loss may
/// lose the update or leave the file empty ([`read_json_volatile`] reads such a file as
/// missing). For runtime state that a reboot makes moot anyway (status, events, the resources a
/// pod holds, sandbox files, bundles), where an fsync per write would cost milliseconds on
/// every pod start.
pub fn write_volatile(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    write_replace(path, data, false, 0o644)
}

fn write_replace(path: &Path, data: &[u8], durable: bool, mode: u32) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    write_replace_in(dir, path, data, durable, mode)
}

/// [`write_json`] into a directory that must exist already (NotFound otherwise): for a file
/// about a record that another process may be removing at that moment, such as a pod's
/// `delete.json` while its supervisor tears the pod down, which must not bring the directory
/// back as an empty shell no listing shows.
pub fn write_json_in_existing_dir<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let data = json_bytes(path, value, true)?;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    write_replace_in(dir, path, &data, true, 0o644)
}

fn write_replace_in(
    dir: &Path,
    path: &Path,
    data: &[u8],
    durable: bool,
    mode: u32,
) -> Result<(), StoreError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
            return fs::rename(&tmp, path);
        }
        drop(f);
        put_in_place(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(StoreError::io(path, e));
    }
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Puts the volatile file `tmp` in the place of `path`: exchanged with the file there
/// (renameat2's RENAME_EXCHANGE), whose old content is then unlinked, else renamed. ext4 treats
/// a rename over an existing file as a request for durability (auto_da_alloc): it allocates the
/// new file's blocks at once, and the next replacement frees them, which on a disk mounted with
/// `discard` (this host's) waits for the device to discard them, on every status write of every
/// pod. An exchange does neither: the file's blocks are allocated by the usual writeback, and a
/// version replaced before that frees none. Readers see the old or the new content throughout.
fn put_in_place(tmp: &Path, path: &Path) -> io::Result<()> {
    use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
    match renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RenameFlags::RENAME_EXCHANGE) {
        Ok(()) => {
            // The old content, now under the temporary name. Left behind only if the unlink
            // fails, and then reused by this process's next write of the file.
            let _ = fs::remove_file(tmp);
            Ok(())
        }
        // Nothing to exchange with yet, or a filesystem without exchanges: a rename.
        Err(nix::errno::Errno::ENOENT | nix::errno::Errno::EINVAL | nix::errno::Errno::ENOSYS) => {
            fs::rename(tmp, path)
        }
        Err(e) => Err(e.into()),
    }
}

/// fsync of a directory, so that entries just created, renamed or removed in it survive a
/// power loss.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

/// `value` as JSON (`pretty`: indented, for files people read), a failure naming `path`.
fn json_bytes<T: Serialize>(path: &Path, value: &T, pretty: bool) -> Result<Vec<u8>, StoreError> {
    let encoded = if pretty {
        serde_json::to_vec_pretty(value)
    } else {
        serde_json::to_vec(value)
    };
    encoded.map_err(|source| StoreError::Json {
        path: path.to_path_buf(),
        source,
    })
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let data = json_bytes(path, value, true)?;
    write_atomic(path, &data)
}

/// [`write_json`] through [`write_volatile`], compact (these files are rewritten often).
pub fn write_json_volatile<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let data = json_bytes(path, value, false)?;
    write_volatile(path, &data)
}

/// Compact JSON written straight into `path`, in a directory of its own that no reader sees
/// yet (made here; the caller renames it into place, which is what makes the file appear
/// whole): no temporary file and no rename of its own. Not made durable.
pub fn write_json_unseen<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let data = json_bytes(path, value, false)?;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .and_then(|mut f| f.write_all(&data))
        .map_err(|e| StoreError::io(path, e))
}

pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, StoreError> {
    let data = fs::read(path).map_err(|e| StoreError::io(path, e))?;
    decode_json(path, &data)
}

/// `data`, read from `path`, decoded; a failure names the file.
fn decode_json<T: DeserializeOwned>(path: &Path, data: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(data).map_err(|source| StoreError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// [`read_json`] of a file [`write_volatile`] writes: None when it is missing or empty (what a
/// power loss can leave of one whose last content was never written back).
pub fn read_json_volatile<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    let data = match fs::read(path) {
        Ok(data) if data.is_empty() => return Ok(None),
        Ok(data) => data,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io(path, e)),
    };
    decode_json(path, &data).map(Some)
}

/// An exclusive advisory lock (flock) held until dropped.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl std::os::fd::AsRawFd for FileLock {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self._file.as_raw_fd()
    }
}

impl std::os::fd::AsFd for FileLock {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self._file.as_fd()
    }
}

impl FileLock {
    /// Blocks until the lock on `path` (created if missing) is held.
    pub fn exclusive(path: &Path) -> Result<FileLock, StoreError> {
        Self::acquire(path, libc::LOCK_EX)
    }

    /// Blocks until a shared lock on `path` (created if missing) is held: any number of shared
    /// holders, none while an exclusive one holds it.
    pub fn shared(path: &Path) -> Result<FileLock, StoreError> {
        Self::acquire(path, libc::LOCK_SH)
    }

    /// The exclusive lock on `path` if no one holds it now, else None (does not wait).
    pub fn try_exclusive(path: &Path) -> Result<Option<FileLock>, StoreError> {
        match Self::acquire(path, libc::LOCK_EX | libc::LOCK_NB) {
            Ok(lock) => Ok(Some(lock)),
            Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::WouldBlock => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// True when some process holds a lock on the existing file `path` (a probe: takes and
    /// drops an exclusive lock without waiting).
    pub fn is_held(path: &Path) -> Result<bool, StoreError> {
        let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(false);
        }
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            Ok(true)
        } else {
            Err(StoreError::io(path, err))
        }
    }

    fn acquire(path: &Path, op: libc::c_int) -> Result<FileLock, StoreError> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| StoreError::io(path, e))?;
        loop {
            // SAFETY: flock on a file descriptor we own; no memory is involved.
            let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
            if rc == 0 {
                break;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(StoreError::io(path, err));
            }
        }
        Ok(FileLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instances_writable_layer_sits_beside_the_others_and_earlier_layouts_are_removed_too() {
        let paths = Paths::under(Path::new("/r"));
        let bundle = paths.instance_bundle("u1", "web", 3);
        let layer = paths.instance_layer("u1", "web", 3);
        assert_eq!(
            layer.upper,
            paths.pod_dir("u1").join("containers/web.3.upper")
        );
        assert_eq!(
            layer.work,
            paths.pod_dir("u1").join("containers/web.3.work")
        );
        assert_eq!(paths.layer_of_bundle(&bundle), Some(layer.clone()));
        assert_eq!(
            paths.layer_dirs_of_bundle(&bundle),
            [
                layer.upper,
                layer.work,
                paths.pod_dir("u1").join("containers/web/3")
            ]
        );
        // A bundle of the oldest layout, in the record directory, held its layer itself.
        let old = paths.pod_dir("u1").join("containers/web/0");
        assert_eq!(paths.layer_of_bundle(&old), None);
        assert_eq!(paths.layer_dirs_of_bundle(&old), [old]);
        assert_eq!(
            paths.layer_of_bundle(&paths.pod_run_dir("u1").join("x")),
            None
        );
    }

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/state.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn volatile_write_exchanges_the_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/status.json");
        write_volatile(&p, b"[1]").unwrap();
        let mut reader = File::open(&p).unwrap();
        write_volatile(&p, b"[2]").unwrap();
        write_volatile(&p, b"[3]").unwrap();
        assert_eq!(read_json_volatile::<Vec<i32>>(&p).unwrap(), Some(vec![3]));
        let names: Vec<_> = fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1, "a temporary file was left beside it");
        // A new file each time, as with a rename: a reader that opened the old one reads it whole.
        let mut old = String::new();
        io::Read::read_to_string(&mut reader, &mut old).unwrap();
        assert_eq!(old, "[1]");
    }

    #[test]
    fn a_volatile_file_missing_or_left_empty_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        assert_eq!(read_json_volatile::<Vec<i32>>(&p).unwrap(), None);
        fs::write(&p, b"").unwrap();
        assert_eq!(read_json_volatile::<Vec<i32>>(&p).unwrap(), None);
        fs::write(&p, b"[").unwrap();
        let err = read_json_volatile::<Vec<i32>>(&p).unwrap_err();
        assert!(err.to_string().contains("state.json"), "{err}");
    }

    #[test]
    fn unseen_write_makes_its_directory_takes_no_temporary_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("pods/.new-u1-7");
        let p = staging.join("pod.json");
        write_json_unseen(&p, &vec![1, 2]).unwrap();
        assert_eq!(read_json::<Vec<i32>>(&p).unwrap(), vec![1, 2]);
        let names: Vec<_> = fs::read_dir(&staging).unwrap().collect();
        assert_eq!(names.len(), 1, "a temporary file was left beside it");
        let err = write_json_unseen(&p, &vec![3]).unwrap_err();
        assert!(err.to_string().contains("pod.json"), "{err}");
        assert_eq!(read_json::<Vec<i32>>(&p).unwrap(), vec![1, 2]);
    }

    #[test]
    fn directory_sync_names_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        sync_dir(dir.path()).unwrap();
        let missing = dir.path().join("gone");
        let err = sync_dir(&missing).unwrap_err();
        assert!(err.is_not_found());
        assert!(err.to_string().starts_with(&missing.display().to_string()));
    }

    #[test]
    fn write_into_a_removed_directory_is_not_found_and_does_not_recreate_it() {
        let dir = tempfile::tempdir().unwrap();
        let pod = dir.path().join("pods").join("u1");
        fs::create_dir_all(&pod).unwrap();
        write_json_in_existing_dir(&pod.join("delete.json"), &1).unwrap();
        assert_eq!(read_json::<i32>(&pod.join("delete.json")).unwrap(), 1);
        fs::remove_dir_all(&pod).unwrap();
        let err = write_json_in_existing_dir(&pod.join("delete.json"), &2).unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert!(!pod.exists(), "the removed directory came back");
    }

    #[test]
    fn json_round_trip_and_missing_file_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        write_json(&p, &vec![1, 2, 3]).unwrap();
        let v: Vec<i32> = read_json(&p).unwrap();
        assert_eq!(v, vec![1, 2, 3]);
        let err = read_json::<Vec<i32>>(&dir.path().join("missing.json")).unwrap_err();
        assert!(err.is_not_found());
    }

    #[test]
    fn log_path_matches_kubelet_layout() {
        let p = Paths::under(Path::new("/t"));
        assert_eq!(
            p.container_log("default", "web", "u1", "nginx", 2),
            PathBuf::from("/t/log/default_web_u1/nginx/2.log")
        );
    }
}
