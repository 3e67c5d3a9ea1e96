//! The four calls' work, for the CRI `RuntimeService` to delegate to: `ExecSync` runs the
//! command and answers with its output; `Exec`, `Attach` and `PortForward` validate the request
//! as the kubelet's streaming server and containerd do and answer the URL of a cached request.

use std::time::Duration;

use k8s_cri::v1 as cri;
use tonic::Status;

use super::cache::CacheError;
use super::session::{Io, Output, STDERR, STDOUT};
use super::{ContainerTarget, Request, Resolver, StreamOptions, StreamingServer};

/// The most of each stream ExecSync keeps (containerd's `maxStreamSize`, 16 MiB); the rest is
/// read and dropped.
pub const EXEC_SYNC_MAX_OUTPUT: usize = 16 * 1024 * 1024;

/// A running container, or the refusal: NotFound comes from the resolver; a container that is
/// not running is containerd's "container is in CONTAINER_EXITED state" (gRPC Unknown).
fn running(resolver: &dyn Resolver, container_id: &str) -> Result<ContainerTarget, Status> {
    if container_id.is_empty() {
        return Err(Status::invalid_argument("missing required container_id"));
    }
    let target = resolver.container(container_id)?;
    if !target.running {
        return Err(Status::unknown(format!(
            "container is in {} state",
            target.state
        )));
    }
    Ok(target)
}

/// The kubelet's streaming-server checks of an exec or attach request.
fn stream_options(
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
) -> Result<StreamOptions, Status> {
    if tty && stderr {
        // A terminal has one output stream: there is nothing to multiplex stderr on.
        return Err(Status::invalid_argument(
            "tty and stderr cannot both be true",
        ));
    }
    if !stdin && !stdout && !stderr {
        return Err(Status::invalid_argument(
            "one of stdin, stdout, or stderr must be set",
        ));
    }
    Ok(StreamOptions {
        stdin,
        stdout,
        stderr,
        tty,
    })
}

fn cached(server: &StreamingServer, kind: &str, request: Request) -> Result<String, Status> {
    match server.cache().insert(request) {
        Ok(token) => Ok(server.url(kind, &token)),
        Err(e @ CacheError::TooManyInFlight) => Err(Status::resource_exhausted(e.to_string())),
    }
}

/// `Exec`: the URL of `/exec/<token>`.
pub fn exec(
    server: &StreamingServer,
    resolver: &dyn Resolver,
    request: cri::ExecRequest,
) -> Result<cri::ExecResponse, Status> {
    let target = running(resolver, &request.container_id)?;
    if request.cmd.is_empty() {
        return Err(Status::invalid_argument("cmd: no command given"));
    }
    let options = stream_options(request.stdin, request.stdout, request.stderr, request.tty)?;
    let url = cached(
        server,
        "exec",
        Request::Exec {
            target,
            cmd: request.cmd,
            options,
        },
    )?;
    Ok(cri::ExecResponse { url })
}

/// `Attach`: the URL of `/attach/<token>`.
pub fn attach(
    server: &StreamingServer,
    resolver: &dyn Resolver,
    request: cri::AttachRequest,
) -> Result<cri::AttachResponse, Status> {
    let target = running(resolver, &request.container_id)?;
    let options = stream_options(request.stdin, request.stdout, request.stderr, request.tty)?;
    let url = cached(server, "attach", Request::Attach { target, options })?;
    Ok(cri::AttachResponse { url })
}

/// `PortForward`: the URL of `/portforward/<token>`; the ports come with the stream requests.
pub fn port_forward(
    server: &StreamingServer,
    resolver: &dyn Resolver,
    request: cri::PortForwardRequest,
) -> Result<cri::PortForwardResponse, Status> {
    if request.pod_sandbox_id.is_empty() {
        return Err(Status::invalid_argument("missing required pod_sandbox_id"));
    }
    let pod_uid = resolver.sandbox(&request.pod_sandbox_id)?;
    let sandbox_id = request.pod_sandbox_id;
    let url = cached(
        server,
        "portforward",
        Request::PortForward {
            sandbox_id,
            pod_uid,
        },
    )?;
    Ok(cri::PortForwardResponse { url })
}

/// `ExecSync`: runs `cmd` without stdin, within `timeout` seconds (0: none), and answers its
/// output (each stream capped at [`EXEC_SYNC_MAX_OUTPUT`]) and exit code. As containerd: a
/// timeout is DeadlineExceeded ("timeout 5s exceeded: context deadline exceeded") after the
/// command is killed; a command that cannot start is an error, not an exit code.
pub async fn exec_sync(
    server: &StreamingServer,
    resolver: &dyn Resolver,
    request: cri::ExecSyncRequest,
) -> Result<cri::ExecSyncResponse, Status> {
    let target = running(resolver, &request.container_id)?;
    if request.cmd.is_empty() {
        return Err(Status::invalid_argument("cmd: no command given"));
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(u8, Vec<u8>)>(64);
    let io = Io {
        tty: false,
        stdin: None,
        stdout: Some(Output::new(tx.clone(), STDOUT)),
        stderr: Some(Output::new(tx, STDERR)),
        resize: None,
    };
    let run = server.backend().exec(target, request.cmd, io);
    let collect = async move {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        while let Some((stream, data)) = rx.recv().await {
            let buf = if stream == STDOUT {
                &mut stdout
            } else {
                &mut stderr
            };
            let room = EXEC_SYNC_MAX_OUTPUT.saturating_sub(buf.len());
            buf.extend_from_slice(&data[..data.len().min(room)]);
        }
        (stdout, stderr)
    };
    let both = async { tokio::join!(run, collect) };
    let (code, (stdout, stderr)) = if request.timeout > 0 {
        let limit = Duration::from_secs(request.timeout as u64);
        match tokio::time::timeout(limit, both).await {
            Ok(done) => done,
            Err(_) => {
                return Err(Status::deadline_exceeded(format!(
                    "failed to exec in container: timeout {}s exceeded: context deadline exceeded",
                    request.timeout
                )))
            }
        }
    } else {
        both.await
    };
    let exit_code = code.map_err(|e| {
        Status::unknown(format!(
            "failed to exec in container: failed to start exec: {e}"
        ))
    })?;
    Ok(cri::ExecSyncResponse {
        stdout,
        stderr,
        exit_code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_requests_are_checked_as_the_kubelet_checks_them() {
        let e = stream_options(true, true, true, true).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert_eq!(e.message(), "tty and stderr cannot both be true");
        let e = stream_options(false, false, false, false).unwrap_err();
        assert_eq!(e.message(), "one of stdin, stdout, or stderr must be set");
        assert!(stream_options(true, false, false, true).is_ok());
    }
}
