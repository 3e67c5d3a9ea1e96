//! The CRI pod sandbox and container lifecycle, driven through `peapod node`'s socket with a
//! gRPC client made from the same generated code (k8s-cri), as the kubelet drives containerd:
//! RunPodSandbox, CreateContainer, StartContainer, the statuses and lists with their filters,
//! the log file at the kubelet's path, StopContainer, a container that exits by itself,
//! StopPodSandbox (NOTREADY, IP given back), RemovePodSandbox (nothing left), the error codes
//! (NotFound, AlreadyExists, idempotent removals) and `peapod get pods` showing the CRI pod;
//! GetContainerEvents over a sandbox's and two containers' lives (a self-exit among them).
//! Then a simulated reboot under two CRI sandboxes (the kubelet's view and its recovery of
//! them), and the CRI server and the agent killed with kill -9 while a CRI pod runs.
//! (The CRI's start latency beside `peapod apply` is `scripts/bench-cri`'s, on the host.) Runs
//! only in the test VM (`scripts/test --vm-only --only vm_cri`), alone: it runs the node agent and
//! takes down every pod on record.

use crate::common;
use crate::cri_connect;
use crate::stream_client;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::accounting::{assert_clean, Keep};
use common::*;
use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;
use tonic::Code;

const SOCKET: &str = "/run/peapod/peapod.sock";
const MANIFESTS: &str = "/tmp/cri-manifests";
const POD_UID: &str = "0b0e7c1a-cri0-4000-8000-000000000001";
const HOST_PORT: u16 = 18190;
const LOG_DIR: &str = "/var/log/pods/default_crisb_0b0e7c1a-cri0-4000-8000-000000000001";

/// `peapod node` and a client on its socket; the agent is stopped (SIGTERM) at the end.
struct Node {
    agent: Child,
    rt: tokio::runtime::Runtime,
    client: RuntimeServiceClient<Channel>,
}

impl Node {
    fn launch() -> Node {
        Node::launch_with(&[])
    }

    /// The agent with `env` added to its environment (and its CRI server's).
    fn launch_with(env: &[(&str, &str)]) -> Node {
        let manifests = PathBuf::from(MANIFESTS);
        std::fs::create_dir_all(&manifests).expect("manifest dir");
        let agent = Command::new(peapod_bin())
            .args(["node", "--manifests"])
            .arg(&manifests)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create("/tmp/cri-node.log").expect("node log"))
            .spawn()
            .expect("cannot start peapod node");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::os::unix::net::UnixStream::connect(SOCKET).is_err() {
            assert!(
                Instant::now() < deadline,
                "the CRI socket did not appear: {}",
                std::fs::read_to_string("/tmp/cri-node.log").unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let channel = rt.block_on(cri_connect::connect(Path::new(SOCKET)));
        Node {
            agent,
            rt,
            client: RuntimeServiceClient::new(channel),
        }
    }

    fn call<T, F>(
        &self,
        f: impl FnOnce(RuntimeServiceClient<Channel>) -> F,
    ) -> Result<T, tonic::Status>
    where
        F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.rt
            .block_on(f(self.client.clone()))
            .map(|r| r.into_inner())
    }

    fn run_sandbox(&self, config: cri::PodSandboxConfig) -> Result<String, tonic::Status> {
        let req = cri::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        };
        self.call(|mut c| async move { c.run_pod_sandbox(req).await })
            .map(|r| r.pod_sandbox_id)
    }

    fn sandbox_status(&self, id: &str) -> Result<cri::PodSandboxStatus, tonic::Status> {
        let req = cri::PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: true,
        };
        self.call(|mut c| async move { c.pod_sandbox_status(req).await })
            .map(|r| r.status.expect("a status"))
    }

    fn sandbox_info(&self, id: &str) -> serde_json::Value {
        let req = cri::PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: true,
        };
        let info = self
            .call(|mut c| async move { c.pod_sandbox_status(req).await })
            .expect("PodSandboxStatus")
            .info;
        serde_json::from_str(&info["info"]).expect("verbose info is JSON")
    }

    fn list_sandboxes(&self, filter: cri::PodSandboxFilter) -> Vec<String> {
        let req = cri::ListPodSandboxRequest {
            filter: Some(filter),
        };
        self.call(|mut c| async move { c.list_pod_sandbox(req).await })
            .expect("ListPodSandbox")
            .items
            .into_iter()
            .map(|i| i.id)
            .collect()
    }

    fn create(
        &self,
        sandbox: &str,
        config: cri::ContainerConfig,
        sandbox_config: &cri::PodSandboxConfig,
    ) -> Result<String, tonic::Status> {
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: sandbox.into(),
            config: Some(config),
            sandbox_config: Some(sandbox_config.clone()),
        };
        self.call(|mut c| async move { c.create_container(req).await })
            .map(|r| r.container_id)
    }

    fn start(&self, id: &str) -> Result<(), tonic::Status> {
        let req = cri::StartContainerRequest {
            container_id: id.into(),
        };
        self.call(|mut c| async move { c.start_container(req).await })
            .map(|_| ())
    }

    fn stop(&self, id: &str, timeout: i64) -> Result<(), tonic::Status> {
        let req = cri::StopContainerRequest {
            container_id: id.into(),
            timeout,
        };
        self.call(|mut c| async move { c.stop_container(req).await })
            .map(|_| ())
    }

    fn remove(&self, id: &str) -> Result<(), tonic::Status> {
        let req = cri::RemoveContainerRequest {
            container_id: id.into(),
        };
        self.call(|mut c| async move { c.remove_container(req).await })
            .map(|_| ())
    }

    fn status(&self, id: &str) -> Result<cri::ContainerStatus, tonic::Status> {
        let req = cri::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        };
        self.call(|mut c| async move { c.container_status(req).await })
            .map(|r| r.status.expect("a status"))
    }

    fn list(&self, filter: cri::ContainerFilter) -> Vec<String> {
        let req = cri::ListContainersRequest {
            filter: Some(filter),
        };
        let mut ids: Vec<String> = self
            .call(|mut c| async move { c.list_containers(req).await })
            .expect("ListContainers")
            .containers
            .into_iter()
            .map(|c| c.id)
            .collect();
        ids.sort();
        ids
    }

    fn container_info(&self, id: &str) -> serde_json::Value {
        let req = cri::ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        };
        let info = self
            .call(|mut c| async move { c.container_status(req).await })
            .expect("ContainerStatus")
            .info;
        serde_json::from_str(&info["info"]).expect("verbose info is JSON")
    }

    fn update(&self, id: &str, r: cri::LinuxContainerResources) -> Result<(), tonic::Status> {
        let req = cri::UpdateContainerResourcesRequest {
            container_id: id.into(),
            linux: Some(r),
            ..Default::default()
        };
        self.call(|mut c| async move { c.update_container_resources(req).await })
            .map(|_| ())
    }

    fn reopen_log(&self, id: &str) -> Result<(), tonic::Status> {
        let req = cri::ReopenContainerLogRequest {
            container_id: id.into(),
        };
        self.call(|mut c| async move { c.reopen_container_log(req).await })
            .map(|_| ())
    }

    fn container_stats(&self, id: &str) -> cri::ContainerStats {
        let req = cri::ContainerStatsRequest {
            container_id: id.into(),
        };
        self.call(|mut c| async move { c.container_stats(req).await })
            .expect("ContainerStats")
            .stats
            .expect("stats")
    }

    fn pod_stats(&self, id: &str) -> cri::PodSandboxStats {
        let req = cri::PodSandboxStatsRequest {
            pod_sandbox_id: id.into(),
        };
        self.call(|mut c| async move { c.pod_sandbox_stats(req).await })
            .expect("PodSandboxStats")
            .stats
            .expect("stats")
    }

    /// ExecSync of `sh -c script`: the exit code, stdout (trimmed) and stderr.
    fn exec_sync(&self, id: &str, script: &str) -> (i32, String) {
        let req = cri::ExecSyncRequest {
            container_id: id.into(),
            cmd: ["sh", "-c", script].map(String::from).to_vec(),
            timeout: 20,
        };
        let out = self
            .call(|mut c| async move { c.exec_sync(req).await })
            .expect("ExecSync");
        (
            out.exit_code,
            String::from_utf8_lossy(&out.stdout).trim().to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }

    /// Stops and removes every sandbox (after a failed test, so the next one starts clean).
    fn remove_all_sandboxes(&self) {
        for id in self.list_sandboxes(Default::default()) {
            let _ = self.stop_sandbox(&id);
            let _ = self.remove_sandbox(&id);
        }
    }

    fn stop_sandbox(&self, id: &str) -> Result<(), tonic::Status> {
        let req = cri::StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        self.call(|mut c| async move { c.stop_pod_sandbox(req).await })
            .map(|_| ())
    }

    fn remove_sandbox(&self, id: &str) -> Result<(), tonic::Status> {
        let req = cri::RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        self.call(|mut c| async move { c.remove_pod_sandbox(req).await })
            .map(|_| ())
    }
}

impl Node {
    /// A new connection, once a (restarted) server answers on the socket.
    fn reconnect(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::os::unix::net::UnixStream::connect(SOCKET).is_err() {
            assert!(Instant::now() < deadline, "no CRI server came back");
            std::thread::sleep(Duration::from_millis(50));
        }
        let channel = self.rt.block_on(cri_connect::connect(Path::new(SOCKET)));
        self.client = RuntimeServiceClient::new(channel);
    }

    /// The agent's CRI server process (`peapod __cri`).
    fn server_pid(&self) -> Option<i32> {
        common::accounting::children(self.agent.id() as i32)
            .into_iter()
            .find(|p| common::accounting::cmdline(*p).contains("__cri"))
    }

