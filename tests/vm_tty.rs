//! `exec` as kubectl's `-i` and `-t` make it, on real pods: stdin only when asked, and with
//! `-it` a terminal of the container's own, driven here through a pseudo-terminal the test
//! holds as a user's terminal would be (type, read the prompt, resize, exit with a code).
//! Runs only in the test VM (`scripts/test --vm-only --only vm_tty`).

mod common;

use common::*;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::openpty;
use nix::sys::termios::{tcgetattr, LocalFlags};

const SLEEP: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

/// Runs `peapod args` with `input` on its stdin (a pipe); (exit code, stdout, stderr).
fn peapod_with_input(args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = Command::new(peapod_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn stdin_is_passed_only_with_i() {
    require_vm();
    let _pod = start_pod("tty-stdin", &pod_yaml("tty-stdin", "Always", "", SLEEP));
    let (code, out, _) = peapod_with_input(&["exec", "-i", "tty-stdin", "--", "cat"], "data\n");
    assert_eq!((code, out.as_str()), (0, "data\n"));
    // Without -i the command reads nothing: cat ends at once with no output.
    let (code, out, _) = peapod_with_input(&["exec", "tty-stdin", "--", "cat"], "data\n");
    assert_eq!((code, out.as_str()), (0, ""));
    // -t without a terminal: kubectl's warning, and the command runs without one.
    let (code, out, err) = peapod_with_input(
        &["exec", "-it", "tty-stdin", "--", "sh", "-c", "cat; tty"],
        "x\n",
    );
    assert!(
        err.contains("Unable to use a TTY - input is not a terminal or the right kind of file"),
        "{err}"
    );
    assert_eq!(code, 1, "tty(1) fails without a terminal: {out}");
    assert!(out.starts_with("x\nnot a tty"), "{out}");
    assert!(err.contains("command terminated with exit code 1"), "{err}");
}

/// The test's terminal: the master end it reads and types on, with what came so far.
struct Terminal {
    master: OwnedFd,
    seen: String,
}

impl Terminal {
    fn type_line(&mut self, line: &str) {
        let mut f = std::fs::File::from(self.master.try_clone().unwrap());
        f.write_all(line.as_bytes()).unwrap();
        f.write_all(b"\r").unwrap();
    }

    /// Reads until `want` appears after what was already matched; panics after 20 s.
    fn expect(&mut self, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(at) = self.seen.find(want) {
                self.seen.drain(..at + want.len());
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{want:?} never came; the terminal showed {:?}",
                self.seen
            );
            let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
            let ms = u16::try_from(left.as_millis().min(1000)).unwrap();
            if poll(&mut fds, PollTimeout::from(ms)).unwrap() == 0 {
                continue;
            }
            let mut buf = [0u8; 4096];
            match nix::unistd::read(self.master.as_fd(), &mut buf) {
                Ok(0) | Err(_) => panic!("terminal closed before {want:?}: {:?}", self.seen),
                Ok(n) => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    }

    fn resize(&self, rows: u16, cols: u16) {
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads the winsize through the pointer during the call.
        let rc = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        assert_eq!(rc, 0, "TIOCSWINSZ");
    }
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn exec_it_gives_a_terminal_of_the_containers_own() {
    require_vm();
    let _pod = start_pod("tty-it", &pod_yaml("tty-it", "Always", "", SLEEP));
    let pty = openpty(None, None).unwrap();
    let user_side = pty.slave;
    let mut term = Terminal {
        master: pty.master,
        seen: String::new(),
    };
    term.resize(24, 80);
    let (stdin, stdout, stderr) = (
        user_side.try_clone().unwrap(),
        user_side.try_clone().unwrap(),
        user_side.try_clone().unwrap(),
    );
    let ctty = user_side.as_raw_fd();
    let mut cmd = Command::new(peapod_bin());
    cmd.args(["exec", "-it", "tty-it", "--", "sh"])
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr);
    // SAFETY: setsid and ioctl are async-signal-safe; peapod gets the terminal as a user's
    // shell would give it: its controlling terminal, so a resize sends it SIGWINCH.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if libc::ioctl(ctty, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();

    term.expect("# ");
    term.type_line("tty; echo sum-$((40+2))");
    // The first terminal of the container's own devpts instance, not one of the host's.
    term.expect("/dev/pts/0");
    term.expect("sum-42");
    term.expect("# ");
    // Raw mode on the user's side while the shell runs: no local echo, no line editing.
    let raw = tcgetattr(&user_side).unwrap();
    assert!(!raw.local_flags.contains(LocalFlags::ICANON));
    term.type_line("stty size");
    term.expect("24 80");
    term.resize(33, 101);
    std::thread::sleep(Duration::from_millis(300));
    term.type_line("stty size");
    term.expect("33 101");
    term.type_line("exit 3");

    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "peapod exec did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(3));
    term.expect("command terminated with exit code 3");
    // The user's terminal is as it was: canonical mode and echo back on.
    let after = tcgetattr(&user_side).unwrap();
    assert!(after
        .local_flags
        .contains(LocalFlags::ICANON | LocalFlags::ECHO));
}
