//! The CLI's spawner: a child forked when a command that may start pods begins, before the
//! CLI decodes anything, which later forks each new pod's keeper (and so its supervisor) on
//! request.
//!
//! Why: a forked process shares its parent's pages copy-on-write, and the keeper holds, for
//! its whole life, the original of every inherited page its supervisor writes afterwards.
//! Forked from the CLI after decoding and checking the pods, it inherited a heap full of the
//! CLI's data (the YAML, the decoded objects, the store's reads), pages the supervisor then
//! reuses: about 100 kB of private memory per keeper, measured with `scripts/supervisor-pss`.
//! Forked from the spawner, it inherits the heap of a process that has done nothing yet.
//!
//! The CLI sends each request on a SOCK_SEQPACKET pair: the pod's uid, with the supervisor's
//! readiness pipe and log file (SCM_RIGHTS). The spawner's child becomes the keeper in its own
//! session (`lifecycle::fork_keeper`, which the CLI runs itself when it has no spawner). At the
//! CLI's end (or its death) the socket closes and the spawner exits; [`finish`] waits for it so
//! that no process of the command outlives it.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use nix::unistd::Pid;

/// The CLI verbs that may start pods.
const STARTING_VERBS: [&str; 4] = ["apply", "create", "replace", "run"];
/// The longest request: a pod uid (a UUID, or one given by a client).
const MAX_REQUEST: usize = 256;

/// The spawner of this process, once started: its pid and our end of its socket.
static SPAWNER: Mutex<Option<(Pid, OwnedFd)>> = Mutex::new(None);

/// Whether a command line (`args[1..]`) may start pods.
pub fn starts_pods(args: &[String]) -> bool {
    args.iter()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .is_some_and(|verb| STARTING_VERBS.contains(&verb.as_str()))
}

/// Forks the spawner. Called first thing in `main`, from a single-threaded process; on any
/// failure there is none, and supervisors are forked from the CLI as before.
pub fn start() {
    if crate::procfs::thread_count() != 1 {
        return;
    }
    let Ok((ours, theirs)) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    ) else {
        return;
    };
    // SAFETY: single-threaded (checked above): the child may run ordinary code. It leaves
    // through _exit and never returns into the CLI.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            drop(ours);
            // SAFETY: _exit without the CLI's destructors or buffers.
            unsafe { libc::_exit(serve(theirs)) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(theirs);
            if let Ok(mut slot) = SPAWNER.lock() {
                *slot = Some((child, ours));
            }
        }
        Err(_) => {}
    }
}

/// Asks the spawner to start the keeper of pod `uid`, whose supervisor signals `ready` and
/// logs to `log`. Err when there is no spawner (the caller forks the keeper itself) or it is
/// gone.
pub fn request(uid: &str, ready: &OwnedFd, log: &std::fs::File) -> std::io::Result<()> {
    let slot = SPAWNER
        .lock()
        .map_err(|_| std::io::Error::other("spawner lock poisoned"))?;
    let Some((_, sock)) = slot.as_ref() else {
        return Err(std::io::Error::other("no spawner"));
    };
    let fds = [ready.as_raw_fd(), log.as_raw_fd()];
    let cmsgs = [ControlMessage::ScmRights(&fds)];
    loop {
        match sendmsg::<()>(
            sock.as_raw_fd(),
            &[IoSlice::new(uid.as_bytes())],
            &cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => return other.map(drop).map_err(std::io::Error::from),
        }
    }
}

/// Closes the socket (the spawner exits at its end) and reaps the spawner.
pub fn finish() {
    let taken = SPAWNER.lock().ok().and_then(|mut slot| slot.take());
    if let Some((pid, sock)) = taken {
        drop(sock);
        let _ = nix::sys::wait::waitpid(pid, None);
    }
}

/// The spawner's loop: one keeper per request, until the CLI closes its end.
fn serve(sock: OwnedFd) -> i32 {
    // The caller's stdio stays the CLI's alone: a pipe it reads ends with the CLI.
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for target in 0..3 {
            // SAFETY: dup2 onto the standard descriptors of this process.
            unsafe { libc::dup2(null.as_raw_fd(), target) };
        }
    }
    loop {
        let mut buf = [0u8; MAX_REQUEST];
        let mut space = nix::cmsg_space!([RawFd; 2]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => m,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 1,
        };
        let n = msg.bytes;
        let mut fds = Vec::new();
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmRights(raw) = c {
                    // SAFETY: SCM_RIGHTS installed these descriptors in our table for us.
                    fds.extend(
                        raw.into_iter()
                            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                    );
                }
            }
        }
        if n == 0 && fds.is_empty() {
            return 0;
        }
        let uid = String::from_utf8_lossy(&buf[..n]).into_owned();
        let mut fds = fds.into_iter();
        if let (Some(ready), Some(log)) = (fds.next(), fds.next()) {
            // A failed fork drops `ready` unwritten: the CLI reports the supervisor's failure.
            let _ = crate::pod::lifecycle::fork_keeper(&uid, ready, log.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn only_verbs_that_start_pods_get_a_spawner() {
        assert!(starts_pods(&args("peapod apply -f pod.yaml")));
        assert!(starts_pods(&args("peapod --namespace=x create -f -")));
        assert!(starts_pods(&args("peapod run web --image=nginx")));
        assert!(!starts_pods(&args("peapod get pods")));
        assert!(!starts_pods(&args("peapod delete pod apply")));
        assert!(!starts_pods(&args("peapod")));
    }
}
