//! The CRI endpoint of `peapod node`, driven by a gRPC client made from the same generated
//! code (k8s-cri), on the host: the agent runs against throwaway state directories and serves
//! the socket under them; images come from a real registry on loopback (`scripts/registry`).
//!
//! Covered: Version, Status (ready, then a broken pod network config), RuntimeConfig,
//! UpdateRuntimeConfig, an Unimplemented call; PullImage anonymous, through a mirror, with basic
//! auth (request credentials, base64 `auth`, credentials files, a wrong password, another
//! server's credentials), with a `registry_token` from a token server (and a bogus one), a
//! missing tag and an invalid reference; ImageStatus (present by tag,
//! ID, ID prefix and repo digest, absent, verbose), ListImages (all, filtered), RemoveImage
//! (twice), ImageFsInfo; the socket's mode, its removal at exit, and the agent restarting a
//! killed server. Runs as root here (the agent's lock and run directory); it touches no network
//! but loopback.

mod common;
#[path = "common/cri_connect.rs"]
mod cri_connect;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::pull::Peapod;
use common::registry::{
    docker_config, layout, layout_json, layout_top_digest, manifest_image, mirrors_toml, Registry,
};
use cri_connect::connect;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;
use tonic::Code;

const USER: &str = "peapod";
const PASSWORD: &str = "s3cret-Pa55";

/// `peapod node` serving the CRI for one test, with a client connected to its socket.
struct Node {
    agent: Child,
    socket: PathBuf,
    log: PathBuf,
    rt: tokio::runtime::Runtime,
    channel: Channel,
}

impl Node {
    fn start(peapod: &Peapod) -> Node {
        let root = peapod
            .lib_dir()
            .parent()
            .expect("lib dir has a parent")
            .to_path_buf();
        let manifests = root.join("manifests");
        std::fs::create_dir_all(&manifests).expect("cannot create the manifest dir");
        let log = root.join("node.log");
        let log_file = std::fs::File::create(&log).expect("cannot create the node log");
        let agent = peapod
            .command(&["node", "--manifests", &manifests.display().to_string()])
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("cannot start peapod node");
        let socket = peapod.run_dir().join("peapod.sock");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "the CRI socket {} did not appear; node log:\n{}",
                socket.display(),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let channel = rt.block_on(connect(&socket));
        Node {
            agent,
            socket,
            log,
            rt,
            channel,
        }
    }

    fn runtime(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel.clone())
    }

    fn images(&self) -> ImageServiceClient<Channel> {
        ImageServiceClient::new(self.channel.clone())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The CRI server's PID: the agent's only child.
    fn server_pid(&self) -> Option<i32> {
        let pid = self.agent.id();
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
    }

    fn pull(&self, image: &str, auth: Option<cri::AuthConfig>) -> Result<String, tonic::Status> {
        let req = cri::PullImageRequest {
            image: Some(spec(image)),
            auth,
            sandbox_config: None,
        };
        self.rt
            .block_on(self.images().pull_image(req))
            .map(|r| r.into_inner().image_ref)
    }

    fn status(&self, image: &str, verbose: bool) -> cri::ImageStatusResponse {
        let req = cri::ImageStatusRequest {
            image: Some(spec(image)),
            verbose,
        };
        self.rt
            .block_on(self.images().image_status(req))
            .unwrap_or_else(|e| panic!("ImageStatus {image}: {e}"))
            .into_inner()
    }

    fn list(&self, filter: Option<&str>) -> Vec<cri::Image> {
        let req = cri::ListImagesRequest {
            filter: filter.map(|f| cri::ImageFilter {
                image: Some(spec(f)),
            }),
        };
        self.rt
            .block_on(self.images().list_images(req))
            .unwrap_or_else(|e| panic!("ListImages: {e}"))
            .into_inner()
            .images
    }

    fn remove(&self, image: &str) {
        let req = cri::RemoveImageRequest {
            image: Some(spec(image)),
        };
        self.rt
            .block_on(self.images().remove_image(req))
            .unwrap_or_else(|e| panic!("RemoveImage {image}: {e}"));
    }

    fn fs_info(&self) -> cri::FilesystemUsage {
        let mut resp = self
            .rt
            .block_on(self.images().image_fs_info(cri::ImageFsInfoRequest {}))
            .unwrap_or_else(|e| panic!("ImageFsInfo: {e}"))
            .into_inner();
        assert_eq!(resp.image_filesystems.len(), 1, "{resp:?}");
        assert!(resp.container_filesystems.is_empty(), "{resp:?}");
        resp.image_filesystems.remove(0)
    }

    /// SIGTERM to the agent; returns once it exited.
    fn stop(&mut self) {
        // SAFETY: kill(2) on our own child's PID.
        unsafe { libc::kill(self.agent.id() as i32, libc::SIGTERM) };
        let status = self.agent.wait().expect("waiting for peapod node");
        assert!(
            status.success(),
            "peapod node exited with {status}; log:\n{}",
            self.log()
        );
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.agent.try_wait() {
            // SAFETY: kill(2) on our own child's PID.
            unsafe { libc::kill(self.agent.id() as i32, libc::SIGTERM) };
            let _ = self.agent.wait();
        }
    }
}

