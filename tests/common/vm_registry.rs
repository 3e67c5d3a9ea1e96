//! The registry inside the test VM: Debian's `docker-registry` on loopback, serving the
//! storage `scripts/test` filled on the host (`/peapod/registry`: `library/busybox:1.28`,
//! `busybox:1.27.2` and `team/app:v1`, all the busybox test image, and `faults/big:v1`, busybox
//! plus a 24 MiB layer of random bytes).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// The registry's storage, prepared on the host.
pub const STORAGE: &str = "/peapod/registry";
/// Where the plain registry listens inside the VM (nothing else runs there).
pub const REGISTRY: &str = "127.0.0.1:5000";

static REGISTRY_PROCESS: Mutex<Option<Child>> = Mutex::new(None);

/// Starts `docker-registry` on `addr` over [`STORAGE`], with its config and log in `dir` and
/// `extra` appended to its config; waits until it listens.
pub fn serve(addr: &str, dir: &Path, extra: &str) -> Child {
    serve_storage(addr, dir, Path::new(STORAGE), extra)
}

/// [`serve`] over the storage at `storage` (a registry of the test's own, which it may fill).
pub fn serve_storage(addr: &str, dir: &Path, storage: &Path, extra: &str) -> Child {
    std::fs::create_dir_all(dir).expect("cannot create the registry's directory");
    let storage = storage.display();
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {storage}\nhttp:\n  addr: {addr}\n{extra}"
        ),
    )
    .expect("cannot write the registry config");
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        // Not the test's stdout/stderr: the registry outlives the test binary, and the VM's
        // console pipe must reach EOF when the tests end.
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(dir.join("registry.log"))
                .expect("cannot create the registry's log"),
        )
        .spawn()
        .expect("cannot start docker-registry (scripts/test copies it into the VM)");
    let up = super::wait_for(
        || std::net::TcpStream::connect(addr).is_ok(),
        Duration::from_secs(30),
    );
    assert!(up, "the registry did not start listening on {addr}");
    child
}

/// Starts the plain registry on [`REGISTRY`] once per test process.
pub fn start() {
    let mut guard = REGISTRY_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    if guard.is_none() {
        *guard = Some(serve(REGISTRY, Path::new("/tmp/vm-registry"), ""));
    }
}
