//! The CRI's configs as the pods peapod runs (pure): a `PodSandboxConfig` becomes a k8s Pod
//! with no containers, each `ContainerConfig` one more container of it (and hostPath volumes
//! for its mounts), so that the one place that makes OCI Specs (`container::spec`) builds
//! theirs too, and `peapod get`/`describe`/`logs` show them. Also the names containerd
//! reserves for sandboxes and containers, and new IDs.

use std::collections::BTreeMap;

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{
    AppArmorProfile, Capabilities, Container, ContainerPort, EnvVar, HostPathVolumeSource, Pod,
    PodDNSConfig, PodDNSConfigOption, PodSecurityContext, PodSpec, ResourceRequirements,
    SeccompProfile, SecurityContext, Sysctl, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::container::seccomp::{TYPE_LOCALHOST, TYPE_RUNTIME_DEFAULT, TYPE_UNCONFINED};
use crate::pod::control::{
    CriContainerSettings, CRI_CGROUP_PARENT_ANNOTATION, CRI_SANDBOX_ANNOTATION,
};

/// A new 64-hex-digit ID for the sandbox or container reserved as `name`.
pub fn new_id(name: &str) -> String {
    crate::container::names::container_id(name, &uuid::Uuid::new_v4().to_string())
}

/// The name containerd reserves for a sandbox: `<name>_<namespace>_<uid>_<attempt>`; a second
/// sandbox with the same metadata is refused while the first exists.
pub fn sandbox_name(m: &cri::PodSandboxMetadata) -> String {
    format!("{}_{}_{}_{}", m.name, m.namespace, m.uid, m.attempt)
}

/// The name containerd reserves for a container:
/// `<container>_<pod>_<namespace>_<uid>_<attempt>`.
pub fn container_name(s: &cri::PodSandboxMetadata, c: &cri::ContainerMetadata) -> String {
    format!(
        "{}_{}_{}_{}_{}",
        c.name, s.name, s.namespace, s.uid, c.attempt
    )
}

/// The name of the peapod pod (or container) for a CRI object of `name` and `attempt`: the
/// name itself at the first attempt, `<name>-<attempt>` after, since the kubelet makes the
/// next attempt while the previous one is still on record.
pub fn peapod_name(name: &str, attempt: u32) -> String {
    if attempt == 0 {
        name.to_string()
    } else {
        format!("{name}-{attempt}")
    }
}

/// Whether the sandbox asks for the node's namespace of a kind (hostNetwork, hostIPC,
/// hostPID).
fn ns_mode(config: &cri::PodSandboxConfig, pick: fn(&cri::NamespaceOption) -> i32) -> bool {
    ns_is(config, pick, cri::NamespaceMode::Node)
}

/// The sandbox's namespace options (`linux.security_context.namespace_options`), if given.
pub fn namespace_options(config: &cri::PodSandboxConfig) -> Option<&cri::NamespaceOption> {
    config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref())
}

/// Whether the sandbox's namespace option of a kind is `mode`; options left out are POD (the
/// enum's zero), as containerd reads them through Go's nil-safe getters.
fn ns_is(
    config: &cri::PodSandboxConfig,
    pick: fn(&cri::NamespaceOption) -> i32,
    mode: cri::NamespaceMode,
) -> bool {
    namespace_options(config).map_or(cri::NamespaceMode::Pod as i32, pick) == mode as i32
}

/// Why the sandbox cannot be run as asked, if it asks for a user namespace of its own
/// (`userns_options` in POD mode: the kubelet's `hostUsers: false`). peapod does not make user
/// namespaces and says so in its runtime handler's features (`user_namespaces: false`), so a
/// kubelet refuses such a pod itself; a client that asks anyway is refused rather than given
/// the host's user IDs. Left out, or NODE, is the host's users.
pub fn userns_refused(config: &cri::PodSandboxConfig) -> Option<&'static str> {
    let userns = namespace_options(config)?.userns_options.as_ref()?;
    (userns.mode == cri::NamespaceMode::Pod as i32).then_some(
        "user namespaces are not supported by this runtime (its handler's features say so)",
    )
}

/// Why the sandbox's sysctls cannot be set, if one cannot: the kubelet admitted them (its
/// allowlist is the node's), but a host-wide one, or one of a namespace the pod shares with the
/// host, would change the host (refused as runc refuses it under containerd).
pub fn sysctl_refused(config: &cri::PodSandboxConfig) -> Option<String> {
    let mut names: Vec<&String> = config.linux.iter().flat_map(|l| l.sysctls.keys()).collect();
    names.sort();
    let (net, ipc) = (ns_mode(config, |n| n.network), ns_mode(config, |n| n.ipc));
    names
        .into_iter()
        .find_map(|n| crate::container::sysctl::not_in_pod_namespace(n, net, ipc))
}

/// The sandbox's `linux.cgroup_parent`, checked (`cgroup::parent::parse`), as the value of
/// [`CRI_CGROUP_PARENT_ANNOTATION`]; None where peapod keeps its own layout (no parent).
pub fn cgroup_parent(
    config: &cri::PodSandboxConfig,
) -> Result<Option<String>, crate::cgroup::parent::ParentError> {
    let raw = config
        .linux
        .as_ref()
        .map(|l| l.cgroup_parent.as_str())
        .unwrap_or_default();
    Ok(crate::cgroup::parent::parse(raw)?.map(|rel| format!("/{}", rel.display())))
}

