//! The CRI socket and the server loop. The socket is 0600 before it appears at its path (only
//! root may drive the runtime); a socket left
//! by a dead server is replaced, a live server's is not; at exit the socket is removed unless
//! another server has replaced it meanwhile.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use k8s_cri::v1::image_service_server::ImageServiceServer;
use k8s_cri::v1::runtime_service_server::RuntimeServiceServer;
use tokio::signal::unix::{signal, SignalKind};

use super::events::{self, Events};
use super::image_service::CriImages;
use super::runtime_service::CriRuntime;
use super::streaming::{self, backend::PodBackend};
use crate::store::Paths;

/// Worker threads of the server's runtime: calls are short but for pulls, which run on
/// blocking threads.
const WORKER_THREADS: usize = 2;
/// How often ended keepers are collected.
const REAP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a stopping server waits for its clients (the node agent waits 5 s, then kills).
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(2);
/// The streaming server's address: containerd's `stream_server_address` and `_port` defaults.
const STREAM_ADDRESS: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("another CRI server is listening on {0}")]
    InUse(PathBuf),
    #[error("{0} exists and is not a socket; not replacing it")]
    NotASocket(PathBuf),
    #[error(transparent)]
    Streaming(#[from] streaming::http::HttpError),
    #[error("serving the CRI on {path}: {source}")]
    Serve {
        path: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CriError {
    let path = path.to_path_buf();
    move |source| CriError::Io { what, path, source }
}

/// Makes the listening socket at `path` (mode 0600), replacing a stale one.
pub fn bind(path: &Path) -> Result<UnixListener, CriError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_error("creating", dir))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(CriError::InUse(path.to_path_buf()));
            }
            tracing::info!(socket = %path.display(), "removing the socket a stopped server left");
            std::fs::remove_file(path).map_err(io_error("removing", path))?;
        }
        Ok(_) => return Err(CriError::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("inspecting", path)(e)),
    }
    // Bound in a private directory, made 0600 and only then renamed into place: nobody can
    // connect while the mode is still the umask's (a umask change would touch the whole
    // process).
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let private = dir.join(format!(".{name}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&private);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(io_error("creating", &private))?;
    let staged = private.join(&name);
    let result = UnixListener::bind(&staged)
        .map_err(io_error("binding", &staged))
        .and_then(|l| {
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))
                .map_err(io_error("chmod", &staged))?;
            std::fs::rename(&staged, path).map_err(io_error("renaming the socket to", path))?;
            Ok(l)
        });
    let _ = std::fs::remove_dir_all(&private);
    let listener = result?;
    listener
        .set_nonblocking(true)
        .map_err(io_error("configuring", path))?;
    Ok(listener)
}

/// The socket file's identity, to remove only our own at exit.
fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Serves the CRI on `socket` until SIGTERM or SIGINT, then removes the socket.
pub fn serve(paths: Paths, socket: &Path) -> Result<(), CriError> {
    let listener = bind(socket)?;
    let ours = identity(socket);
    let result = run(paths, socket, listener);
    if ours.is_some() && identity(socket) == ours {
        if let Err(e) = std::fs::remove_file(socket) {
            tracing::warn!(socket = %socket.display(), error = %e, "cannot remove the CRI socket");
        }
    }
    result
}

fn run(paths: Paths, socket: &Path, listener: UnixListener) -> Result<(), CriError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .thread_name("peapod-cri")
        .enable_all()
        .build()
        .map_err(io_error("starting the runtime for", socket))?;
    rt.block_on(async {
        let listener =
            tokio::net::UnixListener::from_std(listener).map_err(io_error("listening on", socket))?;
        let mut term = signal(SignalKind::terminate()).map_err(io_error("SIGTERM handler for", socket))?;
        let mut int = signal(SignalKind::interrupt()).map_err(io_error("SIGINT handler for", socket))?;
        let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!("CRI server stopping");
            let _ = stopping.send(());
        };
        // The streaming server Exec, Attach and PortForward send clients to (127.0.0.1 and a
        // random port, as containerd's defaults); it lives as long as this runtime.
        let exe = std::env::current_exe().map_err(io_error("locating the peapod binary for", socket))?;
        let backend = std::sync::Arc::new(PodBackend::new(paths.clone(), exe));
        let streaming = streaming::start(STREAM_ADDRESS, backend)
            .await
            .map_err(CriError::Streaming)?;
        tracing::info!(socket = %socket.display(), version = env!("CARGO_PKG_VERSION"), "CRI server listening");
        // The keepers this server started (RunPodSandbox) are its children: collected as
        // they end, between calls too.
        tokio::spawn(async {
            let mut every = tokio::time::interval(REAP_EVERY);
            loop {
                every.tick().await;
                crate::pod::lifecycle::reap_started();
            }
        });
        // GetContainerEvents: the calls send their own; the watcher the exits nobody asked for.
        let events = Events::new();
        tokio::spawn(events::watch(events.clone(), paths.clone()));
        let server = tonic::transport::Server::builder()
            .add_service(RuntimeServiceServer::new(CriRuntime::new(paths.clone(), streaming, events)))
            .add_service(ImageServiceServer::new(CriImages::new(paths)))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::UnixListenerStream::new(listener),
                shutdown,
            );
        // A graceful stop waits for every connection to go; a client that keeps one open
        // (idle, or in a long pull) gets STOP_GRACE, then the server exits anyway.
        let grace = async {
            if stopped.await.is_ok() {
                tokio::time::sleep(STOP_GRACE).await;
                tracing::warn!("clients still connected after {STOP_GRACE:?}; exiting");
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            served = server => served.map_err(|source| CriError::Serve {
                path: socket.to_path_buf(),
                source,
            }),
            () = grace => Ok(()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_is_private_and_a_stale_one_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/cri.sock");
        let first = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Listening: refused.
        assert!(matches!(bind(&path), Err(CriError::InUse(_))));
        drop(first);
        // Left behind by a dead server: replaced.
        let second = bind(&path).unwrap();
        drop(second);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"not a socket").unwrap();
        let e = bind(&path).unwrap_err().to_string();
        assert!(e.contains("is not a socket"), "{e}");
    }
}