    fn exec_sync_call(&self, id: &str) -> Result<cri::ExecSyncResponse, tonic::Status> {
        let req = cri::ExecSyncRequest {
            container_id: id.into(),
            cmd: vec!["true".into()],
            timeout: 10,
        };
        self.call(|mut c| async move { c.exec_sync(req).await })
    }

    fn exec(&self, id: &str) -> Result<cri::ExecResponse, tonic::Status> {
        let req = cri::ExecRequest {
            container_id: id.into(),
            cmd: vec!["true".into()],
            stdout: true,
            ..Default::default()
        };
        self.call(|mut c| async move { c.exec(req).await })
    }

    fn attach(&self, id: &str) -> Result<cri::AttachResponse, tonic::Status> {
        let req = cri::AttachRequest {
            container_id: id.into(),
            stdout: true,
            ..Default::default()
        };
        self.call(|mut c| async move { c.attach(req).await })
    }

    fn port_forward(&self, sandbox: &str) -> Result<cri::PortForwardResponse, tonic::Status> {
        let req = cri::PortForwardRequest {
            pod_sandbox_id: sandbox.into(),
            port: vec![8080],
        };
        self.call(|mut c| async move { c.port_forward(req).await })
    }

    fn subscribe(&self) -> tonic::Streaming<cri::ContainerEventResponse> {
        self.call(|mut c| async move { c.get_container_events(cri::GetEventsRequest {}).await })
            .expect("GetContainerEvents")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // An agent the test killed (and waited for) has no pid to signal any more.
        if matches!(self.agent.try_wait(), Ok(None)) {
            kill(self.agent.id() as i32, "TERM");
            let _ = self.agent.wait();
        }
    }
}

fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A sandbox config as the kubelet sends one (namespaces of the pod, DNS, log directory).
fn sandbox_config(name: &str, uid: &str, attempt: u32) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            uid: uid.into(),
            namespace: "default".into(),
            attempt,
        }),
        hostname: name.into(),
        log_directory: format!("/var/log/pods/default_{name}_{uid}"),
        dns_config: Some(cri::DnsConfig {
            servers: vec!["10.96.0.10".into()],
            searches: vec!["default.svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        }),
        port_mappings: if attempt == 0 && name == "crisb" {
            vec![cri::PortMapping {
                protocol: cri::Protocol::Tcp as i32,
                container_port: 8080,
                host_port: HOST_PORT as i32,
                host_ip: String::new(),
            }]
        } else {
            Vec::new()
        },
        labels: labels(&[("app", "cri"), ("io.kubernetes.pod.name", name)]),
        annotations: labels(&[("kubernetes.io/config.source", "api")]),
        linux: Some(cri::LinuxPodSandboxConfig {
            // Unsafe for peapod's own admission, allowed by this kubelet.
            sysctls: labels(&[("net.core.somaxconn", "1234")]),
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

fn container_config(name: &str, script: &str, mounts: Vec<cri::Mount>) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: "busybox".into(),
            ..Default::default()
        }),
        command: vec!["sh".into(), "-c".into()],
        args: vec![script.into()],
        envs: vec![cri::KeyValue {
            key: "GREETING".into(),
            value: "hello-cri".into(),
        }],
        mounts,
        labels: labels(&[("io.kubernetes.container.name", name)]),
        annotations: labels(&[("io.kubernetes.container.restartCount", "0")]),
        log_path: format!("{name}/0.log"),
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(cri::LinuxContainerResources {
                cpu_shares: 102,
                memory_limit_in_bytes: 64 << 20,
                ..Default::default()
            }),
            security_context: Some(cri::LinuxContainerSecurityContext {
                seccomp: Some(cri::SecurityProfile {
                    profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
                    localhost_ref: String::new(),
                }),
                masked_paths: vec!["/proc/kcore".into()],
                readonly_paths: vec!["/proc/sys".into()],
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

fn state_filter(s: cri::ContainerState) -> Option<cri::ContainerStateValue> {
    Some(cri::ContainerStateValue { state: s as i32 })
}

fn wait_state(node: &Node, id: &str, state: cri::ContainerState) -> cri::ContainerStatus {
    let deadline = Instant::now() + RUNNING_TIMEOUT;
    loop {
        let s = node.status(id).expect("ContainerStatus");
        if s.state == state as i32 {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "container {id} never reached {state:?}: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn try_get(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s =
        std::net::TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(s, "GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut all = String::new();
    s.read_to_string(&mut all).ok()?;
    all.split("\r\n\r\n").nth(1).map(|b| b.trim().to_string())
}

fn ipam_has(uid: &str) -> bool {
    std::fs::read_to_string(ipam_file())
        .unwrap_or_default()
        .contains(uid)
}

/// A container over its memory limit (64 MiB): OOMKilled, 137, as the kubelet expects; then
/// removed. Returns its ID.
fn oom_kill(node: &Node, sandbox: &str, config: &cri::PodSandboxConfig) -> String {
    let oom = node
        .create(
            sandbox,
            container_config("oom", "x=a; while true; do x=$x$x; done", vec![]),
            config,
        )
        .expect("CreateContainer oom");
    node.start(&oom).expect("StartContainer oom");
    let s = wait_state(node, &oom, cri::ContainerState::ContainerExited);
    assert_eq!(
        (s.exit_code, s.reason.as_str()),
        (137, "OOMKilled"),
        "{s:?}"
    );
    node.remove(&oom).expect("RemoveContainer oom");
    oom
}

/// Kills the supervisor of the peapod pod `uid` and waits until its keeper's new one adopted
/// the pod.
fn replace_supervisor(uid: &str) {
    let state = || -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(lib_dir().join("pods").join(uid).join("state.json"))
                .unwrap_or_default(),
        )
        .unwrap_or_default()
    };
    let supervisor = state()["supervisor"]["pid"].as_i64().expect("a supervisor") as i32;
    kill(supervisor, "KILL");
    assert!(
        wait_for(
            || state()["supervisor"]["pid"].as_i64().is_some_and(
                |p| p as i32 != supervisor && Path::new(&format!("/proc/{p}")).exists()
            ),
            RUNNING_TIMEOUT
        ),
        "no supervisor adopted the CRI pod {uid}"
    );
}

/// Runs a test's body; if it fails, removes its sandboxes first, so that the next test of this
/// binary starts clean.
fn with_cleanup(node: &Node, body: impl FnOnce()) {
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        node.remove_all_sandboxes();
        std::panic::resume_unwind(panic);
    }
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn the_kubelet_drives_sandboxes_and_containers() {
    require_vm();
    let keep = Keep::pods(&[]);
    let node = Node::launch();
    // A peapod pod of its own: `get` shows it, the CRI does not.
    apply_ok(&pod_yaml("plain", "Always", "", "sleep 3600"));

    // RunPodSandbox: a peapod pod with an IP on the bridge.
    let config = sandbox_config("crisb", POD_UID, 0);
    let sandbox = node.run_sandbox(config.clone()).expect("RunPodSandbox");
    assert!(
        sandbox.len() == 64 && sandbox.chars().all(|c| c.is_ascii_hexdigit()),
        "{sandbox}"
    );
    let e = node
        .run_sandbox(config.clone())
        .expect_err("the same metadata twice");
    assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");
    assert!(e.message().contains("is reserved for"), "{}", e.message());
    let s = node.sandbox_status(&sandbox).expect("PodSandboxStatus");
    assert_eq!(s.state, cri::PodSandboxState::SandboxReady as i32);
    let ip = s.network.expect("network").ip;
    assert!(ip.starts_with("10.88."), "sandbox IP {ip}");
    assert_eq!(s.labels["app"], "cri");
    assert_eq!(s.annotations["kubernetes.io/config.source"], "api");
    assert_eq!(s.metadata.expect("metadata").uid, POD_UID);
    assert!(s.created_at > 0);
    let peapod_uid = node.sandbox_info(&sandbox)["peapodPodUid"]
        .as_str()
        .expect("the peapod pod's uid")
        .to_string();
    assert!(ipam_has(&peapod_uid), "the sandbox's IP is allocated");

    // ListPodSandbox: CRI pods only, with filters.
    let all = node.list_sandboxes(Default::default());
    assert_eq!(all, vec![sandbox.clone()], "only the CRI's pod is listed");
    let by = |id: &str, state: Option<cri::PodSandboxState>, l: &[(&str, &str)]| {
        node.list_sandboxes(cri::PodSandboxFilter {
            id: id.into(),
            state: state.map(|s| cri::PodSandboxStateValue { state: s as i32 }),
            label_selector: labels(l),
        })
    };
    assert_eq!(by(&sandbox[..12], None, &[]).len(), 1);
    assert_eq!(by("ffff", None, &[]).len(), 0);
    assert_eq!(
        by("", Some(cri::PodSandboxState::SandboxReady), &[]).len(),
        1
    );
    assert_eq!(
        by("", Some(cri::PodSandboxState::SandboxNotready), &[]).len(),
        0
    );
    assert_eq!(by("", None, &[("app", "cri")]).len(), 1);
    assert_eq!(by("", None, &[("app", "other")]).len(), 0);

    // CreateContainer: the image must be in the store; names are reserved.
    let host_dir = Path::new("/tmp/cri-mount");
    std::fs::create_dir_all(host_dir).unwrap();
    std::fs::write(host_dir.join("f"), "from-the-host\n").unwrap();
    let mount = cri::Mount {
        container_path: "/mnt/host".into(),
        host_path: host_dir.display().to_string(),
        readonly: true,
        ..Default::default()
    };
    let app_config = container_config(
        "app",
        "mkdir -p /www && echo hello-hp > /www/index.html && httpd -p 8080 -h /www; \
         echo $GREETING; cat /mnt/host/f; echo to-stderr >&2; \
         touch /mnt/host/x 2>/dev/null || echo read-only; \
         trap 'echo bye; exit 0' TERM; while true; do sleep 0.2; done",
        vec![mount.clone()],
    );
    let app = node
        .create(&sandbox, app_config.clone(), &config)
        .expect("CreateContainer");
    assert_eq!(app.len(), 64);
    let s = node.status(&app).expect("ContainerStatus");
    assert_eq!(s.state, cri::ContainerState::ContainerCreated as i32);
    assert_eq!(s.log_path, format!("{LOG_DIR}/app/0.log"));
    assert_eq!(s.mounts, vec![mount]);
    assert_eq!(s.labels["io.kubernetes.container.name"], "app");
    assert!(s.image_ref.contains("sha256:"), "{}", s.image_ref);
    let e = node
        .create(&sandbox, app_config.clone(), &config)
        .expect_err("the same container twice");
    assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");
    assert!(e.message().contains("is reserved for"), "{}", e.message());
    let mut missing = container_config("nosuch", "true", vec![]);
    missing.image = Some(cri::ImageSpec {
        image: "registry.invalid/nosuch:1".into(),
        ..Default::default()
    });
    let e = node
        .create(&sandbox, missing, &config)
        .expect_err("an image not in the store");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert!(
        e.message().contains("registry.invalid/nosuch:1"),
        "{}",
        e.message()
    );
    let e = node
        .create("0000", container_config("x", "true", vec![]), &config)
        .expect_err("an unknown sandbox");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");

    // StartContainer: RUNNING, its output in the CRI log format at the kubelet's path.
    node.start(&app).expect("StartContainer");
    let s = node.status(&app).expect("ContainerStatus");
    assert_eq!(
        s.state,
        cri::ContainerState::ContainerRunning as i32,
        "{s:?}"
    );
    assert!(s.started_at >= s.created_at && s.started_at > 0);
    assert!(node.start(&app).is_err(), "a second start is refused");
    let log = PathBuf::from(&s.log_path);
    assert!(
        wait_for(
            || std::fs::read_to_string(&log).is_ok_and(|t| t.contains("read-only")),
            RUNNING_TIMEOUT
        ),
        "log {}: {:?}",
        log.display(),
        std::fs::read_to_string(&log)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    for want in [
        " stdout F hello-cri",
        " stdout F from-the-host",
        " stderr F to-stderr",
    ] {
        assert!(text.contains(want), "{want:?} in {text}");
    }

    // The sandbox's port mapping reaches the container from the host.
    let addr = format!("127.0.0.1:{HOST_PORT}");
    assert!(
        wait_for(
            || try_get(&addr).as_deref() == Some("hello-hp"),
            Duration::from_secs(20)
        ),
        "{addr} does not reach the CRI pod"
    );

    // Stats: CPU time and working set of the container's and the pod's cgroups.
    let stats = node.container_stats(&app);
    assert!(stats.cpu.and_then(|c| c.usage_core_nano_seconds).is_some());
    assert!(
        stats
            .memory
            .and_then(|m| m.working_set_bytes)
            .is_some_and(|w| w.value > 0),
        "a working set"
    );
    let listed = node
        .call(|mut c| async move {
            c.list_container_stats(cri::ListContainerStatsRequest { filter: None })
                .await
        })
        .expect("ListContainerStats")
        .stats;
    assert_eq!(listed.len(), 1, "the running container's stats");
    let pod_stats = node
        .call(|mut c| async move {
            c.list_pod_sandbox_stats(cri::ListPodSandboxStatsRequest { filter: None })
                .await
        })
        .expect("ListPodSandboxStats")
        .stats;
    assert_eq!(pod_stats.len(), 1);
    let linux = pod_stats[0].linux.clone().expect("linux stats");
    assert!(linux.cpu.is_some() && linux.containers.len() == 1);

    // ExecSync, Exec and PortForward through the socket, on the CRI's own IDs.
    let req = cri::ExecSyncRequest {
        container_id: app.clone(),
        cmd: ["sh", "-c", "cat /mnt/host/f; echo oops >&2; exit 5"]
            .map(String::from)
            .to_vec(),
        timeout: 10,
    };
    let out = node
        .call(|mut c| async move { c.exec_sync(req).await })
        .expect("ExecSync");
    assert_eq!(
        (out.stdout.as_slice(), out.stderr.as_slice(), out.exit_code),
        (&b"from-the-host\n"[..], &b"oops\n"[..], 5)
    );
    let req = cri::ExecRequest {
        container_id: app.clone(),
        cmd: ["sh", "-c", "read l; echo got-$l; hostname"]
            .map(String::from)
            .to_vec(),
        stdin: true,
        stdout: true,
        ..Default::default()
    };
    let url = node
        .call(|mut c| async move { c.exec(req).await })
        .expect("Exec")
        .url;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let send = stream_client::Send {
        stdin: Some(b"ping\n".to_vec()),
        close_stdin: true,
        ..Default::default()
    };
    let got = node
        .rt
        .block_on(stream_client::websocket(&url, &["v5.channel.k8s.io"], send));
    assert_eq!(got.text(1), "got-ping\ncrisb\n", "{got:?}");
    let id = sandbox.clone();
    let url = node
        .call(|mut c| async move {
            c.port_forward(cri::PortForwardRequest {
                pod_sandbox_id: id,
                port: vec![8080],
            })
            .await
        })
        .expect("PortForward")
        .url;
    let got = node.rt.block_on(stream_client::spdy_portforward(
        &url,
        8080,
        b"GET /index.html HTTP/1.0\r\n\r\n",
    ));
    assert!(got.text(0).contains("hello-hp"), "{got:?}");

    // Attach through the socket: the output of a CRI container, its exit code at the end.
    let att = node
        .create(
            &sandbox,
            container_config(
                "att",
                "until [ -e /tmp/go ]; do sleep 0.2; done; echo via-attach; echo err-attach >&2; exit 4",
                vec![],
            ),
            &config,
        )
        .expect("CreateContainer att");
    node.start(&att).expect("StartContainer att");
    let id = att.clone();
    let url = node
        .call(|mut c| async move {
            c.attach(cri::AttachRequest {
                container_id: id,
                stdout: true,
                stderr: true,
                ..Default::default()
            })
            .await
        })
        .expect("Attach")
        .url;
    let mut client = node.client.clone();
    let id = att.clone();
    let before = attach_connections();
    let go = async move {
        await_attach_connections(&before, 1).await;
        client
            .exec_sync(cri::ExecSyncRequest {
                container_id: id,
                cmd: vec!["touch".into(), "/tmp/go".into()],
                timeout: 10,
            })
            .await
            .expect("ExecSync touch");
    };
    let (got, ()) = node.rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), async {
            tokio::join!(
                stream_client::websocket(&url, &["v5.channel.k8s.io"], Default::default()),
                go
            )
        })
        .await
        .expect("the attach session ends with the container")
    });
    assert_eq!(
        (got.text(1).as_str(), got.text(2).as_str()),
        ("via-attach\n", "err-attach\n"),
        "{got:?}"
    );
    let s = wait_state(&node, &att, cri::ContainerState::ContainerExited);
    assert_eq!(s.exit_code, 4, "{s:?}");
    node.remove(&att).expect("RemoveContainer att");

    oom_kill(&node, &sandbox, &config);
    // PodSandboxStats of the one sandbox.
    let one = node.pod_stats(&sandbox);
    assert_eq!(one.attributes.expect("attributes").id, sandbox);

    // UpdateContainerResources: the running container's cgroup v2 limits change.
    let pid = node.container_info(&app)["pid"].as_i64().expect("a pid") as i32;
    let cg = cgroup_of(pid);
    node.update(
        &app,
        cri::LinuxContainerResources {
            cpu_quota: 20_000,
            cpu_period: 100_000,
            cpu_shares: 512,
            memory_limit_in_bytes: 96 << 20,
            ..Default::default()
        },
    )
    .expect("UpdateContainerResources");
    let read = |f: &str| {
        std::fs::read_to_string(cg.join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(read("memory.max"), (96u64 << 20).to_string());
    assert_eq!(read("cpu.max"), "20000 100000");
    let s = node.status(&app).unwrap();
    let r = s.resources.and_then(|r| r.linux).expect("resources");
    assert_eq!(r.memory_limit_in_bytes, 96 << 20);

    // The supervisor killed: its keeper starts another, which adopts the pod and serves the
    // control socket again (the container keeps running).
    replace_supervisor(&peapod_uid);
    assert_eq!(
        node.status(&app).unwrap().state,
        cri::ContainerState::ContainerRunning as i32
    );
    assert_eq!(node.container_info(&app)["pid"].as_i64(), Some(pid as i64));

    // ReopenContainerLog: the kubelet renamed the file; the container writes to a new one.
    let rotated = log.with_extension("log.1");
    std::fs::rename(&log, &rotated).unwrap();
    node.reopen_log(&app).expect("ReopenContainerLog");
    assert!(log.exists(), "the log was opened again at its path");

    // A container that exits by itself: EXITED, 3, Error.
    let fail = node
        .create(
            &sandbox,
            container_config("fail", "exit 3", vec![]),
            &config,
        )
        .expect("CreateContainer fail");
    node.start(&fail).expect("StartContainer fail");
    let s = wait_state(&node, &fail, cri::ContainerState::ContainerExited);
    assert_eq!((s.exit_code, s.reason.as_str()), (3, "Error"), "{s:?}");
    assert!(s.finished_at >= s.started_at && s.finished_at > 0, "{s:?}");
    let id = fail.clone();
    let e = node
        .call(|mut c| async move {
            c.exec(cri::ExecRequest {
                container_id: id,
                cmd: vec!["true".into()],
                stdout: true,
                ..Default::default()
            })
            .await
        })
        .expect_err("Exec in an exited container");
    assert_eq!(
        (e.code(), e.message()),
        (Code::Unknown, "container is in CONTAINER_EXITED state")
    );
    // Not restarted: the kubelet decides.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        node.status(&fail).unwrap().state,
        cri::ContainerState::ContainerExited as i32
    );

    // ListContainers and its filters.
    let mut both = vec![app.clone(), fail.clone()];
    both.sort();
    assert_eq!(node.list(Default::default()), both);
    let list = |f: cri::ContainerFilter| node.list(f);
    assert_eq!(
        list(cri::ContainerFilter {
            state: state_filter(cri::ContainerState::ContainerRunning),
            ..Default::default()
        }),
        vec![app.clone()]
    );
    assert_eq!(
        list(cri::ContainerFilter {
            pod_sandbox_id: sandbox.clone(),
            ..Default::default()
        }),
        both
    );
    assert_eq!(
        list(cri::ContainerFilter {
            pod_sandbox_id: "ffff".into(),
            ..Default::default()
        }),
        Vec::<String>::new()
    );
    assert_eq!(
        list(cri::ContainerFilter {
            label_selector: labels(&[("io.kubernetes.container.name", "fail")]),
            ..Default::default()
        }),
        vec![fail.clone()]
    );
    assert_eq!(
        list(cri::ContainerFilter {
            id: app[..10].into(),
            ..Default::default()
        }),
        vec![app.clone()]
    );

    // `peapod get pods` shows the CRI's pod beside its own.
    let pods = peapod_ok(&["get", "pods"]);
    assert!(pods.contains("crisb") && pods.contains("plain"), "{pods}");

    // StopContainer: the stop signal, the exit seen; idempotent; NotFound for an unknown ID.
    node.stop(&app, 10).expect("StopContainer");
    let s = node.status(&app).expect("ContainerStatus");
    assert_eq!(
        s.state,
        cri::ContainerState::ContainerExited as i32,
        "{s:?}"
    );
    assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"), "{s:?}");
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains(" stdout F bye"));
    node.stop(&app, 10)
        .expect("StopContainer of a stopped container");
    assert_eq!(node.stop("ffff", 1).unwrap_err().code(), Code::NotFound);
    assert_eq!(node.status("ffff").unwrap_err().code(), Code::NotFound);
    assert_eq!(node.start("ffff").unwrap_err().code(), Code::NotFound);

    // RemoveContainer: gone from the lists; idempotent.
    node.remove(&fail).expect("RemoveContainer");
    assert_eq!(node.list(Default::default()), vec![app.clone()]);
    assert_eq!(node.status(&fail).unwrap_err().code(), Code::NotFound);
    node.remove(&fail)
        .expect("RemoveContainer of a removed container");
    // Its name is free again: the same metadata makes a new container, which runs.
    let again = node
        .create(
            &sandbox,
            container_config("fail", "exit 3", vec![]),
            &config,
        )
        .expect("CreateContainer with a released name");
    assert_ne!(again, fail);
    node.start(&again).expect("StartContainer of the new one");
    let s = wait_state(&node, &again, cri::ContainerState::ContainerExited);
    assert_eq!(s.exit_code, 3, "{s:?}");
    node.remove(&again).expect("RemoveContainer");

    security_settings_are_the_kubelets(&node, &sandbox, &config);

    // StopPodSandbox: NOTREADY, the IP given back; the containers stay EXITED.
    node.stop_sandbox(&sandbox).expect("StopPodSandbox");
    let s = node.sandbox_status(&sandbox).expect("PodSandboxStatus");
    assert_eq!(s.state, cri::PodSandboxState::SandboxNotready as i32);
    assert!(!ipam_has(&peapod_uid), "the IP was given back");
    assert_eq!(
        node.status(&app).unwrap().state,
        cri::ContainerState::ContainerExited as i32
    );
    node.stop_sandbox(&sandbox).expect("StopPodSandbox twice");
    assert_eq!(
        node.stop_sandbox("ffff").unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        node.sandbox_status("ffff").unwrap_err().code(),
        Code::NotFound
    );

    // RemovePodSandbox: nothing left; idempotent.
    node.remove_sandbox(&sandbox).expect("RemovePodSandbox");
    assert_eq!(
        node.sandbox_status(&sandbox).unwrap_err().code(),
        Code::NotFound
    );
    assert!(node.list_sandboxes(Default::default()).is_empty());
    assert!(node.list(Default::default()).is_empty());
    node.remove_sandbox(&sandbox)
        .expect("RemovePodSandbox twice");
    // A sandbox with the same metadata can be made again once the first is removed.
    let again = node
        .run_sandbox(config.clone())
        .expect("RunPodSandbox again");
    node.remove_sandbox(&again)
        .expect("RemovePodSandbox of a ready sandbox");

    container_events(&node);

    // The keepers the CRI server started have ended and were collected: no zombie children.
    let server = common::accounting::children(node.agent.id() as i32);
    assert!(
        wait_for(
            || server
                .iter()
                .flat_map(|p| common::accounting::children(*p))
                .all(|c| common::accounting::proc_stat(c).is_none_or(|s| s.state != 'Z')),
            Duration::from_secs(10)
        ),
        "zombie children of the CRI server {server:?}"
    );

    delete("plain");
    drop(node);
    // The kubelet removes the log directories it asked for.
    let _ = std::fs::remove_dir_all(LOG_DIR);
    let _ = std::fs::remove_dir_all("/var/log/pods/default_crihost_uid-host");
    let _ = std::fs::remove_dir_all(format!("/var/log/pods/default_crievents_{EVENTS_UID}"));
    assert_clean(&keep, "the CRI's sandboxes were removed");
}

const EVENTS_UID: &str = "0b0e7c1a-cri0-4000-8000-000000000002";

/// The next `n` events of a GetContainerEvents stream as (container ID, type), with the events
/// themselves; fails after a while without one.
fn next_events(
    node: &Node,
    stream: &mut tonic::Streaming<cri::ContainerEventResponse>,
    n: usize,
) -> Vec<cri::ContainerEventResponse> {
    (0..n)
        .map(|i| {
            node.rt
                .block_on(async {
                    tokio::time::timeout(Duration::from_secs(30), stream.message()).await
                })
                .unwrap_or_else(|_| panic!("event {i} of {n} did not come"))
                .expect("GetContainerEvents stream")
                .expect("the stream ended")
        })
        .collect()
}

/// The events that come until none has for 3 s.
fn quiet_events(
    node: &Node,
    stream: &mut tonic::Streaming<cri::ContainerEventResponse>,
) -> Vec<cri::ContainerEventResponse> {
    let mut got = Vec::new();
    while let Ok(next) = node
        .rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(3), stream.message()).await })
    {
        got.push(
            next.expect("GetContainerEvents stream")
                .expect("the stream ended"),
        );
    }
    got
}

