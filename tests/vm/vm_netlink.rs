//! Privileged tests of `peapod::network`'s links: they create a bridge and veths, so they run
//! only as root inside a throwaway network namespace (the test VM, or `unshare --net` by hand),
//! and only when `PEAPOD_VM_TESTS=1`. (An integration test rather than a unit test: the VM then
//! needs no unit-test binary of the library, whose compile came before the VM could boot.)

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use peapod::network::{attach, detach, ensure_bridge, link_exists, veth_name};
use peapod::network::{NetworkConfig, NetworkError};

const GATE: &str = "PEAPOD_VM_TESTS";

fn enabled() -> bool {
    std::env::var(GATE).as_deref() == Ok("1")
}

/// A process in a network namespace of its own: the stand-in for a pod's sandbox.
struct FakePod(Child);

impl FakePod {
    fn start() -> FakePod {
        let child = Command::new("unshare")
            .args(["--net", "sleep", "30"])
            .spawn()
            .unwrap();
        let own = std::fs::read_link("/proc/self/ns/net").unwrap();
        let theirs = format!("/proc/{}/ns/net", child.id());
        let deadline = Instant::now() + Duration::from_secs(5);
        // unshare(1) switches namespace before exec'ing sleep: wait until it has.
        while std::fs::read_link(&theirs).ok().as_deref() == Some(own.as_path()) {
            assert!(Instant::now() < deadline, "fake pod never left our netns");
            std::thread::sleep(Duration::from_millis(10));
        }
        FakePod(child)
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.0.id()).unwrap()
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", self.pid()))
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A test bridge, removed when the test ends: the VM runs every test binary in one network
/// namespace, and a bridge left with its address would route the pod network's addresses
/// away from peapod's bridge for the tests that come after.
struct TestBridge(&'static str);

impl Drop for TestBridge {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", self.0]).status();
    }
}

impl Drop for FakePod {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ping(ip: Ipv4Addr) -> bool {
    let ip = ip.to_string();
    let mut cmd = if Path::new("/usr/bin/ping").exists() || Path::new("/bin/ping").exists() {
        Command::new("ping")
    } else {
        let mut c = Command::new("busybox");
        c.arg("ping");
        c
    };
    cmd.args(["-c1", "-W1", &ip])
        .stdout(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
#[ignore = "privileged: needs root and its own network namespace; runs in the test VM"]
fn bridge_attach_ping_detach_in_private_netns() {
    if !enabled() {
        return;
    }
    // Not the pod network's 10.88.0.0/16, which the later tests' pods use.
    let cfg = NetworkConfig {
        bridge: "pptest0".into(),
        subnet: Ipv4Addr::new(10, 76, 0, 0),
        prefix_len: 24,
    };
    let _bridge = TestBridge("pptest0");
    ensure_bridge(&cfg).unwrap();
    ensure_bridge(&cfg).unwrap();
    assert!(link_exists("pptest0").unwrap());

    let pod = FakePod::start();
    let uid = "3f2a9c1e-77b0-4d2e-9a51-0c6b8e1f2d3a";
    let ip = Ipv4Addr::new(10, 76, 0, 2);
    let threads = std::fs::read_dir("/proc/self/task").unwrap().count();
    let veth = attach(&cfg, pod.pid(), uid, ip).unwrap();
    let after = std::fs::read_dir("/proc/self/task").unwrap().count();
    assert_eq!(threads, after, "attach left threads behind");
    assert_eq!(veth, "pp3f2a9c1e77b0");
    assert!(link_exists(&veth).unwrap());

    let addrs = pod.run(&["ip", "-o", "-4", "addr"]);
    assert!(
        addrs.contains("eth0") && addrs.contains("10.76.0.2/24"),
        "{addrs}"
    );
    assert!(
        addrs.contains("lo") && addrs.contains("127.0.0.1/8"),
        "{addrs}"
    );
    let routes = pod.run(&["ip", "route"]);
    assert!(
        routes.contains("default via 10.76.0.1 dev eth0"),
        "{routes}"
    );
    assert!(ping(ip), "pod IP {ip} does not answer from the bridge");

    detach(&veth).unwrap();
    assert!(!link_exists(&veth).unwrap());
    assert!(!pod.run(&["ip", "-o", "link"]).contains("eth0"));
    detach(&veth).unwrap();
}

#[test]
#[ignore = "privileged: needs root and its own network namespace; runs in the test VM"]
fn failed_attach_leaves_no_veth_behind() {
    if !enabled() {
        return;
    }
    let cfg = NetworkConfig {
        bridge: "pptest1".into(),
        subnet: Ipv4Addr::new(10, 77, 0, 0),
        prefix_len: 24,
    };
    let _bridge = TestBridge("pptest1");
    // No bridge yet: attach makes it (a pod re-created after someone removed the bridge).
    let pod = FakePod::start();
    let uid = "aaaabbbbcccc-dddd";
    assert!(!link_exists("pptest1").unwrap());
    attach(&cfg, pod.pid(), uid, Ipv4Addr::new(10, 77, 0, 2)).unwrap();
    assert!(link_exists("pptest1").unwrap());

    // Attaching again replaces the pod's stale pair.
    ensure_bridge(&cfg).unwrap();
    attach(&cfg, pod.pid(), uid, Ipv4Addr::new(10, 77, 0, 2)).unwrap();
    detach(&veth_name(uid)).unwrap();

    // The pod already has an eth0: the pod side fails after the pair exists.
    let pod2 = FakePod::start();
    pod2.run(&[
        "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "x0",
    ]);
    assert!(pod2.run(&["ip", "-o", "link"]).contains("eth0"));
    let err = attach(&cfg, pod2.pid(), uid, Ipv4Addr::new(10, 77, 0, 2)).unwrap_err();
    assert!(err.to_string().contains("eth0"), "{err}");
    assert!(!link_exists(&veth_name(uid)).unwrap());

    // An address outside the pod CIDR is refused before anything is created.
    let err = attach(&cfg, pod.pid(), uid, Ipv4Addr::new(10, 88, 0, 9)).unwrap_err();
    assert!(err.to_string().contains("10.77.0.0/24"), "{err}");

    // A pid that does not exist.
    let err = attach(&cfg, i32::MAX, uid, Ipv4Addr::new(10, 77, 0, 3)).unwrap_err();
    assert!(matches!(err, NetworkError::Namespace { .. }), "{err}");
}