/// The sandbox's port mappings as ContainerPorts (those with a host port; the protocol
/// named as in a Pod).
fn host_ports(mappings: &[cri::PortMapping]) -> Vec<ContainerPort> {
    mappings
        .iter()
        .filter(|m| m.host_port > 0)
        .map(|m| ContainerPort {
            container_port: m.container_port,
            host_port: Some(m.host_port),
            host_ip: (!m.host_ip.is_empty()).then(|| m.host_ip.clone()),
            protocol: Some(
                match cri::Protocol::try_from(m.protocol) {
                    Ok(cri::Protocol::Udp) => "UDP",
                    Ok(cri::Protocol::Sctp) => "SCTP",
                    _ => "TCP",
                }
                .into(),
            ),
            name: None,
        })
        .collect()
}

/// The pod a sandbox is: metadata, labels and annotations passed through (plus
/// [`CRI_SANDBOX_ANNOTATION`], the cgroup parent under [`CRI_CGROUP_PARENT_ANNOTATION`], and
/// the port mappings under `hostport::PORTS_ANNOTATION`),
/// hostname, DNS, host network and IPC; no containers yet.
pub fn sandbox_pod(id: &str, config: &cri::PodSandboxConfig) -> Pod {
    let meta = config.metadata.clone().unwrap_or_default();
    let namespace = if meta.namespace.is_empty() {
        "default".to_string()
    } else {
        meta.namespace.clone()
    };
    let mut annotations: BTreeMap<String, String> = config
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations.insert(CRI_SANDBOX_ANNOTATION.into(), id.into());
    // Checked by the caller; an unusable one leaves peapod's own layout.
    if let Ok(Some(parent)) = cgroup_parent(config) {
        annotations.insert(CRI_CGROUP_PARENT_ANNOTATION.into(), parent);
    }
    let ports = host_ports(&config.port_mappings);
    if !ports.is_empty() {
        annotations.insert(
            crate::network::hostport::PORTS_ANNOTATION.into(),
            serde_json::to_string(&ports).unwrap_or_default(),
        );
    }
    let labels: BTreeMap<String, String> = config
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // An empty DNSConfig (critest's namespace tests send one) is the node's resolv.conf, as
    // containerd copies the host's file when the config gives nothing to write
    // [internal/cri/server sandbox_run setupSandboxFiles].
    let given_dns = config
        .dns_config
        .as_ref()
        .filter(|d| !(d.servers.is_empty() && d.searches.is_empty() && d.options.is_empty()));
    let (dns_policy, dns_config) = match given_dns {
        Some(d) => (
            "None",
            Some(PodDNSConfig {
                nameservers: Some(d.servers.clone()),
                searches: Some(d.searches.clone()),
                options: Some(
                    d.options
                        .iter()
                        .map(|o| {
                            let (name, value) = match o.split_once(':') {
                                Some((n, v)) => (n, Some(v.to_string())),
                                None => (o.as_str(), None),
                            };
                            PodDNSConfigOption {
                                name: Some(name.to_string()),
                                value,
                            }
                        })
                        .collect(),
                ),
            }),
        ),
        None => ("Default", None),
    };
    let host_network = ns_mode(config, |n| n.network);
    // The sysctls the kubelet allowed (its own admission ran): written by each container's
    // init as for any pod.
    let mut sysctls: Vec<Sysctl> = config
        .linux
        .iter()
        .flat_map(|l| l.sysctls.iter())
        .map(|(name, value)| Sysctl {
            name: name.clone(),
            value: value.clone(),
        })
        .collect();
    sysctls.sort_by(|a, b| a.name.cmp(&b.name));
    Pod {
        metadata: ObjectMeta {
            name: Some(peapod_name(&meta.name, meta.attempt)),
            namespace: Some(namespace),
            labels: (!labels.is_empty()).then_some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: Vec::new(),
            restart_policy: Some("Never".into()),
            hostname: (!config.hostname.is_empty() && !host_network)
                .then(|| config.hostname.clone()),
            dns_policy: Some(dns_policy.into()),
            dns_config,
            host_network: host_network.then_some(true),
            host_ipc: ns_mode(config, |n| n.ipc).then_some(true),
            // The kubelet's pid namespace option: NODE for hostPID, POD for
            // shareProcessNamespace (one pid namespace held by the pause process), CONTAINER
            // (the default) for neither.
            host_pid: ns_mode(config, |n| n.pid).then_some(true),
            share_process_namespace: ns_is(config, |n| n.pid, cri::NamespaceMode::Pod)
                .then_some(true),
            termination_grace_period_seconds: Some(0),
            security_context: (!sysctls.is_empty()).then(|| PodSecurityContext {
                sysctls: Some(sysctls),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    }
}

/// Kubelet's conversions back: cpu shares to a millicore request (shares = milli*1024/1000),
/// a CFS quota over its period to a millicore limit, the memory limit in bytes.
fn resources(r: &cri::LinuxContainerResources) -> Option<ResourceRequirements> {
    let mut requests = BTreeMap::new();
    let mut limits = BTreeMap::new();
    if r.cpu_shares > 2 {
        requests.insert(
            "cpu".to_string(),
            Quantity(format!("{}m", (r.cpu_shares * 1000 + 1023) / 1024)),
        );
    }
    if r.cpu_quota > 0 && r.cpu_period > 0 {
        limits.insert(
            "cpu".to_string(),
            Quantity(format!("{}m", r.cpu_quota * 1000 / r.cpu_period)),
        );
    }
    if r.memory_limit_in_bytes > 0 {
        limits.insert(
            "memory".to_string(),
            Quantity(r.memory_limit_in_bytes.to_string()),
        );
    }
    if requests.is_empty() && limits.is_empty() {
        return None;
    }
    Some(ResourceRequirements {
        requests: (!requests.is_empty()).then_some(requests),
        limits: (!limits.is_empty()).then_some(limits),
        ..Default::default()
    })
}

/// The prefix of a Localhost profile in the deprecated `seccomp_profile_path` (and the one
/// containerd trims from `localhost_ref`).
const LOCALHOST_PREFIX: &str = "localhost/";

/// containerd's reading of a container's seccomp fields (internal/cri/server
/// `generateSeccompSecurityProfile`, `generateSeccompSpecOpts`): the profile, else the
/// deprecated `seccomp_profile_path`, else none, which the CRI runs unconfined (containerd's
/// `unset_seccomp_profile` is empty by default). A Localhost profile is the absolute path
/// the kubelet made of its own seccomp root (`--root-dir`/seccomp) and the pod's
/// `localhostProfile`; container::seccomp reads it from there (manifests can only name
/// relative ones, so that path is the CRI's alone).
#[allow(deprecated)] // seccomp_profile_path: still read, as containerd reads it
fn seccomp(s: &cri::LinuxContainerSecurityContext) -> Result<SeccompProfile, String> {
    use cri::security_profile::ProfileType;
    let profile = |type_: &str, localhost: Option<&str>| SeccompProfile {
        type_: type_.into(),
        localhost_profile: localhost.map(|p| p.trim_start_matches(LOCALHOST_PREFIX).to_string()),
    };
    let Some(p) = &s.seccomp else {
        return Ok(match s.seccomp_profile_path.as_str() {
            "" | "unconfined" => profile("Unconfined", None),
            "runtime/default" | "docker/default" => profile("RuntimeDefault", None),
            path if path.starts_with(LOCALHOST_PREFIX) => profile("Localhost", Some(path)),
            other => return Err(format!("unsupported seccomp profile {other:?}")),
        });
    };
    let kind = ProfileType::try_from(p.profile_type);
    if kind != Ok(ProfileType::Localhost) && !p.localhost_ref.is_empty() {
        return Err(
            "seccomp config invalid LocalhostRef must only be set if ProfileType is Localhost"
                .into(),
        );
    }
    match kind {
        Ok(ProfileType::RuntimeDefault) => Ok(profile("RuntimeDefault", None)),
        Ok(ProfileType::Unconfined) => Ok(profile("Unconfined", None)),
        Ok(ProfileType::Localhost) => Ok(profile("Localhost", Some(&p.localhost_ref))),
        Err(_) => Err("seccomp unknown ProfileType".into()),
    }
}

/// containerd's reading of a container's AppArmor fields (internal/cri/sputil
/// `GenerateApparmorSpecOpts`, `generateSecurityProfile`): the profile, else the deprecated
/// `apparmor_profile` string, else none, which `container::apparmor` makes RuntimeDefault
/// (unconfined when privileged) where the host has AppArmor. Whether the host can apply it
/// is judged at creation (`cri::containers::create`), as containerd judges it.
#[allow(deprecated)] // apparmor_profile: still read, as containerd reads it
fn apparmor(s: &cri::LinuxContainerSecurityContext) -> Result<Option<AppArmorProfile>, String> {
    use cri::security_profile::ProfileType;
    let profile = |type_: &str, localhost: Option<&str>| AppArmorProfile {
        type_: type_.into(),
        localhost_profile: localhost.map(|p| p.trim_start_matches(LOCALHOST_PREFIX).to_string()),
    };
    let invalid = |why: String| format!("failed to generate apparmor spec opts: {why}");
    let Some(p) = &s.apparmor else {
        return Ok(match s.apparmor_profile.as_str() {
            "" => None,
            "runtime/default" | "docker/default" => Some(profile(TYPE_RUNTIME_DEFAULT, None)),
            "unconfined" => Some(profile(TYPE_UNCONFINED, None)),
            path if path.starts_with(LOCALHOST_PREFIX) => Some(profile(TYPE_LOCALHOST, Some(path))),
            other => return Err(invalid(format!("invalid profile {other:?}"))),
        });
    };
    let kind = ProfileType::try_from(p.profile_type);
    if kind != Ok(ProfileType::Localhost) && !p.localhost_ref.is_empty() {
        return Err(invalid(
            "apparmor config invalid LocalhostRef must only be set if ProfileType is Localhost"
                .into(),
        ));
    }
    match kind {
        Ok(ProfileType::RuntimeDefault) => Ok(Some(profile(TYPE_RUNTIME_DEFAULT, None))),
        Ok(ProfileType::Unconfined) => Ok(Some(profile(TYPE_UNCONFINED, None))),
        Ok(ProfileType::Localhost) => Ok(Some(profile(TYPE_LOCALHOST, Some(&p.localhost_ref)))),
        Err(_) => Err(invalid("apparmor unknown ProfileType".into())),
    }
}

fn security(s: &cri::LinuxContainerSecurityContext) -> Result<SecurityContext, String> {
    let app_armor_profile = apparmor(s)?;
    // containerd's `generateUserString`: a group needs a user (by name or id) to go with it.
    if let Some(g) = &s.run_as_group {
        if s.run_as_username.is_empty() && s.run_as_user.is_none() {
            return Err(format!(
                "failed to generate user string: user group \"{}\" is specified without user",
                g.value
            ));
        }
    }
    let caps = s.capabilities.as_ref();
    let list = |l: &[String]| (!l.is_empty()).then(|| l.to_vec());
    Ok(SecurityContext {
        privileged: s.privileged.then_some(true),
        // A user name wins over an id, as in containerd; the name is resolved in the image
        // (CriContainerSettings::run_as_username).
        run_as_user: s
            .run_as_user
            .as_ref()
            .filter(|_| s.run_as_username.is_empty())
            .map(|v| v.value),
        run_as_group: s.run_as_group.as_ref().map(|v| v.value),
        read_only_root_filesystem: s.readonly_rootfs.then_some(true),
        allow_privilege_escalation: Some(!s.no_new_privs),
        capabilities: caps.map(|c| Capabilities {
            add: list(&c.add_capabilities),
            drop: list(&c.drop_capabilities),
        }),
        seccomp_profile: Some(seccomp(s)?),
        app_armor_profile,
        ..Default::default()
    })
}

/// What the kubelet asks of the container that a Pod has no field for, but its devices (read
/// from the host by the caller): its masked and read-only paths, and the user it names.
pub fn settings(c: &cri::ContainerConfig) -> CriContainerSettings {
    let s = c.linux.as_ref().and_then(|l| l.security_context.as_ref());
    let given = |l: Option<&Vec<String>>| l.filter(|l| !l.is_empty()).cloned();
    CriContainerSettings {
        masked_paths: given(s.map(|s| &s.masked_paths)),
        readonly_paths: given(s.map(|s| &s.readonly_paths)),
        run_as_username: s
            .map(|s| s.run_as_username.clone())
            .filter(|n| !n.is_empty()),
        devices: Vec::new(),
    }
}

/// The supplemental groups the kubelet passes with each container (the pod's
/// `supplementalGroups` and `fsGroup`): pod-wide in a Pod, so set on the pod.
pub fn supplemental_groups(c: &cri::ContainerConfig) -> Option<Vec<i64>> {
    c.linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .map(|s| s.supplemental_groups.clone())
        .filter(|g| !g.is_empty())
}

/// The volume name of mount `k` of container `name`.
pub fn mount_volume(name: &str, k: usize) -> String {
    format!("cri-{name}-{k}")
}

/// A CRI mount's propagation as a volumeMount's `mountPropagation` (None: private); an
/// unknown mode is private, as containerd takes it (with a warning).
fn propagation(m: &cri::Mount) -> Option<&'static str> {
    use crate::container::spec::{PROPAGATION_BIDIRECTIONAL, PROPAGATION_HOST_TO_CONTAINER};
    match cri::MountPropagation::try_from(m.propagation) {
        Ok(cri::MountPropagation::PropagationPrivate) => None,
        Ok(cri::MountPropagation::PropagationHostToContainer) => {
            Some(PROPAGATION_HOST_TO_CONTAINER)
        }
        Ok(cri::MountPropagation::PropagationBidirectional) => Some(PROPAGATION_BIDIRECTIONAL),
        Err(_) => {
            tracing::warn!(host_path = %m.host_path, "unknown propagation mode for hostPath");
            None
        }
    }
}

/// containerd's check of a mount's host path before it asks for propagation
/// [internal/cri/opts/spec_linux_opts.go ensureShared, ensureSharedOrSlave]: Bidirectional
/// needs the mount the path is on (`mountinfo`: the host's) to be shared, HostToContainer
/// shared or a slave; otherwise neither direction could reach the other side. `path` is the
/// host path with its symlinks resolved.
pub fn check_propagation(
    m: &cri::Mount,
    path: &std::path::Path,
    mountinfo: &str,
) -> Result<(), String> {
    use crate::gofmt::quote;
    let Some(mode) = propagation(m) else {
        return Ok(());
    };
    let shown = quote(&path.to_string_lossy());
    let on = crate::procfs::mount_containing(mountinfo, path)
        .ok_or_else(|| format!("failed to find the mount of {shown}"))?;
    let mountpoint = quote(&on.mountpoint.to_string_lossy());
    if mode == crate::container::spec::PROPAGATION_BIDIRECTIONAL {
        if !on.is_shared() {
            return Err(format!(
                "path {shown} is mounted on {mountpoint} but it is not a shared mount"
            ));
        }
    } else if !on.is_shared() && !on.is_slave() {
        return Err(format!(
            "path {shown} is mounted on {mountpoint} but it is not a shared or slave mount"
        ));
    }
    Ok(())
}

/// The container a `ContainerConfig` is, named `name` in its pod, with `image` (a name the
/// store resolves), never pulled; and the hostPath volumes of its mounts (the kubelet
/// prepared the host paths; their propagation as `mountPropagation`, checked by the caller
/// with [`check_propagation`]; SELinux relabeling is not applied). The error says which
/// security setting cannot be honoured.
pub fn container(
    name: &str,
    image: &str,
    c: &cri::ContainerConfig,
) -> Result<(Container, Vec<Volume>), String> {
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    for (k, m) in c.mounts.iter().enumerate() {
        let volume = mount_volume(name, k);
        volumes.push(Volume {
            name: volume.clone(),
            host_path: Some(HostPathVolumeSource {
                path: m.host_path.clone(),
                type_: None,
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: volume,
            mount_path: m.container_path.clone(),
            read_only: m.readonly.then_some(true),
            mount_propagation: propagation(m).map(str::to_string),
            ..Default::default()
        });
    }
    let linux = c.linux.as_ref();
    let container = Container {
        name: name.to_string(),
        image: Some(image.to_string()),
        image_pull_policy: Some("Never".into()),
        command: (!c.command.is_empty()).then(|| c.command.clone()),
        args: (!c.args.is_empty()).then(|| c.args.clone()),
        working_dir: (!c.working_dir.is_empty()).then(|| c.working_dir.clone()),
        env: (!c.envs.is_empty()).then(|| {
            c.envs
                .iter()
                .map(|kv| EnvVar {
                    name: kv.key.clone(),
                    value: Some(kv.value.clone()),
                    value_from: None,
                })
                .collect()
        }),
        tty: c.tty.then_some(true),
        stdin: c.stdin.then_some(true),
        stdin_once: c.stdin_once.then_some(true),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        // Always one: no seccomp profile is unconfined in the CRI, not peapod's RuntimeDefault.
        security_context: Some(security(
            linux
                .and_then(|l| l.security_context.as_ref())
                .unwrap_or(&Default::default()),
        )?),
        resources: linux.and_then(|l| l.resources.as_ref()).and_then(resources),
        termination_message_policy: Some("File".into()),
        ..Default::default()
    };
    Ok((container, volumes))
}

/// Whether `labels` has every pair of `selector` (the CRI's label_selector is an equality
/// match of each pair).
pub fn labels_match(
    labels: &std::collections::HashMap<String, String>,
    selector: &std::collections::HashMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn meta() -> cri::PodSandboxMetadata {
        cri::PodSandboxMetadata {
            name: "web".into(),
            uid: "u-1".into(),
            namespace: "ns".into(),
            attempt: 1,
        }
    }

    #[test]
    fn mount_propagation_is_the_kubelets_and_checked_as_containerd() {
        let mount = |p: cri::MountPropagation| cri::Mount {
            container_path: "/data".into(),
            host_path: "/mnt/data".into(),
            propagation: p as i32,
            ..Default::default()
        };
        let config = |m: cri::Mount| cri::ContainerConfig {
            mounts: vec![m],
            ..Default::default()
        };
        let of = |p: cri::MountPropagation| {
            let (c, _) = container("app", "busybox", &config(mount(p))).unwrap();
            c.volume_mounts.unwrap()[0].mount_propagation.clone()
        };
        assert_eq!(of(cri::MountPropagation::PropagationPrivate), None);
        assert_eq!(
            of(cri::MountPropagation::PropagationHostToContainer).as_deref(),
            Some("HostToContainer")
        );
        assert_eq!(
            of(cri::MountPropagation::PropagationBidirectional).as_deref(),
            Some("Bidirectional")
        );
        let mut unknown = mount(cri::MountPropagation::PropagationPrivate);
        unknown.propagation = 7;
        let (c, _) = container("app", "busybox", &config(unknown)).unwrap();
        assert_eq!(c.volume_mounts.unwrap()[0].mount_propagation, None);

        let info = |opt: &str| {
            format!("22 1 0:21 / / rw shared:1 - ext4 /dev/vda rw\n30 22 0:30 / /mnt rw {opt} - tmpfs t rw\n")
        };
        let path = std::path::Path::new("/mnt/data");
        let check = |p, opt: &str| check_propagation(&mount(p), path, &info(opt));
        use cri::MountPropagation::*;
        assert_eq!(check(PropagationPrivate, ""), Ok(()));
        assert_eq!(check(PropagationBidirectional, "shared:5"), Ok(()));
        assert_eq!(
            check(PropagationBidirectional, "master:5"),
            Err(r#"path "/mnt/data" is mounted on "/mnt" but it is not a shared mount"#.into())
        );
        assert_eq!(check(PropagationHostToContainer, "master:5"), Ok(()));
        assert_eq!(check(PropagationHostToContainer, "shared:5"), Ok(()));
        assert_eq!(
            check(PropagationHostToContainer, ""),
            Err(
                r#"path "/mnt/data" is mounted on "/mnt" but it is not a shared or slave mount"#
                    .into()
            )
        );
    }

    #[test]
    fn reserved_names_and_ids_are_containerds() {
        assert_eq!(sandbox_name(&meta()), "web_ns_u-1_1");
        let c = cri::ContainerMetadata {
            name: "app".into(),
            attempt: 2,
        };
        assert_eq!(container_name(&meta(), &c), "app_web_ns_u-1_2");
        let (a, b) = (new_id("x"), new_id("x"));
        assert!(a.len() == 64 && a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(peapod_name("web", 0), "web");
        assert_eq!(peapod_name("web", 1), "web-1");
    }

    #[test]
    fn a_sandbox_config_becomes_a_pod_without_containers() {
        let config = cri::PodSandboxConfig {
            metadata: Some(meta()),
            hostname: "web".into(),
            dns_config: Some(cri::DnsConfig {
                servers: vec!["10.96.0.10".into()],
                searches: vec!["ns.svc.cluster.local".into()],
                options: vec!["ndots:5".into(), "edns0".into()],
            }),
            labels: HashMap::from([("app".into(), "web".into())]),
            annotations: HashMap::from([("a".into(), "b".into())]),
            ..Default::default()
        };
        let pod = sandbox_pod("abc", &config);
        assert_eq!(pod.metadata.name.as_deref(), Some("web-1"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("ns"));
        let ann = pod.metadata.annotations.unwrap();
        assert_eq!(ann[CRI_SANDBOX_ANNOTATION], "abc");
        assert_eq!(ann["a"], "b");
        assert_eq!(pod.metadata.labels.unwrap()["app"], "web");
        let spec = pod.spec.unwrap();
        assert!(spec.containers.is_empty());
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.hostname.as_deref(), Some("web"));
        assert_eq!(spec.dns_policy.as_deref(), Some("None"));
        let dns = spec.dns_config.unwrap();
        assert_eq!(dns.nameservers.unwrap(), ["10.96.0.10"]);
        let opts = dns.options.unwrap();
        assert_eq!(opts[0].name.as_deref(), Some("ndots"));
        assert_eq!(opts[0].value.as_deref(), Some("5"));
        assert_eq!(opts[1].value, None);
        assert_eq!(spec.host_network, None);
        // No namespace options at all (critest's default sandbox): POD, one pid namespace.
        assert_eq!(spec.share_process_namespace, Some(true));
        assert!(!ann.contains_key(crate::network::hostport::PORTS_ANNOTATION));
        assert!(!ann.contains_key(CRI_CGROUP_PARENT_ANNOTATION));

        let mut placed = config.clone();
        placed.linux = Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: "/kubepods/burstable/podu-1/".into(),
            ..Default::default()
        });
        let pod = sandbox_pod("abc", &placed);
        let ann = pod.metadata.annotations.as_ref().unwrap();
        assert_eq!(
            ann[CRI_CGROUP_PARENT_ANNOTATION],
            "/kubepods/burstable/podu-1"
        );
        assert_eq!(
            crate::pod::control::cri_cgroup_parent(&pod),
            Some(std::path::PathBuf::from("kubepods/burstable/podu-1"))
        );
        placed.linux.as_mut().unwrap().cgroup_parent = "kubepods-podu_1.slice".into();
        assert!(cgroup_parent(&placed).is_err());

        let mut mapped = config.clone();
        mapped.port_mappings = vec![
            cri::PortMapping {
                protocol: cri::Protocol::Udp as i32,
                container_port: 53,
                host_port: 5353,
                host_ip: String::new(),
            },
            cri::PortMapping {
                container_port: 80,
                ..Default::default()
            },
        ];
        let pod = sandbox_pod("abc", &mapped);
        let ports = crate::network::hostport::mappings(&pod);
        assert_eq!(ports.len(), 1, "only mappings with a host port: {ports:?}");
        assert_eq!((ports[0].host_port, ports[0].container_port), (5353, 53));
        assert_eq!(ports[0].protocol, crate::network::hostport::Protocol::Udp);

        let mut tuned = config.clone();
        tuned.linux = Some(cri::LinuxPodSandboxConfig {
            sysctls: HashMap::from([("net.ipv4.ip_unprivileged_port_start".into(), "0".into())]),
            ..Default::default()
        });
        let sysctls = sandbox_pod("abc", &tuned)
            .spec
            .and_then(|s| s.security_context)
            .and_then(|s| s.sysctls)
            .unwrap();
        assert_eq!(sysctls[0].name, "net.ipv4.ip_unprivileged_port_start");

        let mut node = config.clone();
        node.linux = Some(cri::LinuxPodSandboxConfig {
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: cri::NamespaceMode::Node as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        let spec = sandbox_pod("abc", &node).spec.unwrap();
        assert_eq!(spec.host_network, Some(true));
        assert_eq!(spec.hostname, None);
        // An unset pid option is POD (the enum's zero), a shared pid namespace as containerd
        // reads it; the kubelet always sets it (CONTAINER unless shareProcessNamespace).
        assert_eq!(
            (spec.host_pid, spec.share_process_namespace),
            (None, Some(true))
        );

        for (mode, host_pid, shared) in [
            (cri::NamespaceMode::Node, Some(true), None),
            (cri::NamespaceMode::Pod, None, Some(true)),
            (cri::NamespaceMode::Container, None, None),
        ] {
            let mut pid = config.clone();
            pid.linux = Some(cri::LinuxPodSandboxConfig {
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        pid: mode as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            });
            let spec = sandbox_pod("abc", &pid).spec.unwrap();
            assert_eq!(
                (spec.host_pid, spec.share_process_namespace),
                (host_pid, shared),
                "{mode:?}"
            );
        }
    }

    #[test]
    fn a_container_config_becomes_a_container_and_its_mounts_volumes() {
        let config = cri::ContainerConfig {
            command: vec!["sh".into()],
            args: vec!["-c".into(), "echo hi".into()],
            working_dir: "/tmp".into(),
            envs: vec![cri::KeyValue {
                key: "A".into(),
                value: "1".into(),
            }],
            mounts: vec![cri::Mount {
                container_path: "/data".into(),
                host_path: "/srv/data".into(),
                readonly: true,
                ..Default::default()
            }],
            tty: true,
            linux: Some(cri::LinuxContainerConfig {
                resources: Some(cri::LinuxContainerResources {
                    cpu_shares: 512,
                    cpu_quota: 50_000,
                    cpu_period: 100_000,
                    memory_limit_in_bytes: 64 << 20,
                    ..Default::default()
                }),
                security_context: Some(cri::LinuxContainerSecurityContext {
                    run_as_user: Some(cri::Int64Value { value: 1000 }),
                    no_new_privs: true,
                    capabilities: Some(cri::Capability {
                        add_capabilities: vec!["NET_ADMIN".into()],
                        drop_capabilities: vec!["ALL".into()],
                        ..Default::default()
                    }),
                    masked_paths: vec!["/proc/kcore".into()],
                    seccomp: Some(cri::SecurityProfile {
                        profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
                        localhost_ref: String::new(),
                    }),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        };
        let (c, volumes) = container("app", "docker.io/library/busybox:latest", &config).unwrap();
        assert_eq!(c.name, "app");
        assert_eq!(c.image_pull_policy.as_deref(), Some("Never"));
        assert_eq!(c.command.unwrap(), ["sh"]);
        assert_eq!(c.args.unwrap(), ["-c", "echo hi"]);
        assert_eq!(c.working_dir.as_deref(), Some("/tmp"));
        assert_eq!(c.env.unwrap()[0].value.as_deref(), Some("1"));
        assert_eq!(c.tty, Some(true));
        assert_eq!(volumes.len(), 1);
        assert_eq!(volumes[0].name, "cri-app-0");
        assert_eq!(volumes[0].host_path.as_ref().unwrap().path, "/srv/data");
        let vm = &c.volume_mounts.unwrap()[0];
        assert_eq!(
            (vm.mount_path.as_str(), vm.read_only),
            ("/data", Some(true))
        );
        let r = c.resources.unwrap();
        assert_eq!(r.requests.unwrap()["cpu"].0, "500m");
        let limits = r.limits.unwrap();
        assert_eq!(limits["cpu"].0, "500m");
        assert_eq!(limits["memory"].0, (64u64 << 20).to_string());
        let s = c.security_context.unwrap();
        assert_eq!(s.run_as_user, Some(1000));
        assert_eq!(s.allow_privilege_escalation, Some(false));
        assert_eq!(s.capabilities.unwrap().drop.unwrap(), ["ALL"]);
        assert_eq!(s.seccomp_profile.unwrap().type_, "RuntimeDefault");
        assert_eq!(s.proc_mount, None);
        let paths = settings(&config);
        assert_eq!(paths.masked_paths.unwrap(), ["/proc/kcore"]);
        assert_eq!(paths.readonly_paths, None);
        // No profile at all is unconfined in the CRI.
        let (bare, _) = container("b", "busybox", &cri::ContainerConfig::default()).unwrap();
        let profile = bare.security_context.unwrap().seccomp_profile.unwrap();
        assert_eq!(profile.type_, "Unconfined");
    }

    fn with_security(s: cri::LinuxContainerSecurityContext) -> cri::ContainerConfig {
        cri::ContainerConfig {
            linux: Some(cri::LinuxContainerConfig {
                security_context: Some(s),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn seccomp_of(s: cri::LinuxContainerSecurityContext) -> Result<SeccompProfile, String> {
        container("c", "busybox", &with_security(s))
            .map(|(c, _)| c.security_context.unwrap().seccomp_profile.unwrap())
    }

    #[test]
    #[allow(deprecated)]
    fn seccomp_and_apparmor_are_read_as_containerd_reads_them() {
        use cri::security_profile::ProfileType;
        let profile = |t: ProfileType, r: &str| cri::LinuxContainerSecurityContext {
            seccomp: Some(cri::SecurityProfile {
                profile_type: t as i32,
                localhost_ref: r.into(),
            }),
            ..Default::default()
        };
        let local = seccomp_of(profile(
            ProfileType::Localhost,
            "/var/lib/kubelet/seccomp/x.json",
        ))
        .unwrap();
        assert_eq!(local.type_, "Localhost");
        assert_eq!(
            local.localhost_profile.as_deref(),
            Some("/var/lib/kubelet/seccomp/x.json")
        );
        assert_eq!(
            seccomp_of(profile(ProfileType::Unconfined, ""))
                .unwrap()
                .type_,
            "Unconfined"
        );
        let e = seccomp_of(profile(ProfileType::RuntimeDefault, "/x.json")).unwrap_err();
        assert!(e.contains("LocalhostRef must only be set"), "{e}");
        let deprecated = |path: &str| {
            seccomp_of(cri::LinuxContainerSecurityContext {
                seccomp_profile_path: path.into(),
                ..Default::default()
            })
        };
        assert_eq!(
            deprecated("runtime/default").unwrap().type_,
            "RuntimeDefault"
        );
        let old = deprecated("localhost//var/lib/kubelet/seccomp/y.json").unwrap();
        assert_eq!(
            old.localhost_profile.as_deref(),
            Some("/var/lib/kubelet/seccomp/y.json")
        );
        assert!(deprecated("bogus").is_err());

        let armor_of = |s: cri::LinuxContainerSecurityContext| {
            container("c", "busybox", &with_security(s))
                .map(|(c, _)| c.security_context.unwrap().app_armor_profile)
        };
        let armored = |t: ProfileType, r: &str| cri::LinuxContainerSecurityContext {
            apparmor: Some(cri::SecurityProfile {
                profile_type: t as i32,
                localhost_ref: r.into(),
            }),
            ..Default::default()
        };
        let local = armor_of(armored(ProfileType::Localhost, "localhost/p"))
            .unwrap()
            .unwrap();
        assert_eq!(
            (local.type_.as_str(), local.localhost_profile.as_deref()),
            ("Localhost", Some("p"))
        );
        let default = armor_of(armored(ProfileType::RuntimeDefault, "")).unwrap();
        assert_eq!(default.unwrap().type_, "RuntimeDefault");
        let e = armor_of(armored(ProfileType::Unconfined, "p")).unwrap_err();
        assert_eq!(e, "failed to generate apparmor spec opts: apparmor config invalid LocalhostRef must only be set if ProfileType is Localhost");
        let old = |path: &str| {
            armor_of(cri::LinuxContainerSecurityContext {
                apparmor_profile: path.into(),
                ..Default::default()
            })
        };
        assert_eq!(old("").unwrap(), None);
        assert_eq!(old("unconfined").unwrap().unwrap().type_, "Unconfined");
        assert_eq!(
            old("runtime/default").unwrap().unwrap().type_,
            "RuntimeDefault"
        );
        let named = old("localhost/q").unwrap().unwrap();
        assert_eq!(named.localhost_profile.as_deref(), Some("q"));
        assert_eq!(
            old("q").unwrap_err(),
            "failed to generate apparmor spec opts: invalid profile \"q\""
        );
    }

    #[test]
    fn an_empty_dns_config_is_the_nodes_resolv_conf() {
        let config = cri::PodSandboxConfig {
            metadata: Some(meta()),
            dns_config: Some(cri::DnsConfig::default()),
            ..Default::default()
        };
        let spec = sandbox_pod("abc", &config).spec.unwrap();
        assert_eq!(
            (spec.dns_policy.as_deref(), spec.dns_config),
            (Some("Default"), None)
        );
        let pod = sandbox_pod("abc", &config);
        let host = "nameserver 192.0.2.53\nsearch example.org\n";
        let resolv = crate::sandbox::files::resolv_conf(&pod, host, None).unwrap();
        assert!(resolv.contains("nameserver 192.0.2.53"), "{resolv}");
    }

    #[test]
    fn run_as_username_and_run_as_group_as_containerd_reads_them() {
        let named = with_security(cri::LinuxContainerSecurityContext {
            run_as_username: "nobody".into(),
            run_as_user: Some(cri::Int64Value { value: 7 }),
            ..Default::default()
        });
        let (c, _) = container("c", "busybox", &named).unwrap();
        assert_eq!(c.security_context.unwrap().run_as_user, None);
        assert_eq!(settings(&named).run_as_username.as_deref(), Some("nobody"));
        assert_eq!(
            settings(&cri::ContainerConfig::default()).run_as_username,
            None
        );

        let group_only = with_security(cri::LinuxContainerSecurityContext {
            run_as_group: Some(cri::Int64Value { value: 1002 }),
            ..Default::default()
        });
        let e = container("c", "busybox", &group_only).unwrap_err();
        assert!(
            e.contains(r#"user group "1002" is specified without user"#),
            "{e}"
        );
        let named_group = with_security(cri::LinuxContainerSecurityContext {
            run_as_username: "nobody".into(),
            run_as_group: Some(cri::Int64Value { value: 1002 }),
            ..Default::default()
        });
        let (c, _) = container("c", "busybox", &named_group).unwrap();
        assert_eq!(c.security_context.unwrap().run_as_group, Some(1002));
    }

    #[test]
    fn supplemental_groups_and_sysctls_of_the_kubelet() {
        let groups = with_security(cri::LinuxContainerSecurityContext {
            supplemental_groups: vec![3000, 4000],
            ..Default::default()
        });
        assert_eq!(supplemental_groups(&groups), Some(vec![3000, 4000]));
        assert_eq!(supplemental_groups(&cri::ContainerConfig::default()), None);

        let sysctls = |names: &[&str], host_network: bool| cri::PodSandboxConfig {
            linux: Some(cri::LinuxPodSandboxConfig {
                sysctls: names.iter().map(|n| (n.to_string(), "1".into())).collect(),
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        network: if host_network {
                            cri::NamespaceMode::Node as i32
                        } else {
                            cri::NamespaceMode::Pod as i32
                        },
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        // Unsafe for peapod's own admission, allowed by the kubelet: set.
        assert_eq!(
            sysctl_refused(&sysctls(&["net.core.somaxconn", "kernel.msgmax"], false)),
            None
        );
        let e = sysctl_refused(&sysctls(&["net.core.somaxconn", "vm.swappiness"], false)).unwrap();
        assert_eq!(
            e,
            "sysctl \"vm.swappiness\" is not in a separate kernel namespace"
        );
        assert!(sysctl_refused(&sysctls(&["net.core.somaxconn"], true)).is_some());
    }

    #[test]
    fn a_sandbox_asking_for_its_own_user_namespace_is_refused() {
        let with = |userns: Option<cri::UserNamespace>| cri::PodSandboxConfig {
            linux: Some(cri::LinuxPodSandboxConfig {
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        userns_options: userns,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mode = |m: cri::NamespaceMode| cri::UserNamespace {
            mode: m as i32,
            ..Default::default()
        };
        assert!(userns_refused(&with(Some(mode(cri::NamespaceMode::Pod)))).is_some());
        assert_eq!(
            userns_refused(&with(Some(mode(cri::NamespaceMode::Node)))),
            None
        );
        assert_eq!(userns_refused(&with(None)), None);
        assert_eq!(userns_refused(&cri::PodSandboxConfig::default()), None);
    }

    #[test]
    fn label_selectors_match_every_pair() {
        let labels = HashMap::from([("a".to_string(), "1".to_string()), ("b".into(), "2".into())]);
        assert!(labels_match(&labels, &HashMap::new()));
        assert!(labels_match(
            &labels,
            &HashMap::from([("a".into(), "1".into())])
        ));
        assert!(!labels_match(
            &labels,
            &HashMap::from([("a".into(), "2".into())])
        ));
        assert!(!labels_match(
            &labels,
            &HashMap::from([("c".into(), "1".into())])
        ));
    }
}