fn kinds(events: &[cri::ContainerEventResponse]) -> Vec<(String, cri::ContainerEventType)> {
    events
        .iter()
        .map(|e| {
            (
                e.container_id.clone(),
                cri::ContainerEventType::try_from(e.container_event_type).expect("event type"),
            )
        })
        .collect()
}

/// GetContainerEvents, subscribed before a sandbox and two containers go through their lives:
/// each call's events in order (a sandbox's under its own ID), the STOPPED of a container that
/// exits by itself from the server's watcher, one STOPPED only per exit, the statuses in them.
fn container_events(node: &Node) {
    use cri::ContainerEventType::*;
    let mut stream = node.subscribe();
    // The first subscriber gets what was sent while nobody listened (the calls above): held
    // for it, as containerd's queue holds them.
    let held = quiet_events(node, &mut stream);
    assert!(!held.is_empty(), "the earlier calls' events were not held");
    let config = sandbox_config("crievents", EVENTS_UID, 0);
    let sb = node.run_sandbox(config.clone()).expect("RunPodSandbox");
    let got = next_events(node, &mut stream, 2);
    assert_eq!(
        kinds(&got),
        [
            (sb.clone(), ContainerCreatedEvent),
            (sb.clone(), ContainerStartedEvent)
        ]
    );
    let status = got[1]
        .pod_sandbox_status
        .as_ref()
        .expect("pod_sandbox_status");
    assert_eq!(status.id, sb);
    assert_eq!(status.state, cri::PodSandboxState::SandboxReady as i32);
    assert!(got[1].created_at >= got[0].created_at && got[0].created_at > 0);

    // A container that exits by itself: its STOPPED comes from the watcher.
    let short = node
        .create(
            &sb,
            container_config("short", "sleep 1; exit 2", vec![]),
            &config,
        )
        .expect("CreateContainer");
    node.start(&short).expect("StartContainer");
    let got = next_events(node, &mut stream, 3);
    assert_eq!(
        kinds(&got),
        [
            (short.clone(), ContainerCreatedEvent),
            (short.clone(), ContainerStartedEvent),
            (short.clone(), ContainerStoppedEvent)
        ]
    );
    let of = |e: &cri::ContainerEventResponse, id: &str| {
        e.containers_statuses
            .iter()
            .find(|s| s.id == id)
            .cloned()
            .unwrap_or_else(|| panic!("no status of {id} in {e:?}"))
    };
    assert_eq!(
        of(&got[0], &short).state,
        cri::ContainerState::ContainerCreated as i32
    );
    let stopped = of(&got[2], &short);
    assert_eq!(stopped.state, cri::ContainerState::ContainerExited as i32);
    assert_eq!(stopped.exit_code, 2);

    // StopContainer: one STOPPED; a second stop of the exited one sends none.
    let long = node
        .create(
            &sb,
            container_config(
                "long",
                "trap 'exit 0' TERM; while true; do sleep 0.2; done",
                vec![],
            ),
            &config,
        )
        .expect("CreateContainer");
    node.start(&long).expect("StartContainer");
    node.stop(&long, 10).expect("StopContainer");
    node.stop(&long, 10).expect("StopContainer twice");
    // RemoveContainer, then the sandbox stopped and removed.
    node.remove(&short).expect("RemoveContainer");
    node.remove(&long).expect("RemoveContainer");
    node.remove(&long).expect("RemoveContainer twice");
    node.stop_sandbox(&sb).expect("StopPodSandbox");
    node.remove_sandbox(&sb).expect("RemovePodSandbox");
    let got = next_events(node, &mut stream, 7);
    assert_eq!(
        kinds(&got),
        [
            (long.clone(), ContainerCreatedEvent),
            (long.clone(), ContainerStartedEvent),
            (long.clone(), ContainerStoppedEvent),
            (short.clone(), ContainerDeletedEvent),
            (long.clone(), ContainerDeletedEvent),
            (sb.clone(), ContainerStoppedEvent),
            (sb.clone(), ContainerDeletedEvent),
        ]
    );
    assert_eq!(
        of(&got[2], &long).state,
        cri::ContainerState::ContainerExited as i32
    );
    assert_eq!(
        got[5].pod_sandbox_status.as_ref().map(|s| s.state),
        Some(cri::PodSandboxState::SandboxNotready as i32)
    );
    // A removed container's DELETED: the sandbox's status, none of the container's (as
    // containerd's own test of these events expects).
    assert!(got[3].pod_sandbox_status.is_some(), "{:?}", got[3]);
    assert!(
        got[3].containers_statuses.iter().all(|c| c.id != short),
        "{:?}",
        got[3]
    );
    assert!(got[6].pod_sandbox_status.is_none(), "{:?}", got[6]);
    // Nothing more: no second STOPPED from the watcher.
    let more = node
        .rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(3), stream.message()).await });
    assert!(more.is_err(), "an unexpected event: {more:?}");
}

