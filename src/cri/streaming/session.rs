//! What a stream session runs, whichever protocol carries it: the [`Backend`] that execs,
//! attaches and dials, the streams it gets ([`Io`]), and the status the error stream carries at
//! the end, as the kubelet's `remotecommand` package writes it.

use std::future::Future;
use std::pin::Pin;

use serde_json::json;
use tokio::sync::mpsc;

use super::{ContainerTarget, Request, StreamOptions};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The remotecommand stream numbers: the WebSocket channel bytes, and the order the kubelet
/// lists SPDY's `streamType`s in.
pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
/// Not a stream: queued after everything else, it tells the writer the session is over.
pub const END: u8 = 254;

/// A terminal size as the resize stream's JSON says it (`{"Width":80,"Height":24}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub struct TermSize {
    #[serde(alias = "width")]
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(alias = "height")]
    #[serde(rename = "Height")]
    pub height: u16,
}

/// Data for the client on one stream; every stream shares one ordered queue, so the status
/// written last arrives after all output.
#[derive(Debug, Clone)]
pub struct Output {
    tx: mpsc::Sender<(u8, Vec<u8>)>,
    stream: u8,
}

impl Output {
    pub fn new(tx: mpsc::Sender<(u8, Vec<u8>)>, stream: u8) -> Output {
        Output { tx, stream }
    }

    /// False once the client is gone.
    pub async fn write(&self, data: Vec<u8>) -> bool {
        self.tx.send((self.stream, data)).await.is_ok()
    }
}

/// The streams of an exec or attach session: those the request asked for.
#[derive(Debug)]
pub struct Io {
    pub tty: bool,
    /// Client input; the channel closes when the client closes stdin.
    pub stdin: Option<mpsc::Receiver<Vec<u8>>>,
    pub stdout: Option<Output>,
    pub stderr: Option<Output>,
    pub resize: Option<mpsc::Receiver<TermSize>>,
}

/// The queues behind an [`Io`]: the protocol side feeds `stdin`/`resize` and drains `output`.
pub struct IoEnds {
    pub stdin: Option<mpsc::Sender<Vec<u8>>>,
    pub resize: Option<mpsc::Sender<TermSize>>,
    pub output: mpsc::Receiver<(u8, Vec<u8>)>,
    /// For the final status, on the same ordered queue.
    pub status: mpsc::Sender<(u8, Vec<u8>)>,
}

/// Queues for a session with `options`.
pub fn io_for(options: StreamOptions) -> (Io, IoEnds) {
    let (out_tx, out_rx) = mpsc::channel(64);
    let (stdin_tx, stdin_rx) = if options.stdin {
        let (t, r) = mpsc::channel(64);
        (Some(t), Some(r))
    } else {
        (None, None)
    };
    let (resize_tx, resize_rx) = if options.tty {
        let (t, r) = mpsc::channel(8);
        (Some(t), Some(r))
    } else {
        (None, None)
    };
    let io = Io {
        tty: options.tty,
        stdin: stdin_rx,
        stdout: options.stdout.then(|| Output::new(out_tx.clone(), STDOUT)),
        stderr: options.stderr.then(|| Output::new(out_tx.clone(), STDERR)),
        resize: resize_rx,
    };
    let ends = IoEnds {
        stdin: stdin_tx,
        resize: resize_tx,
        output: out_rx,
        status: out_tx,
    };
    (io, ends)
}

/// What the streaming server runs sessions against.
pub trait Backend: Send + Sync + 'static {
    /// Runs `cmd` in the container with `io`; its exit code, or why it could not run.
    fn exec(
        &self,
        target: ContainerTarget,
        cmd: Vec<String>,
        io: Io,
    ) -> BoxFuture<Result<i32, String>>;
    /// Relays the container's output (and stdin) until it ends or the client leaves.
    fn attach(&self, target: ContainerTarget, io: Io) -> BoxFuture<Result<(), String>>;
    /// A connection to `port` on the pod's localhost.
    fn dial(&self, pod_uid: String, port: u16) -> BoxFuture<Result<tokio::net::TcpStream, String>>;
}

/// Runs an exec or attach with its streams, to its [`Ending`].
pub type Run = Box<dyn FnOnce(Io) -> BoxFuture<Ending> + Send>;

/// What a redeemed request runs, whichever transport carries it.
pub enum Session {
    /// Exec or attach: remotecommand streams.
    Command {
        options: StreamOptions,
        run: Run,
    },
    Forward {
        sandbox_id: String,
        pod_uid: String,
    },
}

