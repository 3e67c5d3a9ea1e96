//! Pod start through the CRI socket beside `peapod apply`: the time from RunPodSandbox to the
//! end of StartContainer (the kubelet's three calls for a one-container pod, one after the
//! other, as it makes them) and from `peapod apply` to the container running in status.json,
//! for the same busybox container with a cached image, medians over ROUNDS.
//!
//! Run by `scripts/bench-cri [ROUNDS]` (root, inside private network and mount namespaces,
//! with throwaway PEAPOD_LIB_DIR/RUN_DIR/LOG_DIR): `cargo bench --bench cri_start -- PEAPOD
//! ROUNDS`, with PEAPOD the release binary whose `peapod node` serves the socket.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;

#[path = "../tests/common/cri_connect.rs"]
mod cri_connect;
use cri_connect::connect;

const SLEEPER: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

fn env_dir(var: &str) -> PathBuf {
    PathBuf::from(std::env::var(var).unwrap_or_else(|_| panic!("{var} must be set")))
}

fn sandbox_config(uid: &str, logs: &Path) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: "bench".into(),
            uid: uid.into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "bench".into(),
        log_directory: logs
            .join(format!("default_bench_{uid}"))
            .display()
            .to_string(),
        linux: Some(cri::LinuxPodSandboxConfig {
            security_context: Some(cri::LinuxSandboxSecurityContext {
                // The kubelet's default: a pid namespace per container.
                namespace_options: Some(cri::NamespaceOption {
                    pid: cri::NamespaceMode::Container as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container_config() -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: "c".into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: "busybox".into(),
            ..Default::default()
        }),
        command: vec!["sh".into(), "-c".into()],
        args: vec![SLEEPER.into()],
        log_path: "c/0.log".into(),
        labels: HashMap::from([("io.kubernetes.container.name".into(), "c".into())]),
        ..Default::default()
    }
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1000.0
}

fn peapod(bin: &str, args: &[&str], input: Option<&str>) {
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("cannot run peapod");
    if let Some(text) = input {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("writing the manifest");
    }
    drop(child.stdin.take());
    let status = child.wait().expect("peapod");
    assert!(status.success(), "peapod {args:?} failed");
}

/// `peapod apply` until status.json shows the container running (polled every 0.2 ms).
fn apply_until_running(bin: &str, lib: &Path) -> Duration {
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bench\nspec:\n  containers:\n  - name: c\n    \
         image: busybox\n    imagePullPolicy: Never\n    command: [sh, -c, \"{SLEEPER}\"]\n"
    );
    let t = Instant::now();
    peapod(bin, &["apply", "-f", "-"], Some(&yaml));
    let pods = lib.join("pods");
    loop {
        let running = std::fs::read_dir(&pods)
            .into_iter()
            .flatten()
            .flatten()
            .any(|d| {
                std::fs::read_to_string(d.path().join("status.json"))
                    .is_ok_and(|s| s.contains("\"running\""))
            });
        if running {
            return t.elapsed();
        }
        assert!(t.elapsed() < Duration::from_secs(30), "bench never ran");
        std::thread::sleep(Duration::from_micros(200));
    }
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [bin, rounds] = args.as_slice() else {
        eprintln!("usage: cargo bench --bench cri_start -- PEAPOD ROUNDS");
        std::process::exit(2);
    };
    let rounds: usize = rounds.parse().expect("ROUNDS: a number");
    let (lib, run, logs) = (
        env_dir("PEAPOD_LIB_DIR"),
        env_dir("PEAPOD_RUN_DIR"),
        env_dir("PEAPOD_LOG_DIR"),
    );
    let manifests = lib.parent().expect("a parent").join("manifests");
    std::fs::create_dir_all(&manifests).expect("the manifest dir");
    let agent = Agent(
        Command::new(bin)
            .args(["node", "--manifests", &manifests.display().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start peapod node"),
    );
    let socket = run.join("peapod.sock");
    let started = Instant::now();
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "no CRI socket");
        std::thread::sleep(Duration::from_millis(10));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut client = RuntimeServiceClient::new(rt.block_on(connect(&socket)));

    let (mut total, mut runs, mut creates, mut starts) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // One round more than measured: the first warms the caches.
    for i in 0..=rounds {
        let config = sandbox_config(&format!("bench-{i}"), &logs);
        let t = Instant::now();
        let sandbox = rt
            .block_on(client.run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            }))
            .expect("RunPodSandbox")
            .into_inner()
            .pod_sandbox_id;
        let ran = t.elapsed();
        let container = rt
            .block_on(client.create_container(cri::CreateContainerRequest {
                pod_sandbox_id: sandbox.clone(),
                config: Some(container_config()),
                sandbox_config: Some(config),
            }))
            .expect("CreateContainer")
            .into_inner()
            .container_id;
        let created = t.elapsed();
        rt.block_on(client.start_container(cri::StartContainerRequest {
            container_id: container,
        }))
        .expect("StartContainer");
        let done = t.elapsed();
        if i > 0 {
            total.push(done);
            runs.push(ran);
            creates.push(created - ran);
            starts.push(done - created);
        }
        rt.block_on(client.remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: sandbox,
        }))
        .expect("RemovePodSandbox");
    }
    let mut applies = Vec::new();
    for i in 0..=rounds {
        let took = apply_until_running(bin, &lib);
        if i > 0 {
            applies.push(took);
        }
        peapod(
            bin,
            &["delete", "pod", "bench", "--grace-period", "0"],
            None,
        );
    }
    drop(agent);
    println!("pod start, cached image, one container, median of {rounds} (ms):");
    println!(
        "  CRI RunPodSandbox + CreateContainer + StartContainer  {:8.1}   (Run {:.1}, Create {:.1}, Start {:.1})",
        median(total),
        median(runs),
        median(creates),
        median(starts)
    );
    println!(
        "  peapod apply -> Running                               {:8.1}",
        median(applies)
    );
}