/// What the kubelet asks of a container's security and devices, as seen from inside it: a
/// Localhost seccomp profile by its absolute path, the group, supplemental groups, a read-only
/// root, capabilities (drop ALL, add one), no_new_privs, the kubelet's masked paths, a host
/// device; the sandbox's sysctl; the default AppArmor profile. A host-wide sysctl and a
/// Localhost AppArmor profile that is not loaded are refused, and so is a user namespace of its own.
fn security_settings_are_the_kubelets(node: &Node, sandbox: &str, config: &cri::PodSandboxConfig) {
    let profile_dir = Path::new("/var/lib/kubelet/seccomp");
    std::fs::create_dir_all(profile_dir).unwrap();
    let profile = profile_dir.join("cri-deny-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let mut sec = container_config(
        "sec",
        "grep -E '^(Gid|Groups|CapEff|NoNewPrivs)' /proc/self/status; \
         mkdir /dev/shm/d || echo mkdir-denied; touch /x 2>/dev/null || echo rootfs-ro; \
         echo masked=$(wc -c < /proc/cpuinfo); echo dev=$(stat -c %t:%T /dev/crikmsg); \
         echo peapod-cri > /dev/crikmsg && echo dev-written; \
         echo somaxconn=$(cat /proc/sys/net/core/somaxconn); \
         echo apparmor=$(cat /proc/self/attr/current)",
        vec![],
    );
    sec.devices = vec![cri::Device {
        container_path: "/dev/crikmsg".into(),
        host_path: "/dev/kmsg".into(),
        permissions: "rwm".into(),
    }];
    let sc = sec
        .linux
        .as_mut()
        .and_then(|l| l.security_context.as_mut())
        .unwrap();
    sc.seccomp = Some(cri::SecurityProfile {
        profile_type: cri::security_profile::ProfileType::Localhost as i32,
        localhost_ref: profile.display().to_string(),
    });
    sc.run_as_user = Some(cri::Int64Value { value: 0 });
    sc.run_as_group = Some(cri::Int64Value { value: 2000 });
    sc.supplemental_groups = vec![3000];
    sc.readonly_rootfs = true;
    sc.no_new_privs = true;
    sc.capabilities = Some(cri::Capability {
        add_capabilities: vec!["NET_BIND_SERVICE".into()],
        drop_capabilities: vec!["ALL".into()],
        ..Default::default()
    });
    sc.masked_paths = vec!["/proc/cpuinfo".into()];
    let id = node
        .create(sandbox, sec.clone(), config)
        .expect("CreateContainer sec");
    node.start(&id).expect("StartContainer sec");
    let s = wait_state(node, &id, cri::ContainerState::ContainerExited);
    let text = std::fs::read_to_string(&s.log_path).unwrap();
    for want in [
        "Gid:\t2000\t2000\t2000\t2000",
        "CapEff:\t0000000000000400",
        "NoNewPrivs:\t1",
        "Operation not permitted",
        "mkdir-denied",
        "rootfs-ro",
        "masked=0",
        "dev=1:b",
        "dev-written",
        "somaxconn=1234",
        // Nothing asked: the runtime's default AppArmor profile, as containerd's.
        "apparmor=peapod-default (enforce)",
    ] {
        assert!(text.contains(want), "{want:?} in {text}");
    }
    let groups = text.lines().find(|l| l.contains("Groups:")).unwrap_or("");
    assert!(groups.split_whitespace().any(|g| g == "3000"), "{text}");
    node.remove(&id).expect("RemoveContainer sec");

    // run_as_username is looked up in the image's /etc/passwd (critest's RunAsUserName); a
    // group without a user is refused at create, as containerd refuses it.
    let mut named = container_config("named", "id -u; id -g", vec![]);
    let sc = named
        .linux
        .as_mut()
        .and_then(|l| l.security_context.as_mut())
        .unwrap();
    sc.run_as_username = "nobody".into();
    let id = node
        .create(sandbox, named, config)
        .expect("CreateContainer named");
    node.start(&id).expect("StartContainer named");
    let s = wait_state(node, &id, cri::ContainerState::ContainerExited);
    let text = std::fs::read_to_string(&s.log_path).unwrap();
    assert!(text.contains("stdout F 65534\n"), "{text}");
    assert_eq!(text.matches(" 65534\n").count(), 2, "{text}");
    node.remove(&id).expect("RemoveContainer named");
    let mut group_only = container_config("grouponly", "true", vec![]);
    if let Some(sc) = group_only
        .linux
        .as_mut()
        .and_then(|l| l.security_context.as_mut())
    {
        sc.run_as_group = Some(cri::Int64Value { value: 1002 });
    }
    let e = node
        .create(sandbox, group_only, config)
        .expect_err("a group without a user");
    assert!(e.message().contains("is specified without user"), "{e:?}");

    // AppArmor: a Localhost profile the kernel has not loaded is refused at create, in
    // containerd's words, by the field or the deprecated string.
    for (field, deprecated) in [(true, false), (false, true)] {
        let mut armored = container_config("armored", "true", vec![]);
        let sc = armored
            .linux
            .as_mut()
            .and_then(|l| l.security_context.as_mut())
            .unwrap();
        if field {
            sc.apparmor = Some(cri::SecurityProfile {
                profile_type: cri::security_profile::ProfileType::Localhost as i32,
                localhost_ref: "peapod-cri-missing".into(),
            });
        }
        if deprecated {
            #[allow(deprecated)]
            {
                sc.apparmor_profile = "localhost/peapod-cri-missing".into();
            }
        }
        let e = node
            .create(sandbox, armored, config)
            .expect_err("a missing AppArmor profile");
        assert!(
            e.message().contains(
                "failed to generate apparmor spec opts: apparmor profile not found peapod-cri-missing"
            ),
            "{e:?}"
        );
    }

    // A host-wide sysctl would change the host: refused before anything is made.
    let mut host_wide = sandbox_config("crisysctl", "0b0e7c1a-cri0-4000-8000-000000000002", 0);
    if let Some(l) = host_wide.linux.as_mut() {
        l.sysctls = labels(&[("vm.swappiness", "10")]);
    }
    let e = node.run_sandbox(host_wide).expect_err("a host-wide sysctl");
    assert!(
        e.message()
            .contains("sysctl \"vm.swappiness\" is not in a separate kernel namespace"),
        "{e:?}"
    );
    assert_eq!(node.list_sandboxes(Default::default()).len(), 1);
    // A user namespace of its own (the kubelet's hostUsers: false): refused, not run with the
    // host's user IDs.
    let mut userns = sandbox_config("criuserns", "0b0e7c1a-cri0-4000-8000-000000000012", 0);
    if let Some(sc) = userns
        .linux
        .as_mut()
        .and_then(|l| l.security_context.as_mut())
    {
        sc.namespace_options
            .get_or_insert_with(Default::default)
            .userns_options = Some(cri::UserNamespace {
            mode: cri::NamespaceMode::Pod as i32,
            uids: vec![cri::IdMapping {
                host_id: 65536,
                container_id: 0,
                length: 65536,
            }],
            gids: vec![cri::IdMapping {
                host_id: 65536,
                container_id: 0,
                length: 65536,
            }],
        });
    }
    let e = node
        .run_sandbox(userns)
        .expect_err("a user namespace of its own");
    assert!(
        e.message()
            .contains("user namespaces are not supported by this runtime"),
        "{e:?}"
    );
    assert_eq!(node.list_sandboxes(Default::default()).len(), 1);
    std::fs::remove_file(&profile).unwrap();
}

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const PARENT_UID: &str = "0b0e7c1a-cri0-4000-8000-00000000000c";

