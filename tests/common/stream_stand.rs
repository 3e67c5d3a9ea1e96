//! The stand-in behind the host tests of the CRI streaming server (tests/cri_stream.rs,
//! tests/cri_stream_clients.rs): a resolver of made-up ids, a backend whose commands the test
//! answers, and a loopback echo server as the pod's port.

// Each test binary uses only some of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use k8s_cri::v1 as cri;
use peapod::cri::streaming::session::{Backend, BoxFuture, Io};
use peapod::cri::streaming::{self, ContainerTarget, Resolver, StreamingServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Containers;

impl Resolver for Containers {
    fn container(&self, id: &str) -> Result<ContainerTarget, tonic::Status> {
        match id {
            "missing" => Err(tonic::Status::not_found(format!(
                "container {id:?} not found"
            ))),
            _ => Ok(ContainerTarget {
                pod_uid: "uid-1".into(),
                container_name: id.into(),
                sandbox_id: "sandbox-1".into(),
                running: id != "stopped",
                state: if id == "stopped" {
                    "CONTAINER_EXITED"
                } else {
                    "CONTAINER_RUNNING"
                }
                .into(),
            }),
        }
    }

    fn sandbox(&self, id: &str) -> Result<String, tonic::Status> {
        match id {
            "missing" => Err(tonic::Status::not_found(format!(
                "sandbox {id:?} not found"
            ))),
            _ => Ok(format!("uid-of-{id}")),
        }
    }
}

/// Commands the stand-in answers: `echo ARGS` (stdout), `warn ARGS` (stderr), `exit N`, `cat`
/// (stdin to stdout), `sizes` (each resize as "WxH\n", until stdin ends), `sleep`, `fail`
/// (cannot start), `flood N` (N MiB on stdout).
pub struct Stand;

impl Backend for Stand {
    fn exec(
        &self,
        _t: ContainerTarget,
        cmd: Vec<String>,
        mut io: Io,
    ) -> BoxFuture<Result<i32, String>> {
        Box::pin(async move {
            let args = cmd[1..].join(" ");
            match cmd[0].as_str() {
                "echo" => {
                    io.stdout
                        .as_ref()
                        .unwrap()
                        .write(format!("{args}\n").into_bytes())
                        .await;
                    Ok(0)
                }
                "warn" => {
                    io.stderr
                        .as_ref()
                        .unwrap()
                        .write(format!("{args}\n").into_bytes())
                        .await;
                    Ok(1)
                }
                "exit" => Ok(args.parse().unwrap()),
                "cat" => {
                    let mut stdin = io.stdin.take().unwrap();
                    while let Some(d) = stdin.recv().await {
                        io.stdout.as_ref().unwrap().write(d).await;
                    }
                    Ok(0)
                }
                "sizes" => {
                    let mut stdin = io.stdin.take().unwrap();
                    let mut resize = io.resize.take().unwrap();
                    loop {
                        tokio::select! {
                            s = resize.recv() => match s {
                                Some(s) => { io.stdout.as_ref().unwrap().write(format!("{}x{}\n", s.width, s.height).into_bytes()).await; }
                                None => return Ok(0),
                            },
                            d = stdin.recv() => if d.is_none() { return Ok(0) },
                        }
                    }
                }
                "sleep" => {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok(0)
                }
                "flood" => {
                    let mib: usize = args.parse().unwrap();
                    for _ in 0..mib * 16 {
                        io.stdout
                            .as_ref()
                            .unwrap()
                            .write(vec![b'x'; 64 * 1024])
                            .await;
                    }
                    Ok(0)
                }
                _ => Err(format!(
                    "exec: {:?}: executable file not found in $PATH",
                    cmd[0]
                )),
            }
        })
    }

    fn attach(&self, t: ContainerTarget, io: Io) -> BoxFuture<Result<(), String>> {
        Box::pin(async move {
            if let Some(out) = &io.stdout {
                out.write(format!("attached to {}\n", t.container_name).into_bytes())
                    .await;
            }
            if let Some(err) = &io.stderr {
                err.write(b"on stderr\n".to_vec()).await;
            }
            Ok(())
        })
    }

    fn dial(&self, _pod: String, port: u16) -> BoxFuture<Result<tokio::net::TcpStream, String>> {
        Box::pin(async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| format!("dial tcp4 127.0.0.1:{port}: {e}"))
        })
    }
}

pub async fn server() -> StreamingServer {
    let addr = "127.0.0.1:0".parse().unwrap();
    streaming::start(addr, Arc::new(Stand)).await.unwrap()
}

pub fn exec_request(
    id: &str,
    cmd: &[&str],
    stdin: bool,
    stderr: bool,
    tty: bool,
) -> cri::ExecRequest {
    cri::ExecRequest {
        container_id: id.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty,
        stdin,
        stdout: true,
        stderr,
    }
}

pub fn exec_url(s: &StreamingServer, cmd: &[&str], stdin: bool, stderr: bool, tty: bool) -> String {
    streaming::exec(s, &Containers, exec_request("app", cmd, stdin, stderr, tty))
        .unwrap()
        .url
}

/// A loopback server standing in for the pod's port: answers "echo: " and what it read, then
/// closes.
pub async fn echo_server() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1024];
                let n = c.read(&mut buf).await.unwrap_or(0);
                let mut answer = b"echo: ".to_vec();
                answer.extend_from_slice(&buf[..n]);
                let _ = c.write_all(&answer).await;
            });
        }
    });
    port
}