fn spec(image: &str) -> cri::ImageSpec {
    cri::ImageSpec {
        image: image.to_string(),
        ..Default::default()
    }
}

fn basic(user: &str, password: &str) -> Option<cri::AuthConfig> {
    Some(cri::AuthConfig {
        username: user.to_string(),
        password: password.to_string(),
        ..Default::default()
    })
}

/// The median of `n` timings of `f`, for the report (never asserted).
fn median_ms(n: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[n / 2]
}

/// Size of a blob of a fixture layout.
fn blob_size(layout: &Path, digest: &str) -> u64 {
    let hex = digest.trim_start_matches("sha256:");
    std::fs::metadata(layout.join("blobs/sha256").join(hex))
        .unwrap_or_else(|e| panic!("blob {digest}: {e}"))
        .len()
}

#[test]
fn runtime_calls_socket_and_restart() {
    let peapod = Peapod::new();
    let mut node = Node::start(&peapod);
    let mut rt = node.runtime();

    let v = node
        .rt
        .block_on(rt.version(cri::VersionRequest {
            version: "v1".into(),
        }))
        .expect("Version")
        .into_inner();
    assert_eq!(
        (
            v.version.as_str(),
            v.runtime_name.as_str(),
            v.runtime_version.as_str(),
            v.runtime_api_version.as_str()
        ),
        ("0.1.0", "peapod", env!("CARGO_PKG_VERSION"), "v1")
    );

    let status = |rt: &mut RuntimeServiceClient<Channel>, node: &Node| {
        node.rt
            .block_on(rt.status(cri::StatusRequest { verbose: true }))
            .expect("Status")
            .into_inner()
    };
    let s = status(&mut rt, &node);
    let conditions = s.status.expect("a runtime status").conditions;
    let kinds: Vec<(&str, bool)> = conditions
        .iter()
        .map(|c| (c.r#type.as_str(), c.status))
        .collect();
    assert_eq!(
        kinds,
        [("RuntimeReady", true), ("NetworkReady", true)],
        "{conditions:?}"
    );
    assert!(s.info["config"].contains("cgroupfs"), "{:?}", s.info);
    // A pod network config that cannot be used: the network is not ready, and says why.
    let net_config = peapod.lib_dir().join("network/config.json");
    std::fs::create_dir_all(net_config.parent().unwrap()).unwrap();
    std::fs::write(&net_config, r#"{"podCIDR": "10.88.0.0/40"}"#).unwrap();
    let conditions = status(&mut rt, &node).status.unwrap().conditions;
    let net = &conditions[1];
    assert!(!net.status, "{net:?}");
    assert_eq!(net.reason, "NetworkPluginNotReady");
    assert!(
        net.message.contains("10.88.0.0/40") && net.message.contains("config.json"),
        "{}",
        net.message
    );
    assert!(conditions[0].status, "the runtime itself is still ready");
    std::fs::remove_file(&net_config).unwrap();

    let config = node
        .rt
        .block_on(rt.runtime_config(cri::RuntimeConfigRequest {}))
        .expect("RuntimeConfig")
        .into_inner();
    assert_eq!(
        config.linux.map(|l| l.cgroup_driver),
        Some(cri::CgroupDriver::Cgroupfs as i32)
    );

    let update = |cidr: &str| cri::UpdateRuntimeConfigRequest {
        runtime_config: Some(cri::RuntimeConfig {
            network_config: Some(cri::NetworkConfig {
                pod_cidr: cidr.to_string(),
            }),
        }),
    };
    node.rt
        .block_on(rt.update_runtime_config(update("10.244.1.0/24")))
        .expect("UpdateRuntimeConfig with a pod CIDR");
    let e = node
        .rt
        .block_on(rt.update_runtime_config(update("10.244.1.0/99")))
        .expect_err("an invalid pod CIDR");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("pod_cidr"), "{}", e.message());

    let e = node
        .rt
        .block_on(rt.run_pod_sandbox(cri::RunPodSandboxRequest::default()))
        .expect_err("RunPodSandbox without a config");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("config"), "{}", e.message());
    let e = node
        .rt
        .block_on(rt.checkpoint_container(cri::CheckpointContainerRequest::default()))
        .expect_err("CheckpointContainer is not served");
    assert_eq!(e.code(), Code::Unimplemented);
    assert!(
        e.message().contains("CheckpointContainer"),
        "{}",
        e.message()
    );

    // Only root may talk to the runtime.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&node.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");

    // A server that dies is started again by the agent.
    let first = node.server_pid().expect("the agent runs the CRI server");
    // SAFETY: kill(2) on a PID we just read from our own child's children.
    unsafe { libc::kill(first, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(20);
    let restarted = loop {
        if let Some(pid) = node.server_pid().filter(|&p| p != first) {
            if std::os::unix::net::UnixStream::connect(&node.socket).is_ok() {
                break pid;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the CRI server was not restarted; log:\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let channel = node.rt.block_on(connect(&node.socket));
    let v = node
        .rt
        .block_on(RuntimeServiceClient::new(channel).version(cri::VersionRequest::default()))
        .expect("Version after the restart");
    assert_eq!(v.into_inner().runtime_name, "peapod");

    // Stopping the agent stops the server, which removes its socket.
    node.stop();
    assert!(
        !node.socket.exists(),
        "the socket is left behind; log:\n{}",
        node.log()
    );
    assert!(
        !Path::new(&format!("/proc/{restarted}")).exists()
            || std::fs::read_to_string(format!("/proc/{restarted}/stat"))
                .is_ok_and(|s| s.contains(") Z ")),
        "the CRI server outlived the agent"
    );
}

#[test]
fn pull_status_list_remove_and_fs_info() {
    let reg = Registry::start();
    reg.push("busybox", "test/busybox:latest");
    reg.push("busybox", "library/busybox:latest");
    reg.push("multiarch", "test/multiarch:latest");
    let peapod = Peapod::new();
    // docker.io comes from the local registry: the registries config's mirrors apply.
    peapod.set_registries(&mirrors_toml(&["docker.io"], &reg.url()));
    let node = Node::start(&peapod);

    let (bb_layout, _) = layout("busybox");
    let bb_manifest = layout_top_digest(&bb_layout);
    let (bb_id, _) = manifest_image(&bb_layout, &bb_manifest);
    let bb_ref = format!("{}/test/busybox:latest", reg.host());

    assert_eq!(
        node.status(&bb_ref, false).image,
        None,
        "absent before the pull"
    );
    let id = node.pull(&bb_ref, None).expect("PullImage anonymous");
    assert_eq!(id, bb_id, "PullImage returns the image ID (config digest)");

    let st = node.status(&bb_ref, true);
    let image = st.image.expect("ImageStatus of a pulled image");
    assert_eq!(image.id, bb_id);
    assert_eq!(image.repo_tags, std::slice::from_ref(&bb_ref));
    assert_eq!(
        image.repo_digests,
        [format!("{}/test/busybox@{bb_manifest}", reg.host())]
    );
    let manifest = layout_json(&bb_layout, &bb_manifest);
    let layers: u64 = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .sum();
    let expected_size =
        blob_size(&bb_layout, &bb_manifest) + blob_size(&bb_layout, &bb_id) + layers;
    assert_eq!(image.size, expected_size, "manifest + config + layers");
    let info: serde_json::Value = serde_json::from_str(&st.info["info"]).expect("verbose info");
    assert!(info["chainID"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(
        info["imageSpec"]["rootfs"]["type"], "layers",
        "the config in the verbose info"
    );
    // The same image by ID, ID prefix and repo digest.
    for by in [
        bb_id.clone(),
        bb_id["sha256:".len().."sha256:".len() + 12].to_string(),
        format!("{}/test/busybox@{bb_manifest}", reg.host()),
    ] {
        assert_eq!(
            node.status(&by, false).image.map(|i| i.id).as_deref(),
            Some(bb_id.as_str()),
            "ImageStatus {by}"
        );
    }
    assert_eq!(
        node.status(&format!("{}/test/busybox:nope", reg.host()), false)
            .image,
        None
    );

    // Through the mirror: docker.io/library/busybox, the same content as the test repository.
    let hub = node
        .pull("busybox", None)
        .expect("PullImage through a mirror");
    assert_eq!(hub, bb_id);
    let image = node
        .status("docker.io/library/busybox:latest", false)
        .image
        .unwrap();
    assert_eq!(
        image.repo_tags,
        [
            bb_ref.clone(),
            "docker.io/library/busybox:latest".to_string()
        ],
        "one image, two names"
    );

    // A multi-arch index: the ID is this platform's config, the repo digest the index's.
    let (ma_layout, _) = layout("multiarch");
    let index_digest = layout_top_digest(&ma_layout);
    let ma_ref = format!("{}/test/multiarch:latest", reg.host());
    let ma_id = node.pull(&ma_ref, None).expect("PullImage of an index");
    let ma = node.status(&ma_ref, false).image.unwrap();
    assert_eq!(ma.id, ma_id);
    assert_eq!(
        ma.repo_digests,
        [format!("{}/test/multiarch@{index_digest}", reg.host())]
    );

    let all = node.list(None);
    let mut ids: Vec<&str> = all.iter().map(|i| i.id.as_str()).collect();
    ids.sort();
    let mut want = vec![bb_id.as_str(), ma_id.as_str()];
    want.sort();
    assert_eq!(ids, want, "ListImages: one entry per image");
    let filtered = node.list(Some(&ma_ref));
    assert_eq!(
        filtered.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        [ma_id.as_str()]
    );
    assert!(node.list(Some("absent/image:1")).is_empty());

    let fs = node.fs_info();
    assert_eq!(
        fs.fs_id.as_ref().map(|f| PathBuf::from(&f.mountpoint)),
        Some(peapod.store())
    );
    let used = fs.used_bytes.map(|u| u.value).unwrap_or_default();
    assert!(
        used > layers,
        "ImageFsInfo used {used} bytes, the layers alone {layers}"
    );
    assert!(fs.inodes_used.map(|u| u.value).unwrap_or_default() > 10);
    assert!(fs.timestamp > 0);

    // Latencies through the socket, for the report.
    let cached = median_ms(5, || {
        node.pull(&bb_ref, None)
            .expect("PullImage of a cached image");
    });
    let list = median_ms(21, || {
        node.list(None);
    });
    let status = median_ms(21, || {
        node.status(&bb_ref, false);
    });
    eprintln!(
        "latency (median): PullImage cached {cached:.2} ms, ListImages {list:.2} ms, ImageStatus {status:.2} ms"
    );

    // Removing one name removes the image (every name), as containerd does; twice is fine.
    node.remove(&bb_ref);
    assert_eq!(node.status(&bb_id, false).image, None);
    assert_eq!(node.status("busybox", false).image, None);
    node.remove(&bb_ref);
    node.remove(&bb_id);
    let left: Vec<String> = node.list(None).into_iter().map(|i| i.id).collect();
    assert_eq!(left, std::slice::from_ref(&ma_id));
    let after = node
        .fs_info()
        .used_bytes
        .map(|u| u.value)
        .unwrap_or_default();
    assert!(
        after < used,
        "the removed image's content was reclaimed: {after} vs {used}"
    );

    // A tag the registry does not have, and a reference that cannot be one.
    let e = node
        .pull(&format!("{}/test/busybox:missing", reg.host()), None)
        .expect_err("a missing tag");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert!(
        e.message().starts_with("failed to pull and unpack image"),
        "{}",
        e.message()
    );
    let e = node
        .pull("UPPER/case:x", None)
        .expect_err("an invalid reference");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("image.image"), "{}", e.message());
    let e = node.pull("", None).expect_err("no image");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
}

#[test]
fn pull_with_credentials() {
    let reg = Registry::start_with_auth(USER, PASSWORD);
    reg.push("busybox", "test/busybox:latest");
    let mut peapod = Peapod::new();
    let node = Node::start(&peapod);
    let reference = format!("{}/test/busybox:latest", reg.host());

    let e = node.pull(&reference, None).expect_err("no credentials");
    assert_eq!(e.code(), Code::Unknown, "{e:?}");
    assert!(
        e.message()
            .starts_with(&format!("failed to pull and unpack image \"{reference}\""))
            && e.message().contains("unauthorized"),
        "{}",
        e.message()
    );

    let e = node
        .pull(&reference, basic(USER, "wrong"))
        .expect_err("a wrong password");
    assert_eq!(e.code(), Code::Unknown, "{e:?}");
    assert!(
        e.message().contains("unauthorized") && e.message().contains("refused the credentials"),
        "{}",
        e.message()
    );

    // Credentials for another server are not sent.
    let other = cri::AuthConfig {
        server_address: "127.0.0.1:1".into(),
        ..basic(USER, PASSWORD).unwrap()
    };
    let e = node
        .pull(&reference, Some(other))
        .expect_err("another server's credentials");
    assert!(
        e.message().contains("requires credentials"),
        "{}",
        e.message()
    );

    let id = node
        .pull(&reference, basic(USER, PASSWORD))
        .expect("username and password");
    assert!(id.starts_with("sha256:"), "{id}");
    node.remove(&reference);

    let encoded = cri::AuthConfig {
        auth: base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}")),
        server_address: format!("http://{}", reg.host()),
        ..Default::default()
    };
    assert_eq!(
        node.pull(&reference, Some(encoded)).expect("base64 auth"),
        id
    );
    node.remove(&reference);

    let bad = cri::AuthConfig {
        auth: "not base64!".into(),
        ..Default::default()
    };
    let e = node
        .pull(&reference, Some(bad))
        .expect_err("undecodable auth");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("auth.auth"), "{}", e.message());
    drop(node);

    // No credentials in the request: peapod's credentials files (--authfile), read at each
    // pull by the server the agent started.
    peapod.set_authfile(&docker_config(&reg.host(), USER, PASSWORD));
    let node = Node::start(&peapod);
    assert_eq!(node.pull(&reference, None).expect("credentials file"), id);
}

/// A pull token from the token server of `reg`, as a client that did the token dance itself
/// would hold it (what the CRI's `registry_token` carries).
fn pull_token(reg: &Registry, repository: &str, creds: &str) -> String {
    let probe = common::registry::run_ok(std::process::Command::new("curl").args([
        "-s",
        "-o",
        "/dev/null",
        "-D",
        "-",
        &format!("{}/v2/{repository}/manifests/latest", reg.url()),
    ]));
    let headers = String::from_utf8_lossy(&probe.stdout).to_string();
    let challenge = headers
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("www-authenticate:"))
        .unwrap_or_else(|| panic!("no Bearer challenge from the registry:\n{headers}"));
    let param = |name: &str| {
        let start = challenge
            .find(&format!("{name}=\""))
            .unwrap_or_else(|| panic!("no {name} in {challenge}"))
            + name.len()
            + 2;
        let len = challenge[start..].find('"').unwrap_or(0);
        challenge[start..start + len].to_string()
    };
    let url = format!(
        "{}?service={}&scope=repository:{repository}:pull",
        param("realm"),
        param("service")
    );
    let out = common::registry::run_ok(
        std::process::Command::new("curl").args(["-sf", "-u", creds, &url]),
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("token server answer is not JSON ({e})"));
    json["token"]
        .as_str()
        .or(json["access_token"].as_str())
        .expect("a token in the token server's answer")
        .to_string()
}

#[test]
fn pull_with_a_registry_token() {
    let reg = Registry::start_with_token(USER, PASSWORD);
    reg.push("busybox", "test/busybox:latest");
    let peapod = Peapod::new();
    let node = Node::start(&peapod);
    let reference = format!("{}/test/busybox:latest", reg.host());
    let token = pull_token(&reg, "test/busybox", &format!("{USER}:{PASSWORD}"));
    let with = |token: &str| {
        Some(cri::AuthConfig {
            registry_token: token.to_string(),
            ..Default::default()
        })
    };
    let e = node
        .pull(&reference, with("not-a-token"))
        .expect_err("a bogus token");
    assert!(e.message().contains("unauthorized"), "{}", e.message());
    let id = node
        .pull(&reference, with(&token))
        .expect("PullImage with registry_token");
    assert_eq!(node.status(&reference, false).image.map(|i| i.id), Some(id));
}