fn write_cgroup(dir: &Path, file: &str, value: &str) {
    std::fs::write(dir.join(file), value)
        .unwrap_or_else(|e| panic!("write {value:?} to {}/{file}: {e}", dir.display()));
}

fn read_cgroup(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}/{file}: {e}", dir.display()))
        .trim()
        .to_string()
}

/// The directories in a cgroup (its child cgroups).
fn child_cgroups(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// The cgroup v2 path (from the cgroup2 root) of a host process.
fn cgroup_line(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_default()
        .to_string()
}

fn with_parent(mut config: cri::PodSandboxConfig, parent: &str) -> cri::PodSandboxConfig {
    config
        .linux
        .get_or_insert_with(Default::default)
        .cgroup_parent = parent.into();
    config
}

/// The kubelet's pod cgroup as the kubelet makes it with the cgroupfs driver
/// (`/kubepods/burstable/pod<uid>`, controllers enabled down to the QoS level, pod-level limits
/// set on the pod cgroup) holds the sandbox's pause process and the container under their CRI
/// IDs, as containerd places them; container limits, updates, OOM kills and stats follow them
/// there; and once the sandbox is stopped and removed, the kubelet's cgroups are as it made
/// them and nothing of peapod's is left. A parent that does not exist is made and removed by
/// peapod; a systemd slice is refused.
#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn the_sandbox_and_containers_live_in_the_kubelets_pod_cgroup() {
    require_vm();
    let keep = Keep::pods(&[]);
    let node = Node::launch();
    let root = Path::new(CGROUP_ROOT);
    let kubepods = root.join("kubepods");
    let burstable = kubepods.join("burstable");
    let pod_cg = burstable.join(format!("pod{PARENT_UID}"));
    // As the kubelet's cgroup manager (runc's fs2 CreateCgroupPath): the controllers on in
    // each ancestor's subtree_control, not in the pod cgroup's own; then its limits.
    for dir in [&kubepods, &burstable, &pod_cg] {
        std::fs::create_dir_all(dir).expect("kubelet cgroup");
    }
    for dir in [root, kubepods.as_path(), burstable.as_path()] {
        write_cgroup(dir, "cgroup.subtree_control", "+cpu +memory +pids");
    }
    write_cgroup(&pod_cg, "memory.max", "268435456");
    write_cgroup(&pod_cg, "cpu.max", "150000 100000");
    write_cgroup(&pod_cg, "cpu.weight", "42");
    with_cleanup(&node, || in_cgroup_parents(&node, &pod_cg));
    drop(node);
    // The kubelet removes its own cgroups.
    for dir in [&pod_cg, &burstable, &kubepods] {
        std::fs::remove_dir(dir).unwrap_or_else(|e| panic!("rmdir {}: {e}", dir.display()));
    }
    for name in ["cgp", "cgm"] {
        let _ = std::fs::remove_dir_all(format!("/var/log/pods/default_{name}_{PARENT_UID}"));
    }
    assert_clean(&keep, "the cgroup-parent sandboxes were removed");
}

/// A sandbox named `name` with cgroup parent `parent` and a running container `app`; the pause
/// process is in `<parent>/<sandbox id>`, the container in `<parent>/<container id>`.
fn run_in_parent(node: &Node, name: &str, parent: &str) -> (cri::PodSandboxConfig, String, String) {
    let config = with_parent(sandbox_config(name, PARENT_UID, 0), parent);
    let sandbox = node.run_sandbox(config.clone()).expect("RunPodSandbox");
    let pause = node.sandbox_info(&sandbox)["pid"]
        .as_i64()
        .expect("a pause pid") as i32;
    assert_eq!(
        cgroup_line(pause),
        format!("{parent}/{sandbox}"),
        "the pause process"
    );
    let app = node
        .create(
            &sandbox,
            container_config("app", "sleep 3600", vec![]),
            &config,
        )
        .expect("CreateContainer");
    node.start(&app).expect("StartContainer");
    let pid = node.container_info(&app)["pid"].as_i64().expect("a pid") as i32;
    assert_eq!(cgroup_line(pid), format!("{parent}/{app}"), "the container");
    (config, sandbox, app)
}

/// The body of the test above, with the kubelet's pod cgroup `pod_cg` made.
fn in_cgroup_parents(node: &Node, pod_cg: &Path) {
    let root = Path::new(CGROUP_ROOT);
    let parent = format!("/kubepods/burstable/pod{PARENT_UID}");
    let (config, sandbox, app) = run_in_parent(node, "cgp", &parent);
    let app_cg = pod_cg.join(&app);
    assert_eq!(
        read_cgroup(&app_cg, "memory.max"),
        (64u64 << 20).to_string()
    );
    // The pod-level limits are the kubelet's, untouched.
    assert_eq!(read_cgroup(pod_cg, "memory.max"), "268435456");
    assert_eq!(read_cgroup(pod_cg, "cpu.max"), "150000 100000");
    assert_eq!(read_cgroup(pod_cg, "cpu.weight"), "42");

    // UpdateContainerResources writes the container's cgroup under the parent.
    node.update(
        &app,
        cri::LinuxContainerResources {
            cpu_quota: 20_000,
            cpu_period: 100_000,
            memory_limit_in_bytes: 96 << 20,
            ..Default::default()
        },
    )
    .expect("UpdateContainerResources");
    assert_eq!(
        read_cgroup(&app_cg, "memory.max"),
        (96u64 << 20).to_string()
    );
    assert_eq!(read_cgroup(&app_cg, "cpu.max"), "20000 100000");

    // Stats read the container's and the pod's cgroups there.
    let stats = node.container_stats(&app);
    assert!(
        stats
            .memory
            .and_then(|m| m.working_set_bytes)
            .is_some_and(|w| w.value > 0),
        "the container's working set"
    );
    let linux = node.pod_stats(&sandbox).linux.expect("linux stats");
    assert!(
        linux
            .memory
            .and_then(|m| m.working_set_bytes)
            .is_some_and(|w| w.value > 0),
        "the pod cgroup's working set"
    );

    // A supervisor killed and replaced: the new one takes over the record of what peapod
    // made in the parent, and the next container still goes there. An OOM kill in it is seen.
    let uid = node.sandbox_info(&sandbox)["peapodPodUid"]
        .as_str()
        .expect("uid")
        .to_string();
    replace_supervisor(&uid);
    let oom = oom_kill(node, &sandbox, &config);
    assert!(
        wait_for(|| !pod_cg.join(&oom).exists(), Duration::from_secs(10)),
        "the removed container's cgroup stays"
    );

    node.stop_sandbox(&sandbox).expect("StopPodSandbox");
    assert!(
        child_cgroups(pod_cg).is_empty(),
        "peapod's cgroups in the kubelet's: {:?}",
        child_cgroups(pod_cg)
    );
    node.remove_sandbox(&sandbox).expect("RemovePodSandbox");
    assert!(pod_cg.exists(), "the kubelet's pod cgroup was removed");
    assert!(child_cgroups(pod_cg).is_empty());
    assert_eq!(read_cgroup(pod_cg, "memory.max"), "268435456");

    // A parent nobody made: peapod makes the missing components, and removes them.
    let missing_top = root.join("peapod-test-kubepods");
    assert!(!missing_top.exists());
    let made = format!("/peapod-test-kubepods/besteffort/pod{PARENT_UID}");
    let (_, sandbox, _) = run_in_parent(node, "cgm", &made);
    assert!(missing_top.join("besteffort").exists());
    node.stop_sandbox(&sandbox).expect("StopPodSandbox");
    node.remove_sandbox(&sandbox).expect("RemovePodSandbox");
    assert!(
        !missing_top.exists(),
        "the components peapod made stay: {:?}",
        child_cgroups(&missing_top)
    );

    // A systemd slice: this runtime reports the cgroupfs driver.
    let slice = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podx.slice";
    let err = node
        .run_sandbox(with_parent(sandbox_config("cgs", PARENT_UID, 0), slice))
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("systemd slice") && err.message().contains("cgroupfs"),
        "{}",
        err.message()
    );
    assert!(node.list_sandboxes(Default::default()).is_empty());
}

fn sh_host(script: &str) {
    let out = Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mount_of(path: &str, propagation: cri::MountPropagation) -> cri::Mount {
    cri::Mount {
        container_path: format!("/{}", path.trim_start_matches("/tmp/")),
        host_path: path.into(),
        propagation: propagation as i32,
        ..Default::default()
    }
}

/// CRI mounts with propagation, as containerd gives it: a Bidirectional mount carries a mount
/// made in the container onto the host, a HostToContainer one a mount the host makes after
/// the start into the container; neither lets the container's rootfs reach the host. A mount
/// whose host path is not on a shared (Bidirectional) or shared-or-slave (HostToContainer)
/// mount is refused with containerd's words.
#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn mount_propagation_of_cri_mounts() {
    require_vm();
    let keep = Keep::pods(&[]);
    let (bidir, h2c, private) = ("/tmp/cri-bidir", "/tmp/cri-h2c", "/tmp/cri-private");
    sh_host(&format!(
        "mkdir -p {bidir} {h2c} {private} && mount -t tmpfs bidir {bidir} && mount --make-shared {bidir} \
         && mount --bind {h2c} {h2c} && mount --make-shared {h2c} \
         && mount -t tmpfs priv {private} && mount --make-private {private}"
    ));
    let node = Node::launch();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        propagation_checks(&node, bidir, h2c, private)
    }));
    node.remove_all_sandboxes();
    drop(node);
    sh_host(&format!(
        "(umount {bidir}/inner || true) && umount {bidir} \
         && (umount {h2c}/late || true) && rm -rf {h2c}/late && umount {h2c} \
         && umount {private} && rmdir {bidir} {h2c} {private}"
    ));
    let _ = std::fs::remove_dir_all("/var/log/pods/default_criprop_uid-prop");
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert_clean(&keep, "the propagation sandbox was removed");
}

