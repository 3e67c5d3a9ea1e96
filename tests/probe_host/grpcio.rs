//! The gRPC probe against a server that is not ours: grpcio's reference health service
//! (`grpc_health_server.py`), from a Python venv under the target directory that
//! `scripts/deps` makes (or, when it is missing, this test's setup).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use peapod::probe::{Action, ProbeResult};

use super::probe;

/// The venv's directory name under the target directory; scripts/deps uses the same.
const VENV: &str = "py-grpc";
const SERVER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/probe_host/grpc_health_server.py"
);

/// The venv's python with grpcio and grpcio-health-checking, made if missing; None (said
/// loudly) only when it cannot be installed.
fn python() -> Option<PathBuf> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            // target/debug/deps/probe_host-<hash>
            let exe = std::env::current_exe().ok()?;
            let venv = exe.ancestors().nth(3)?.join(VENV);
            let python = venv.join("bin/python");
            let ready = || {
                Command::new(&python)
                    .args(["-c", "import grpc, grpc_health.v1.health"])
                    .status()
                    .is_ok_and(|s| s.success())
            };
            if !ready() {
                let made = Command::new("python3")
                    .args(["-m", "venv"])
                    .arg(&venv)
                    .status()
                    .is_ok_and(|s| s.success())
                    && Command::new(venv.join("bin/pip"))
                        .args(["install", "-q", "grpcio", "grpcio-health-checking"])
                        .status()
                        .is_ok_and(|s| s.success());
                if !made || !ready() {
                    eprintln!(
                        "\n!!! SKIPPED: the grpcio health server needs a venv at {} with grpcio \
                         and grpcio-health-checking, and it could not be made (run scripts/deps)\n",
                        venv.display()
                    );
                    return None;
                }
            }
            Some(python)
        })
        .clone()
}

/// A running grpcio health server; stopped when dropped.
struct GrpcioServer {
    child: Child,
    port: u16,
}

impl GrpcioServer {
    fn start(python: &PathBuf, args: &[&str]) -> GrpcioServer {
        let mut child = Command::new(python)
            .arg(SERVER)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("cannot start the grpcio server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the server prints its port");
        GrpcioServer { child, port }
    }

    fn probe(&self, service: &str) -> ProbeResult {
        probe(Action::Grpc {
            host: "127.0.0.1".into(),
            port: self.port,
            service: service.into(),
        })
    }
}

impl Drop for GrpcioServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn grpc_probe_against_grpcio_health_service() {
    let Some(python) = python() else { return };
    let server = GrpcioServer::start(&python, &[]);
    assert_eq!(server.probe(""), ProbeResult::Success);
    assert_eq!(server.probe("ready"), ProbeResult::Success);
    assert_eq!(
        server.probe("down"),
        ProbeResult::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
    );
    // grpcio answers NOT_FOUND with no message; grpc-go prints an empty desc.
    assert_eq!(
        server.probe("missing"),
        ProbeResult::Failure(
            "error: health rpc probe failed: rpc error: code = NotFound desc = ".into()
        )
    );
    // The server goes down: nothing to connect to within the timeout.
    let port = server.port;
    drop(server);
    assert_eq!(
        probe(Action::Grpc {
            host: "127.0.0.1".into(),
            port,
            service: String::new()
        }),
        ProbeResult::Failure(format!(
            "timeout: failed to connect service \"127.0.0.1:{port}\" within 1s: context deadline exceeded"
        ))
    );
}

#[test]
fn grpc_probe_against_a_grpcio_server_without_health() {
    let Some(python) = python() else { return };
    let bare = GrpcioServer::start(&python, &["bare"]);
    assert_eq!(
        bare.probe(""),
        ProbeResult::Failure(
            "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): Method not found!"
                .into()
        )
    );
}