impl Session {
    pub fn of(backend: std::sync::Arc<dyn Backend>, request: Request) -> Session {
        match request {
            Request::Exec {
                target,
                cmd,
                options,
            } => Session::Command {
                options,
                run: Box::new(move |io| {
                    Box::pin(async move {
                        let command = cmd.clone();
                        Ending::of_exec(&command, backend.exec(target, cmd, io).await)
                    })
                }),
            },
            Request::Attach { target, options } => Session::Command {
                options,
                run: Box::new(move |io| {
                    Box::pin(async move { Ending::of_attach(backend.attach(target, io).await) })
                }),
            },
            Request::PortForward {
                sandbox_id,
                pod_uid,
            } => Session::Forward {
                sandbox_id,
                pod_uid,
            },
        }
    }
}

/// How a session ended, for the error stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Success,
    /// The command exited non-zero (exec only).
    ExitCode {
        cmd: Vec<String>,
        code: i32,
    },
    /// The runtime failed (the kubelet's InternalError).
    Failed(String),
}

impl Ending {
    pub fn of_exec(cmd: &[String], result: Result<i32, String>) -> Ending {
        match result {
            Ok(0) => Ending::Success,
            Ok(code) => Ending::ExitCode {
                cmd: cmd.to_vec(),
                code,
            },
            Err(e) => Ending::Failed(format!("error executing command in container: {e}")),
        }
    }

    pub fn of_attach(result: Result<(), String>) -> Ending {
        match result {
            Ok(()) => Ending::Success,
            Err(e) => Ending::Failed(e),
        }
    }

    /// A metav1.Status as the v4 and v5 protocols carry it: Success; NonZeroExitCode with the
    /// code as an ExitCode cause (containerd's CodeExitError text); InternalError with code 500.
    pub fn status_json(&self) -> Vec<u8> {
        let value = match self {
            Ending::Success => json!({"metadata": {}, "status": "Success"}),
            Ending::ExitCode { code, .. } => json!({
                "metadata": {},
                "status": "Failure",
                "message": self.message(),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
            }),
            Ending::Failed(e) => json!({
                "metadata": {},
                "status": "Failure",
                "message": self.message(),
                "reason": "InternalError",
                "details": {"causes": [{"message": e}]},
                "code": 500,
            }),
        };
        serde_json::to_vec(&value).unwrap_or_default()
    }

    /// The status message; the v1 to v3 protocols send only this, and only on failure.
    pub fn message(&self) -> String {
        match self {
            Ending::Success => String::new(),
            Ending::ExitCode { cmd, code } => format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                cmd.join(" ")
            ),
            Ending::Failed(e) => format!("Internal error occurred: {e}"),
        }
    }

    /// What the error stream carries: the JSON status with `json`, else the message alone.
    pub fn error_stream(&self, json: bool) -> Option<Vec<u8>> {
        match (self, json) {
            (_, true) => Some(self.status_json()),
            (Ending::Success, false) => None,
            (_, false) => Some(self.message().into_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_as_the_kubelet_writes_them() {
        assert_eq!(
            String::from_utf8(Ending::Success.status_json()).unwrap(),
            r#"{"metadata":{},"status":"Success"}"#
        );
        let cmd = vec!["sh".to_string(), "-c".into(), "exit 3".into()];
        let failed = Ending::of_exec(&cmd, Ok(3));
        let v: serde_json::Value = serde_json::from_slice(&failed.status_json()).unwrap();
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["reason"], "NonZeroExitCode");
        assert_eq!(v["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(v["details"]["causes"][0]["message"], "3");
        assert_eq!(
            v["message"],
            "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
        );
        assert!(v.get("code").is_none());
        let internal = Ending::of_exec(&cmd, Err("boom".into()));
        let v: serde_json::Value = serde_json::from_slice(&internal.status_json()).unwrap();
        assert_eq!(v["reason"], "InternalError");
        assert_eq!(v["code"], 500);
        assert_eq!(
            v["message"],
            "Internal error occurred: error executing command in container: boom"
        );
        assert_eq!(Ending::Success.error_stream(false), None);
        assert_eq!(
            failed.error_stream(false).unwrap(),
            failed.message().into_bytes()
        );
    }

    #[test]
    fn resize_messages_parse_as_go_decodes_them() {
        let s: TermSize = serde_json::from_str(r#"{"Width":100,"Height":40}"#).unwrap();
        assert_eq!((s.width, s.height), (100, 40));
        let s: TermSize = serde_json::from_str(r#"{"width":80,"height":24}"#).unwrap();
        assert_eq!((s.width, s.height), (80, 24));
    }
}
