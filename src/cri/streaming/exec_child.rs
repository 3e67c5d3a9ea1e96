//! `peapod __exec UID CONTAINER [--stdin] [--tty] -- CMD...`: the CRI server's exec, re-executed
//! so the threaded server never forks (exec_in forks and must run single-threaded).
//!
//! It runs CMD in the container with this process's stdio (pipes, or with `--tty` a terminal
//! the server holds the master of: the command then gets a terminal of the container's own,
//! relayed to it) and exits with the command's exit code (`128 + N` for signal N). On
//! descriptor [`REPORT_FD`] it writes one line: `pid N` once a command without a terminal
//! runs (the server kills it on an ExecSync timeout), or `error WHY` when it could not start.

use std::io::Write;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use nix::sys::wait::{waitpid, WaitStatus};

use crate::container::runtime::{exec_in, read_bundle, spawn_in, ExecMode, ExecStdio};
use crate::pod::record::PodRecord;
use crate::store::Paths;

/// The hidden verb.
pub const EXEC_VERB: &str = "__exec";
/// The descriptor the server reads the report from.
pub const REPORT_FD: i32 = 3;
/// The exit code when the command could not start (as runc's and kubectl's 127).
const START_FAILED: i32 = 127;

#[derive(Debug, PartialEq, Eq)]
struct Args {
    uid: String,
    container: String,
    stdin: bool,
    tty: bool,
    command: Vec<String>,
}

fn parse(args: &[String]) -> Option<Args> {
    let (uid, container, rest) = match args {
        [uid, container, rest @ ..] => (uid.clone(), container.clone(), rest),
        _ => return None,
    };
    let split = rest.iter().position(|a| a == "--")?;
    let (flags, command) = (&rest[..split], &rest[split + 1..]);
    if command.is_empty() || flags.iter().any(|f| f != "--stdin" && f != "--tty") {
        return None;
    }
    Some(Args {
        uid,
        container,
        stdin: flags.iter().any(|f| f == "--stdin"),
        tty: flags.iter().any(|f| f == "--tty"),
        command: command.to_vec(),
    })
}

/// The verb's main; the exit code.
pub fn exec_main(args: &[String]) -> i32 {
    // SAFETY: the server passes REPORT_FD open; it is ours alone from here.
    let report = unsafe { OwnedFd::from_raw_fd(REPORT_FD) };
    // Not for the command: its background children must not hold the server's pipe open.
    let _ = nix::fcntl::fcntl(
        report.as_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    let mut report = std::fs::File::from(report);
    let Some(args) = parse(args) else {
        let _ = writeln!(
            report,
            "error usage: peapod {EXEC_VERB} UID CONTAINER [--stdin] [--tty] -- CMD..."
        );
        return 2;
    };
    match run(&Paths::from_env(), &args, &mut report) {
        Ok(code) => code,
        Err(why) => {
            let _ = writeln!(report, "error {why}");
            START_FAILED
        }
    }
}

fn run(paths: &Paths, args: &Args, report: &mut std::fs::File) -> Result<i32, String> {
    let rec = PodRecord::load(paths, &args.uid).map_err(|e| format!("pod {}: {e}", args.uid))?;
    let state = rec
        .state
        .as_ref()
        .and_then(|s| s.containers.get(&args.container));
    let process = state
        .and_then(|c| c.process.clone())
        .filter(|p| p.is_alive())
        .ok_or_else(|| {
            format!(
                "container {:?} of pod {} is not running",
                args.container,
                rec.name()
            )
        })?;
    let bundle = state
        .and_then(|c| c.bundle.clone())
        .ok_or_else(|| format!("container {:?} has no bundle", args.container))?;
    let mut spec = read_bundle(&bundle).map_err(|e| e.to_string())?;
    if args.tty {
        // As containerd's exec with a terminal: TERM=xterm unless the container sets it.
        if let Some(process) = spec.process_mut() {
            let mut env = process.env().clone().unwrap_or_default();
            if !env.iter().any(|e| e.starts_with("TERM=")) {
                env.push("TERM=xterm".to_string());
            }
            process.set_env(Some(env));
        }
        let mode = ExecMode {
            stdin: args.stdin,
            tty: true,
        };
        return exec_in(process.pid, &spec, &args.command, mode).map_err(|e| e.to_string());
    }
    let dup =
        |fd: std::os::fd::BorrowedFd| fd.try_clone_to_owned().map_err(|e| format!("dup: {e}"));
    let stdio = ExecStdio {
        stdin: if args.stdin {
            Some(dup(std::io::stdin().as_fd())?)
        } else {
            None
        },
        stdout: dup(std::io::stdout().as_fd())?,
        stderr: dup(std::io::stderr().as_fd())?,
    };
    let child = spawn_in(process.pid, &spec, &args.command, false, Some(stdio))
        .map_err(|e| e.to_string())?;
    let pid = child.started()?;
    let _ = writeln!(report, "pid {pid}");
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("waitpid: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments() {
        let a = parse(&strings(&[
            "u", "c", "--tty", "--stdin", "--", "sh", "-c", "x",
        ]))
        .unwrap();
        assert_eq!((a.stdin, a.tty), (true, true));
        assert_eq!(a.command, ["sh", "-c", "x"]);
        let a = parse(&strings(&["u", "c", "--", "--tty"])).unwrap();
        assert!(!a.tty);
        assert_eq!(a.command, ["--tty"]);
        assert!(parse(&strings(&["u", "c", "--"])).is_none());
        assert!(parse(&strings(&["u", "c", "--bogus", "--", "x"])).is_none());
        assert!(parse(&strings(&["u"])).is_none());
    }
}