/// The body of the test above, with the host paths' mounts made.
fn propagation_checks(node: &Node, bidir: &str, h2c: &str, private: &str) {
    use cri::MountPropagation::{PropagationBidirectional, PropagationHostToContainer};
    let config = sandbox_config("criprop", "uid-prop", 0);
    let sandbox = node.run_sandbox(config.clone()).expect("RunPodSandbox");
    let mut c = container_config(
        "app",
        "sleep 3600",
        vec![
            mount_of(bidir, PropagationBidirectional),
            mount_of(h2c, PropagationHostToContainer),
        ],
    );
    let security = c
        .linux
        .as_mut()
        .and_then(|l| l.security_context.as_mut())
        .expect("security context");
    security.privileged = true;
    let app = node.create(&sandbox, c, &config).expect("CreateContainer");
    node.start(&app).expect("StartContainer");

    // Bidirectional: mounted in the container, seen on the host.
    let (code, out) = node.exec_sync(
        &app,
        "mkdir -p /cri-bidir/inner && mount -t tmpfs inner /cri-bidir/inner && echo in > /cri-bidir/inner/f",
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        std::fs::read_to_string(format!("{bidir}/inner/f"))
            .ok()
            .as_deref(),
        Some("in\n"),
        "the container's mount did not reach the host"
    );
    // HostToContainer: mounted on the host after the start, seen in the container.
    sh_host(&format!(
        "mkdir -p {h2c}/late && mount -t tmpfs late {h2c}/late && echo late > {h2c}/late/f"
    ));
    assert_eq!(
        node.exec_sync(&app, "cat /cri-h2c/late/f"),
        (0, "late".into())
    );
    // Nothing of the container's own tree (its overlay rootfs, /proc...) is on the host.
    let peapod_uid = node.sandbox_info(&sandbox)["peapodPodUid"]
        .as_str()
        .expect("uid")
        .to_string();
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !info.contains(&format!("/pods/{peapod_uid}/containers")),
        "the container's rootfs propagated to the host:\n{info}"
    );

    // Refused as containerd refuses them: the host path's mount gives no propagation.
    for (mode, words) in [
        (PropagationBidirectional, "but it is not a shared mount"),
        (
            PropagationHostToContainer,
            "but it is not a shared or slave mount",
        ),
    ] {
        let mut c = container_config("refused", "true", vec![mount_of(private, mode)]);
        c.metadata.as_mut().unwrap().attempt = mode as u32;
        let err = node.create(&sandbox, c, &config).unwrap_err();
        assert_eq!(err.code(), Code::Unknown, "{err:?}");
        let want = format!("path {private:?} is mounted on {private:?} {words}");
        assert!(
            err.message().starts_with("failed to generate container")
                && err.message().ends_with(&want),
            "{} (wanted {want})",
            err.message()
        );
    }

    node.stop_sandbox(&sandbox).expect("StopPodSandbox");
    node.remove_sandbox(&sandbox).expect("RemovePodSandbox");
}

const REBOOT_UID: &str = "0b0e7c1a-cri0-4000-8000-0000000000b1";
const REBOOT_DONE_UID: &str = "0b0e7c1a-cri0-4000-8000-0000000000b2";
const REBOOT_PORT: u16 = 18191;

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn ipam_allocations() -> serde_json::Value {
    let text = std::fs::read_to_string(ipam_file()).unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default()["allocations"].clone()
}

fn peapod_uid_of(node: &Node, sandbox: &str) -> String {
    node.sandbox_info(sandbox)["peapodPodUid"]
        .as_str()
        .expect("the peapod pod's uid")
        .to_string()
}

/// A host reboot with two CRI sandboxes, one with a running container, one whose container had
/// exited (the simulated reboot of vm_recovery, then the agent with the new boot id): the
/// agent starts nothing for them; the kubelet finds the sandboxes NOTREADY and the running
/// container EXITED 255 `Unknown` (the exited one as it ended), its log still there, streams
/// refused as containerd refuses them; then it does what the kubelet does: StopPodSandbox
/// (IP and host port given back), a new sandbox for the pod (attempt 1, an IP of its own),
/// RemoveContainer and RemovePodSandbox of the old ones (nothing left).
#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn after_a_reboot_the_kubelet_finds_its_sandboxes_notready_and_makes_new_ones() {
    use cri::ContainerState::{ContainerExited, ContainerRunning};
    require_vm();
    let keep = Keep::pods(&[]);
    let node = Node::launch();
    let mapping = cri::PortMapping {
        protocol: cri::Protocol::Tcp as i32,
        container_port: 8080,
        host_port: REBOOT_PORT as i32,
        host_ip: String::new(),
    };
    let mut config = sandbox_config("crireboot", REBOOT_UID, 0);
    config.port_mappings = vec![mapping.clone()];
    let sb = node.run_sandbox(config.clone()).expect("RunPodSandbox");
    let app = node
        .create(
            &sb,
            container_config(
                "app",
                "echo before-reboot; trap 'exit 0' TERM; while true; do sleep 0.2; done",
                vec![],
            ),
            &config,
        )
        .expect("CreateContainer");
    node.start(&app).expect("StartContainer");
    let app_before = wait_state(&node, &app, ContainerRunning);
    let done_config = sandbox_config("crirebootdone", REBOOT_DONE_UID, 0);
    let done_sb = node
        .run_sandbox(done_config.clone())
        .expect("RunPodSandbox");
    let quit = node
        .create(
            &done_sb,
            container_config("quit", "echo quitting; exit 3", vec![]),
            &done_config,
        )
        .expect("CreateContainer");
    node.start(&quit).expect("StartContainer");
    let quit_before = wait_state(&node, &quit, ContainerExited);
    let uid = peapod_uid_of(&node, &sb);
    let done_uid = peapod_uid_of(&node, &done_sb);
    let done_ip = node.sandbox_status(&done_sb).unwrap().network.unwrap().ip;
    let log = Path::new(&config.log_directory).join("app/0.log");
    assert!(
        wait_for(
            || std::fs::read_to_string(&log).is_ok_and(|l| l.contains("before-reboot")),
            RUNNING_TIMEOUT
        ),
        "no log at {}",
        log.display()
    );
    drop(node);

    common::reboot::simulate_reboot();
    assert_eq!(phase("crireboot"), "Unknown", "before the agent");
    let rebooted = now_ns();
    let out = expect_ok(
        &["node", "--once"],
        peapod_env(
            &["node", "--once", "--manifests", MANIFESTS],
            &[("PEAPOD_BOOT_ID", PathBuf::from(common::reboot::NEW_BOOT))],
        ),
    );
    for name in ["crireboot", "crirebootdone"] {
        assert!(
            out.contains(&format!("CRI sandbox default/{name} left NOTREADY")),
            "{out}"
        );
    }
    assert!(!out.contains("recovered"), "{out}");
    // Nothing of theirs runs or is made again.
    assert!(
        common::reboot::pods_processes().is_empty(),
        "processes: {:?}",
        common::reboot::pods_processes()
    );
    assert!(!Path::new(RUN_DIR).join("pods").join(&uid).exists());
    // `peapod get`: the container's end, not a lost supervisor.
    assert_eq!(status_column("crireboot"), "Unknown");
    assert_eq!(column("crireboot", "READY"), "0/1");
    assert_eq!(phase("crireboot"), "Failed");
    assert_eq!(status_column("crirebootdone"), "Error");
    let described = peapod_ok(&["describe", "pod", "crireboot"]);
    assert!(
        described
            .lines()
            .any(|l| l.trim_start().starts_with("Exit Code:") && l.trim_end().ends_with("255")),
        "{described}"
    );

    let node = Node::launch_with(&[("PEAPOD_BOOT_ID", common::reboot::NEW_BOOT)]);
    // The agent started again in this boot: nothing more to settle.
    assert!(!std::fs::read_to_string("/tmp/cri-node.log")
        .unwrap_or_default()
        .contains("left NOTREADY"));
    // PodSandboxStatus/ListPodSandbox: NOTREADY, no network.
    for id in [&sb, &done_sb] {
        let s = node.sandbox_status(id).expect("PodSandboxStatus");
        assert_eq!(s.state, cri::PodSandboxState::SandboxNotready as i32);
        assert_eq!(s.network.unwrap().ip, "");
    }
    let notready = node.list_sandboxes(cri::PodSandboxFilter {
        state: Some(cri::PodSandboxStateValue {
            state: cri::PodSandboxState::SandboxNotready as i32,
        }),
        ..Default::default()
    });
    assert_eq!(notready.len(), 2, "{notready:?}");
    // ContainerStatus/ListContainers: the running one EXITED 255 Unknown, ended at the
    // recovery; the exited one as it was.
    let s = node.status(&app).expect("ContainerStatus");
    assert_eq!(s.state, ContainerExited as i32, "{s:?}");
    assert_eq!((s.exit_code, s.reason.as_str()), (255, "Unknown"), "{s:?}");
    assert!(s.finished_at >= rebooted, "{s:?}");
    assert_eq!(s.started_at, app_before.started_at);
    assert_eq!(s.log_path, log.display().to_string());
    let q = node.status(&quit).expect("ContainerStatus");
    assert_eq!((q.state, q.exit_code), (ContainerExited as i32, 3), "{q:?}");
    assert_eq!(q.reason, "Error");
    assert_eq!(
        (q.started_at, q.finished_at),
        (quit_before.started_at, quit_before.finished_at)
    );
    let mut both = vec![app.clone(), quit.clone()];
    both.sort();
    assert_eq!(
        node.list(cri::ContainerFilter {
            state: state_filter(ContainerExited),
            ..Default::default()
        }),
        both
    );
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("before-reboot"));
    // Streams refused as containerd refuses them; stats still answer.
    for e in [
        node.exec_sync_call(&app).map(|_| ()).unwrap_err(),
        node.exec(&app).map(|_| ()).unwrap_err(),
        node.attach(&app).map(|_| ()).unwrap_err(),
    ] {
        assert_eq!(e.code(), Code::Unknown, "{e:?}");
        assert_eq!(e.message(), "container is in CONTAINER_EXITED state");
    }
    let e = node.port_forward(&sb).unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::Unknown, "sandbox container is not running")
    );
    node.call(|mut c| async move {
        c.list_container_stats(cri::ListContainerStatsRequest { filter: None })
            .await
    })
    .expect("ListContainerStats");

    // The kubelet: the old sandbox stopped: its IP and host port given back.
    node.stop_sandbox(&sb).expect("StopPodSandbox");
    assert!(!ipam_has(&uid), "the IP was given back");
    let ports =
        std::fs::read_to_string(lib_dir().join("network/hostports.json")).unwrap_or_default();
    assert!(!ports.contains(&uid), "the host port claim stayed: {ports}");
    node.stop_sandbox(&sb).expect("StopPodSandbox twice");
    // A new sandbox, attempt 1, with the same host port and an address of its own.
    let mut again_config = sandbox_config("crireboot", REBOOT_UID, 1);
    again_config.port_mappings = vec![mapping];
    let again = node
        .run_sandbox(again_config.clone())
        .expect("RunPodSandbox, attempt 1");
    let s = node.sandbox_status(&again).unwrap();
    assert_eq!(s.state, cri::PodSandboxState::SandboxReady as i32);
    let ip = s.network.unwrap().ip;
    assert!(ip.starts_with("10.88.") && ip != done_ip, "{ip}");
    let ips: Vec<String> = ipam_allocations()
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.to_string())
        .collect();
    let unique: std::collections::BTreeSet<&String> = ips.iter().collect();
    assert_eq!(unique.len(), ips.len(), "{ips:?}");
    let mut app_config = container_config(
        "app",
        "echo after-reboot; trap 'exit 0' TERM; while true; do sleep 0.2; done",
        vec![],
    );
    app_config.metadata.as_mut().unwrap().attempt = 1;
    app_config.log_path = "app/1.log".into();
    let app1 = node
        .create(&again, app_config, &again_config)
        .expect("CreateContainer in the new sandbox");
    node.start(&app1).expect("StartContainer");
    wait_state(&node, &app1, ContainerRunning);
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("before-reboot"));
    // The kubelet's garbage collection: the old containers and sandboxes go, nothing left.
    node.remove(&app)
        .expect("RemoveContainer of the lost container");
    node.remove_sandbox(&sb).expect("RemovePodSandbox");
    assert!(!lib_dir().join("pods").join(&uid).exists());
    node.remove_sandbox(&done_sb)
        .expect("RemovePodSandbox of a sandbox the reboot stopped, not stopped since");
    assert!(!lib_dir().join("pods").join(&done_uid).exists());
    assert!(!ipam_has(&done_uid));
    assert_eq!(node.list_sandboxes(Default::default()), vec![again.clone()]);
    node.stop_sandbox(&again).expect("StopPodSandbox");
    node.remove_sandbox(&again).expect("RemovePodSandbox");
    drop(node);
    let _ = std::fs::remove_dir_all(&config.log_directory);
    let _ = std::fs::remove_dir_all(&done_config.log_directory);
    assert_clean(
        &keep,
        "the sandboxes of before and after the reboot were removed",
    );
}

