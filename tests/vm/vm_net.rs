//! Watching, port-forward, hostPort and the host's namespaces on real pods, driven through the
//! peapod CLI as a user would. Traffic stays inside the VM: busybox `httpd`/`nc` in pods, the
//! test's own TcpStream and busybox `nc`/`wget` as clients. Runs only in the test VM
//! (`scripts/test --vm-only --only vm_net`); every test uses its own pod names.

use crate::common;

use common::batch::sh_all;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SLEEP: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

/// A peapod process whose stdout lines are read as they come.
struct Streaming {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Streaming {
    fn spawn(args: &[&str]) -> Streaming {
        let mut child = Command::new(peapod_bin())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run peapod");
        let (tx, rx) = mpsc::channel();
        for pipe in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    eprintln!("  | {line}");
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Streaming { child, lines: rx }
    }

    /// Lines until one contains `want` (all of them, that one last).
    fn until(&self, want: &str, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = line.contains(want);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("no line with {want:?} within {timeout:?}; saw {seen:?}"),
            }
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status_of(line: &str) -> String {
    line.split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_string()
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn watch_shows_a_kill_and_restart_in_order() {
    require_vm();
    let yaml = pod_yaml("net-watch", "Always", "", SLEEP);
    let _pod = start_pod("net-watch", &yaml);
    let watch = Streaming::spawn(&["get", "pods", "net-watch", "-w", "-o", "wide"]);
    let first = watch.until("net-watch", Duration::from_secs(10));
    assert_eq!(
        first[0].split_whitespace().take(6).collect::<Vec<_>>(),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP"]
    );
    assert_eq!(status_of(&first[1]), "Running");
    kill(container_pid("net-watch", "app"), "KILL");
    // Killed (exit 137), then running again with one restart: every line in between is one
    // of the states a restart passes through, in order.
    let lines = watch.until("(", Duration::from_secs(60));
    let statuses: Vec<String> = lines.iter().map(|l| status_of(l)).collect();
    assert!(
        statuses
            .iter()
            .all(|s| ["Error", "CrashLoopBackOff", "Running"].contains(&s.as_str())),
        "{lines:?}"
    );
    let last: Vec<&str> = lines[lines.len() - 1].split_whitespace().collect();
    assert_eq!(last[1..4], ["1/1", "Running", "1"], "{lines:?}");
    // Then its sandbox: the container is stopped, a new sandbox made (the same IP), and the
    // container started again in it after its back-off: a second restart.
    kill(sandbox_pid("net-watch"), "KILL");
    let lines = watch.until("2 (", Duration::from_secs(90));
    let last: Vec<&str> = lines[lines.len() - 1].split_whitespace().collect();
    assert_eq!(last[1..4], ["1/1", "Running", "2"], "{lines:?}");
    assert_eq!(
        last[7],
        first[1].split_whitespace().nth(5).unwrap_or(""),
        "{lines:?}"
    );
    assert!(has_event(
        "net-watch",
        "SandboxChanged",
        "Pod sandbox changed, it will be killed and re-created."
    ));
    // Deleted with its grace period: Terminating, then (DELETED) its last row again.
    peapod_ok(&["delete", "pod", "net-watch"]);
    let end = watch.until("Terminating", Duration::from_secs(30));
    assert_eq!(status_of(&end[end.len() - 1]), "Terminating");
}

/// A busybox pod whose container `web` declares `ports` and runs `script` under `sh -c`.
fn server_pod(name: &str, ports: &str, script: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox
    imagePullPolicy: IfNotPresent
    ports:
{ports}    command: [\"sh\", \"-c\", {script:?}]
"
    )
}

/// A pod serving 4 MiB of random bytes and their md5 on port 8080 (named http).
fn web_pod(name: &str) -> String {
    server_pod(
        name,
        "    - name: http\n      containerPort: 8080\n",
        "mkdir -p /www && head -c 4194304 /dev/urandom > /www/blob && md5sum /www/blob | cut -d' ' -f1 > /www/blob.md5 && exec httpd -f -p 8080 -h /www",
    )
}

/// `GET path` over a plain TcpStream; the body.
fn http_get(addr: &str, path: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").expect("send request");
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("read response");
    let at = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no HTTP header end");
    all.split_off(at + 4)
}

/// md5 of bytes with busybox md5sum (the same tool that wrote the pod's checksum).
fn md5(bytes: &[u8]) -> String {
    let mut child = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("md5sum");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(bytes)
        .expect("feed md5sum");
    let out = child.wait_with_output().expect("md5sum output");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn port_forward_relays_concurrent_transfers_and_ends_with_the_pod() {
    require_vm();
    let _pod = start_pod("net-pf", &web_pod("net-pf"));
    let ip = pod_ip("net-pf").expect("podIP");
    // The server execs after it has written the files: wait until it listens too.
    let server = format!("{ip}:8080");
    assert!(wait_for(
        || exec("net-pf", "web", &["test", "-s", "/www/blob.md5"]).0 == 0
            && TcpStream::connect(&server).is_ok(),
        Duration::from_secs(30)
    ));
    let want = http_get(&server, "/blob.md5");
    let want = String::from_utf8_lossy(&want).trim().to_string();
    let pf = Streaming::spawn(&["port-forward", "pod/net-pf", "18080:http", "18081:8080"]);
    let lines = pf.until("[::1]:18081", Duration::from_secs(10));
    assert_eq!(
        lines,
        [
            "Forwarding from 127.0.0.1:18080 -> 8080",
            "Forwarding from [::1]:18080 -> 8080",
            "Forwarding from 127.0.0.1:18081 -> 8080",
            "Forwarding from [::1]:18081 -> 8080",
        ]
    );
    let clients: Vec<_> = (0..6)
        .map(|i| {
            std::thread::spawn(move || {
                let addr = if i % 2 == 0 {
                    "127.0.0.1:18080"
                } else {
                    "[::1]:18081"
                };
                md5(&http_get(addr, "/blob"))
            })
        })
        .collect();
    for c in clients {
        assert_eq!(c.join().expect("client"), want, "a transfer was corrupted");
    }
    pf.until("Handling connection for", Duration::from_secs(5));
    delete("net-pf");
    pf.until("error: lost connection to pod", Duration::from_secs(30));
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn host_network_pid_and_ipc_are_the_hosts() {
    require_vm();
    let yaml = pod_yaml(
        "net-host",
        "Always",
        "  hostNetwork: true\n  hostPID: true\n  hostIPC: true\n",
        SLEEP,
    );
    let _pod = start_pod("net-host", &yaml);
    let host_ip = pod_json("net-host")["status"]["hostIP"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(pod_ip("net-host").as_deref(), Some(host_ip.as_str()));
    let me = std::process::id();
    let own_process = format!("test -d /proc/{me} # hostPID: the test's own process is visible");
    let out = sh_all(
        "net-host",
        "app",
        &[
            "cat /proc/net/dev",
            "hostname",
            "cat /etc/hosts",
            &own_process,
            "readlink /proc/self/ns/ipc",
        ],
    );
    let links = &out[0];
    assert!(
        links.contains("peapod0"),
        "not the host's interfaces: {links}"
    );
    assert_eq!(out[1].trim(), "peapod-vm");
    let node = std::fs::read_to_string("/etc/hosts").expect("node hosts");
    assert_eq!(
        out[2],
        format!("# Kubernetes-managed hosts file (host network).\n{node}")
    );
    let host_ipc = std::fs::read_link("/proc/self/ns/ipc").expect("own ipc ns");
    assert_eq!(out[4].trim(), host_ipc.to_string_lossy());
}

/// A web pod on 8080 mapped to `host_port` (TCP), and 5353 to `host_port` + 1 (UDP).
fn host_port_pod(name: &str, host_port: u16) -> String {
    let ports = format!(
        "    - containerPort: 8080\n      hostPort: {host_port}\n    - containerPort: 5353\n      hostPort: {}\n      protocol: UDP\n",
        host_port + 1
    );
    let script = format!(
        "mkdir -p /www && echo hello-{name} > /www/index.html && exec httpd -f -p 8080 -h /www"
    );
    server_pod(name, &ports, &script)
}

/// Receives one datagram on port 5353 inside the pod's network namespace (busybox has no UDP
/// server): a thread of the test enters the namespace and binds there.
fn udp_in_pod(pod: &str) -> mpsc::Receiver<(String, std::net::SocketAddr)> {
    let sandbox = sandbox_pid(pod);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let ns = std::fs::File::open(format!("/proc/{sandbox}/ns/net")).expect("pod netns");
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let sock = std::net::UdpSocket::bind("0.0.0.0:5353").expect("bind 5353 in the pod");
        sock.set_read_timeout(Some(Duration::from_secs(30))).ok();
        let mut buf = [0u8; 64];
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            let _ = tx.send((String::from_utf8_lossy(&buf[..n]).into_owned(), from));
        }
    });
    rx
}

/// The body of `GET /` at `addr`, or None when nothing answers.
fn try_get(addr: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(s, "GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut all = String::new();
    s.read_to_string(&mut all).ok()?;
    all.split("\r\n\r\n").nth(1).map(|b| b.trim().to_string())
}

fn bridge_sysctl(name: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/peapod0/{name}"))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn host_port_reaches_the_pod_from_the_host_itself_and_other_pods() {
    require_vm();
    let client = start_pod(
        "net-hp-client",
        &pod_yaml("net-hp-client", "Always", "", SLEEP),
    );
    let before = (bridge_sysctl("route_localnet"), bridge_sysctl("forwarding"));
    let pod = start_pod("net-hp", &host_port_pod("net-hp", 18090));
    let host_ip = pod_json("net-hp")["status"]["hostIP"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let want = "hello-net-hp";
    let ok = wait_for(
        || try_get("127.0.0.1:18090").as_deref() == Some(want),
        Duration::from_secs(20),
    );
    assert!(ok, "127.0.0.1:18090 does not reach the pod");
    assert_eq!(
        try_get(&format!("{host_ip}:18090")).as_deref(),
        Some(want),
        "the host's address"
    );
    // Another pod, and the pod itself (hairpin), through the host's address.
    let url = format!("http://{host_ip}:18090/");
    let (code, body) = exec("net-hp-client", "app", &["wget", "-qO-", &url]);
    assert_eq!((code, body.trim()), (0, want), "from another pod");
    let (code, body) = exec("net-hp", "web", &["wget", "-qO-", &url]);
    assert_eq!((code, body.trim()), (0, want), "hairpin");
    // UDP from the host.
    let got = udp_in_pod("net-hp");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp socket");
    let mut received = None;
    for _ in 0..40 {
        let _ = sock.send_to(b"ping-udp", "127.0.0.1:18091");
        if let Ok(r) = got.recv_timeout(Duration::from_millis(500)) {
            received = Some(r);
            break;
        }
    }
    let (data, from) = received.expect("a UDP datagram to 127.0.0.1:18091 did not reach the pod");
    assert_eq!(data, "ping-udp");
    assert_eq!(
        from.ip().to_string(),
        host_ip,
        "loopback is masqueraded to the bridge"
    );
    // A port nobody claimed is left alone: nothing answers it.
    assert_eq!(try_get("127.0.0.1:18092"), None);
    drop(pod);
    assert_eq!(try_get("127.0.0.1:18090"), None, "rules left after delete");
    drop(client);
    assert_eq!(
        (bridge_sysctl("route_localnet"), bridge_sysctl("forwarding")),
        before,
        "the bridge's settings were not put back"
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn a_claimed_host_port_is_refused_until_it_is_free() {
    require_vm();
    let first = start_pod("net-hp-a", &host_port_pod("net-hp-a", 18100));
    apply_ok(&host_port_pod("net-hp-b", 18100));
    let second = PodGuard("net-hp-b".into());
    wait_until(
        "net-hp-b",
        "PodScheduled False",
        || {
            try_pod_json("net-hp-b")
                .is_some_and(|v| v["status"]["conditions"][0]["reason"] == "Unschedulable")
        },
        Duration::from_secs(30),
    );
    assert_eq!(phase("net-hp-b"), "Pending");
    let text = peapod_ok(&["describe", "pod", "net-hp-b"]);
    assert!(
        text.contains("FailedScheduling")
            && text.contains("default-scheduler")
            && text.contains(
                "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports."
            ),
        "{text}"
    );
    drop(first);
    wait_running("net-hp-b");
    let ok = wait_for(
        || try_get("127.0.0.1:18100").as_deref() == Some("hello-net-hp-b"),
        Duration::from_secs(20),
    );
    assert!(ok, "the second pod did not get the port once it was free");
    drop(second);
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn host_port_rules_go_after_the_supervisor_is_killed_and_the_pod_deleted() {
    require_vm();
    let before = bridge_sysctl("route_localnet");
    let pod = start_pod("net-hp-k", &host_port_pod("net-hp-k", 18110));
    assert!(wait_for(
        || try_get("127.0.0.1:18110").is_some(),
        Duration::from_secs(20)
    ));
    let supervisor = pod_state("net-hp-k")["supervisor"]["pid"]
        .as_i64()
        .expect("supervisor pid") as i32;
    assert!(pod_state("net-hp-k")["host_port_table"].is_string());
    // The keeper first: no new supervisor adopts the pod, which stays lost.
    let keeper = pod_state("net-hp-k")["keeper"]["pid"]
        .as_i64()
        .expect("keeper pid") as i32;
    kill(keeper, "KILL");
    kill(supervisor, "KILL");
    assert!(wait_for(
        || status_column("net-hp-k") == "SupervisorLost",
        Duration::from_secs(10)
    ));
    drop(pod);
    assert_eq!(try_get("127.0.0.1:18110"), None, "rules left after delete");
    assert_eq!(bridge_sysctl("route_localnet"), before);
    // The port is free again.
    let again = start_pod("net-hp-k2", &host_port_pod("net-hp-k2", 18110));
    assert!(wait_for(
        || try_get("127.0.0.1:18110").as_deref() == Some("hello-net-hp-k2"),
        Duration::from_secs(20)
    ));
    drop(again);
}
