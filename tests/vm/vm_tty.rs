//! `exec` and `attach` as kubectl's `-i` and `-t` make them, on real pods: stdin only when
//! asked, and with `-it` a terminal of the container's own, driven here through a
//! pseudo-terminal the test holds as a user's terminal would be (type, read the prompt,
//! resize, exit with a code, detach). Containers with `tty`, `stdin` and `stdinOnce`: their
//! console, their log, several clients at once, the corpus share-process-namespace example.
//! Runs only in the test VM (`scripts/test --vm-only --only vm_tty`).

use crate::common;

use common::*;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::openpty;
use nix::sys::termios::{tcgetattr, LocalFlags};

const SLEEP: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";
const PRESS_ENTER: &str = "If you don't see a command prompt, try pressing enter.";
/// The corpus manifest, built in: the VM has no copy.
const SHARE_PROCESS_NAMESPACE: &str =
    include_str!("../../../shared/pod-corpus/k8s-website/pods/share-process-namespace.yaml");

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

    /// The user's side is in raw mode (no local echo, no line editing) while the shell runs,
    /// and the shell sees the terminal's size, then its new size after a resize.
    fn check_raw_and_resize(&mut self, user_side: &OwnedFd) {
        let raw = tcgetattr(user_side).unwrap();
        assert!(!raw.local_flags.contains(LocalFlags::ICANON));
        self.type_line("stty size");
        self.expect("24 80");
        self.resize(33, 101);
        std::thread::sleep(Duration::from_millis(300));
        self.type_line("stty size");
        self.expect("33 101");
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

/// Runs `peapod args` on a new pseudo-terminal of 24x80, given as a user's shell gives its
/// terminal: stdio and controlling terminal (so a resize sends it SIGWINCH). Returns the
/// process, the test's side of the terminal, and the user's side.
fn on_terminal(args: &[&str]) -> (Child, Terminal, OwnedFd) {
    let pty = openpty(None, None).unwrap();
    let user_side = pty.slave;
    let term = Terminal {
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
    cmd.args(args).stdin(stdin).stdout(stdout).stderr(stderr);
    // SAFETY: setsid and ioctl are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if libc::ioctl(ctty, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    (cmd.spawn().unwrap(), term, user_side)
}

/// Waits (20 s at most) for the process to end.
fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "peapod did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn exec_it_gives_a_terminal_of_the_containers_own() {
    require_vm();
    let _pod = start_pod("tty-it", &pod_yaml("tty-it", "Always", "", SLEEP));
    let (mut child, mut term, user_side) = on_terminal(&["exec", "-it", "tty-it", "--", "sh"]);

    term.expect("# ");
    term.type_line("tty; echo sum-$((40+2))");
    // The first terminal of the container's own devpts instance, not one of the host's.
    term.expect("/dev/pts/0");
    term.expect("sum-42");
    term.expect("# ");
    term.check_raw_and_resize(&user_side);
    term.type_line("exit 3");

    assert_eq!(wait_exit(&mut child).code(), Some(3));
    term.expect("command terminated with exit code 3");
    // The user's terminal is as it was: canonical mode and echo back on.
    let after = tcgetattr(&user_side).unwrap();
    assert!(after
        .local_flags
        .contains(LocalFlags::ICANON | LocalFlags::ECHO));
}

/// What a reader (a child's stdout or stderr) has produced so far, collected by a thread.
fn collect(mut from: impl std::io::Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

/// Waits (20 s at most) until `text` contains `want`.
fn expect_text(text: &Arc<Mutex<String>>, want: &str) {
    let found = wait_for(
        || text.lock().unwrap().contains(want),
        Duration::from_secs(20),
    );
    assert!(found, "{want:?} never came: {:?}", text.lock().unwrap());
}

/// `peapod attach args` with its stdin, stdout and stderr on pipes.
fn attach_piped(args: &[&str]) -> Child {
    Command::new(peapod_bin())
        .arg("attach")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The lines of the container's CRI log file (its first instance).
fn cri_log_lines(pod: &str, container: &str) -> Vec<String> {
    let uid = pod_json(pod)["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let path = format!("/var/log/pods/default_{pod}_{uid}/{container}/0.log");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn attach_it_to_a_shell_on_its_terminal_then_detach() {
    require_vm();
    let yaml = pod_of(
        "tty-sh",
        "Always",
        2,
        "  - name: app\n    image: busybox\n    imagePullPolicy: IfNotPresent\n    command: [sh]\n    stdin: true\n    tty: true\n",
        "",
    );
    let _pod = start_pod("tty-sh", &yaml);
    let (mut child, mut term, user_side) = on_terminal(&["attach", "-it", "tty-sh"]);
    term.expect(PRESS_ENTER);
    term.type_line("");
    term.expect("# ");
    term.type_line("tty; echo sum-$((40+2)); echo term-$TERM");
    // The container's console: the first terminal of its own devpts instance.
    term.expect("/dev/pts/0");
    term.expect("sum-42");
    term.expect("term-xterm");
    term.check_raw_and_resize(&user_side);

    // A second client, output only, sees the same session.
    let mut watcher = attach_piped(&["tty-sh"]);
    let watched = collect(watcher.stdout.take().unwrap());
    // Its notices come once the supervisor has taken it in.
    expect_text(&collect(watcher.stderr.take().unwrap()), PRESS_ENTER);
    term.type_line("echo both-$((1+1))");
    term.expect("both-2");
    expect_text(&watched, "both-2");

    // ctrl-p ctrl-q: the client detaches; the shell goes on.
    let mut master = std::fs::File::from(term.master.try_clone().unwrap());
    master.write_all(b"\x10\x11").unwrap();
    term.expect(
        "Session ended, resume using 'peapod attach tty-sh -c app -n default -i -t' command",
    );
    assert_eq!(wait_exit(&mut child).code(), Some(0));
    let after = tcgetattr(&user_side).unwrap();
    assert!(after
        .local_flags
        .contains(LocalFlags::ICANON | LocalFlags::ECHO));
    assert!(container_status("tty-sh", "app").unwrap()["state"]["running"].is_object());
    assert_eq!(restart_count("tty-sh", "app"), 0);
    assert_eq!(
        watcher.try_wait().unwrap(),
        None,
        "the watcher is still attached"
    );
    watcher.kill().unwrap();
    watcher.wait().unwrap();

    // The terminal's output is logged, all of it on stdout, as CRI runtimes log a tty.
    let logs = peapod_ok(&["logs", "tty-sh"]);
    assert!(logs.contains("sum-42") && logs.contains("both-2"), "{logs}");
    let lines = cri_log_lines("tty-sh", "app");
    assert!(!lines.is_empty());
    for l in &lines {
        assert_eq!(l.split(' ').nth(1), Some("stdout"), "{l}");
    }

    // The shell exits: the session ends with it, and the restarted container has a terminal
    // of its own again.
    let (mut child, mut term, _user_side) = on_terminal(&["attach", "-it", "-q", "tty-sh"]);
    term.type_line("");
    term.expect("# ");
    term.type_line("exit 7");
    assert_eq!(wait_exit(&mut child).code(), Some(0));
    wait_until(
        "tty-sh",
        "a restart",
        || {
            restart_count("tty-sh", "app") == 1
                && container_status("tty-sh", "app")
                    .is_some_and(|c| c["state"]["running"].is_object())
        },
        Duration::from_secs(30),
    );
    let (mut child, mut term, _user_side) = on_terminal(&["attach", "-it", "-q", "tty-sh"]);
    term.type_line("");
    term.expect("# ");
    term.type_line("tty; echo again-$((3+4))");
    term.expect("/dev/pts/0");
    term.expect("again-7");
    let mut master = std::fs::File::from(term.master.try_clone().unwrap());
    master.write_all(b"\x10\x11").unwrap();
    assert_eq!(wait_exit(&mut child).code(), Some(0));
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn attach_i_writes_stdin_and_stdin_once_closes_it() {
    require_vm();
    let containers = "  - name: cat
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [cat]
    stdin: true
  - name: once
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'while read l; do echo got-$l; done; echo eof-seen']
    stdin: true
    stdinOnce: true
  - name: closed
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'cat; echo stdin-ended; sleep 3600']
";
    let _pod = start_pod(
        "stdin-pod",
        &pod_of("stdin-pod", "Never", 2, containers, ""),
    );

    // Without `stdin` the container's stdin is /dev/null: cat ended at once.
    wait_until(
        "stdin-pod",
        "the closed container's EOF",
        || peapod_ok(&["logs", "stdin-pod", "-c", "closed"]) == "stdin-ended\n",
        Duration::from_secs(20),
    );

    let mut watcher = attach_piped(&["stdin-pod", "-c", "cat"]);
    let watched = collect(watcher.stdout.take().unwrap());
    expect_text(&collect(watcher.stderr.take().unwrap()), PRESS_ENTER);
    // -t on a container without a terminal: kubectl's error line, then a plain session.
    let mut writer = attach_piped(&["-it", "stdin-pod", "-c", "cat"]);
    let written = collect(writer.stdout.take().unwrap());
    let warned = collect(writer.stderr.take().unwrap());
    expect_text(
        &warned,
        "error: Unable to use a TTY - container cat did not allocate one",
    );
    expect_text(&warned, PRESS_ENTER);
    let mut stdin = writer.stdin.take().unwrap();
    stdin.write_all(b"hello\n").unwrap();
    expect_text(&written, "hello\n");
    expect_text(&watched, "hello\n");
    // The writer's stdin ends and it goes: cat (no stdinOnce) keeps its stdin open.
    drop(stdin);
    writer.kill().unwrap();
    writer.wait().unwrap();
    let (code, _) = exec("stdin-pod", "cat", &["true"]);
    assert_eq!(code, 0);
    assert!(container_status("stdin-pod", "cat").unwrap()["state"]["running"].is_object());
    let mut second = attach_piped(&["-i", "stdin-pod", "-c", "cat"]);
    expect_text(&collect(second.stderr.take().unwrap()), PRESS_ENTER);
    second.stdin.take().unwrap().write_all(b"again\n").unwrap();
    expect_text(&watched, "again\n");
    second.kill().unwrap();
    second.wait().unwrap();
    watcher.kill().unwrap();
    watcher.wait().unwrap();
    let logs = peapod_ok(&["logs", "stdin-pod", "-c", "cat"]);
    assert_eq!(logs, "hello\nagain\n");

    // stdinOnce: the end of the first session's stdin is the container's EOF; it ends, and
    // with it the session.
    let (code, out, err) =
        peapod_with_input(&["attach", "-i", "-q", "stdin-pod", "-c", "once"], "a\nb\n");
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "got-a\ngot-b\neof-seen\n", "")
    );
    wait_until(
        "stdin-pod",
        "once terminated",
        || {
            container_status("stdin-pod", "once")
                .is_some_and(|c| c["state"]["terminated"]["exitCode"] == 0)
        },
        Duration::from_secs(20),
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn corpus_share_process_namespace_runs_its_shell_on_a_terminal() {
    require_vm();
    let yaml = SHARE_PROCESS_NAMESPACE
        .replace(
            "    image: nginx\n",
            "    image: busybox\n    imagePullPolicy: IfNotPresent\n    command: [\"httpd\", \"-f\", \"-p\", \"8080\"]\n",
        )
        .replace(
            "image: busybox:1.28",
            "image: busybox\n    imagePullPolicy: IfNotPresent",
        );
    assert!(yaml.contains("httpd") && !yaml.contains("1.28"), "{yaml}");
    let _pod = start_pod("nginx", &yaml);
    let (code, ps) = exec("nginx", "shell", &["ps", "ax"]);
    assert_eq!(code, 0);
    assert!(
        ps.contains("httpd -f -p 8080") && ps.contains("sleep 3600"),
        "{ps}"
    );
    // The shell container's process has the terminal as its stdin, and TERM set.
    let (code, out) = exec(
        "nginx",
        "shell",
        &[
            "sh",
            "-c",
            "readlink /proc/$(pidof sleep)/fd/0; tr '\\0' '\\n' < /proc/$(pidof sleep)/environ | grep ^TERM=",
        ],
    );
    assert_eq!((code, out.as_str()), (0, "/dev/pts/0\nTERM=xterm\n"));
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn run_it_rm_attaches_returns_the_exit_code_and_deletes_the_pod() {
    require_vm();
    let _guard = PodGuard("run-sh".into());
    let (mut child, mut term, _user_side) = on_terminal(&[
        "run",
        "run-sh",
        "--image=busybox",
        "--image-pull-policy=IfNotPresent",
        "--restart=Never",
        "-it",
        "--rm",
        "--command",
        "--",
        "sh",
    ]);
    term.expect(PRESS_ENTER);
    term.type_line("");
    term.expect("# ");
    term.type_line("echo run-$((6*7)); exit 5");
    term.expect("run-42");
    term.expect("pod default/run-sh terminated (Error)");
    term.expect("pod \"run-sh\" deleted from default namespace");
    assert_eq!(wait_exit(&mut child).code(), Some(5));
    assert!(try_pod_json("run-sh").is_none(), "the pod is gone");
}