const AGENT_KILL_UID: &str = "0b0e7c1a-cri0-4000-8000-0000000000c1";

/// The CRI server killed (the agent restarts it), then the agent itself killed with kill -9 and
/// started again: the pods run on untouched (same processes), a container that exited while no
/// server ran is EXITED with its exit code, and events are as containerd's after its restart:
/// none for that exit, the STOPPED of an exit after the restart given to a subscriber that
/// came later (held for it).
#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn cri_pods_run_on_while_the_agent_is_killed_and_restarted() {
    use cri::ContainerState::{ContainerExited, ContainerRunning};
    require_vm();
    let keep = Keep::pods(&[]);
    let trigger = Path::new("/tmp/cri-agent-kill");
    let _ = std::fs::remove_dir_all(trigger);
    std::fs::create_dir_all(trigger).unwrap();
    let mount = cri::Mount {
        container_path: "/trigger".into(),
        host_path: trigger.display().to_string(),
        ..Default::default()
    };
    let waits_for = |file: &str, code: i32| {
        format!("while [ ! -f /trigger/{file} ]; do sleep 0.2; done; exit {code}")
    };
    let mut node = Node::launch();
    let config = sandbox_config("criagent", AGENT_KILL_UID, 0);
    let sb = node.run_sandbox(config.clone()).expect("RunPodSandbox");
    let mut ids = Vec::new();
    for (name, script) in [
        (
            "long",
            "trap 'exit 0' TERM; while true; do sleep 0.2; done".to_string(),
        ),
        ("quits", waits_for("quit", 7)),
        ("later", waits_for("later", 9)),
    ] {
        let id = node
            .create(
                &sb,
                container_config(name, &script, vec![mount.clone()]),
                &config,
            )
            .expect("CreateContainer");
        node.start(&id).expect("StartContainer");
        wait_state(&node, &id, ContainerRunning);
        ids.push(id);
    }
    let (long, quits, later) = (ids[0].clone(), ids[1].clone(), ids[2].clone());
    let pids = |node: &Node| -> Vec<i64> {
        let mut p: Vec<i64> = ids
            .iter()
            .map(|id| node.container_info(id)["pid"].as_i64().unwrap_or(-1))
            .collect();
        p.push(node.sandbox_info(&sb)["pid"].as_i64().unwrap_or(-1));
        p
    };
    let before = pids(&node);
    assert!(before.iter().all(|p| *p > 0), "{before:?}");

    // The CRI server alone killed: the agent starts another; the pods did not notice.
    let server = node.server_pid().expect("the CRI server");
    kill(server, "KILL");
    assert!(
        wait_for(
            || node.server_pid().is_some_and(|p| p != server),
            Duration::from_secs(30)
        ),
        "the agent did not restart its CRI server"
    );
    node.reconnect();
    assert_eq!(pids(&node), before);
    for id in &ids {
        assert_eq!(node.status(id).unwrap().state, ContainerRunning as i32);
    }

    // The agent killed: its CRI server goes with it; the pods run on without either.
    let server = node.server_pid().expect("the CRI server");
    kill(node.agent.id() as i32, "KILL");
    let _ = node.agent.wait();
    assert!(
        wait_for(
            || common::accounting::proc_stat(server).is_none_or(|s| s.state == 'Z'),
            Duration::from_secs(30)
        ),
        "the CRI server outlived its agent"
    );
    std::fs::write(trigger.join("quit"), "").unwrap();
    wait_until(
        "criagent",
        "quits ended",
        || {
            container_status("criagent", "quits")
                .is_some_and(|s| s["state"]["terminated"]["exitCode"] == 7)
        },
        RUNNING_TIMEOUT,
    );
    drop(node);
    let node = Node::launch();
    let after = pids(&node);
    assert_eq!(after[0], before[0], "long was restarted");
    assert_eq!(after[2], before[2], "later was restarted");
    assert_eq!(after[3], before[3], "the sandbox was re-created");
    assert_eq!(
        node.sandbox_status(&sb).unwrap().state,
        cri::PodSandboxState::SandboxReady as i32
    );
    assert_eq!(node.status(&long).unwrap().state, ContainerRunning as i32);
    let q = node.status(&quits).unwrap();
    assert_eq!((q.state, q.exit_code), (ContainerExited as i32, 7), "{q:?}");
    assert_eq!(q.reason, "Error");
    // An exit after the restart, before anyone subscribed: its STOPPED is held for the
    // subscriber; the exit while no server ran has none.
    std::fs::write(trigger.join("later"), "").unwrap();
    let l = wait_state(&node, &later, ContainerExited);
    assert_eq!(l.exit_code, 9);
    std::thread::sleep(Duration::from_secs(3));
    let mut stream = node.subscribe();
    let got = quiet_events(&node, &mut stream);
    assert_eq!(
        kinds(&got),
        [(
            later.clone(),
            cri::ContainerEventType::ContainerStoppedEvent
        )]
    );
    let status = got[0]
        .containers_statuses
        .iter()
        .find(|c| c.id == later)
        .expect("later's status in its event");
    assert_eq!(status.exit_code, 9);

    node.stop_sandbox(&sb).expect("StopPodSandbox");
    node.remove_sandbox(&sb).expect("RemovePodSandbox");
    drop(stream);
    drop(node);
    let _ = std::fs::remove_dir_all(&config.log_directory);
    let _ = std::fs::remove_dir_all(trigger);
    assert_clean(&keep, "the sandbox was removed");
}
