//! PodSpec container + image config -> OCI runtime [`Spec`]: the one place where Kubernetes
//! semantics (command/args, env, securityContext, volumes, resources, QoS) become a runtime
//! config. The executor knows only the Spec this module returns.
//!
//! Matches the kubelet and containerd's CRI plugin (internal/cri/server/container_create_linux.go,
//! internal/cri/opts/spec_linux.go). Pure: reads only /etc/passwd and /etc/group in image layers.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, Pod, SecurityContext};
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDevice,
    LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder, ProcessBuilder, RootBuilder, Spec,
    SpecBuilder, UserBuilder,
};

use super::devices::{device_cgroup_rules, linux_devices};
use super::env::{container_env, process_args, process_env, EnvContext, EnvError, NodeAllocatable};
use super::mounts::mounts;
pub use super::mounts::{
    PROPAGATION_BIDIRECTIONAL, PROPAGATION_HOST_TO_CONTAINER, PROPAGATION_NONE, RRO_DISABLED,
    RRO_ENABLED, RRO_IF_POSSIBLE,
};
use super::seccomp::{self, SeccompError};
use super::user::resolve_user;
pub use super::user::{SUPPLEMENTAL_GROUPS_POLICY_MERGE, SUPPLEMENTAL_GROUPS_POLICY_STRICT};
use crate::manifest::resources::{QosClass, Resources};
use crate::object::Snapshot;
use crate::volume::HostVolume;

/// Overlay lower dirs, joined by ':' with the TOP layer first (overlayfs order).
pub const ANNOTATION_ROOTFS_LOWERDIRS: &str = "io.peapod.rootfs.lowerdirs";
/// Overlay upper dir (the container's writable layer).
pub const ANNOTATION_ROOTFS_UPPERDIR: &str = "io.peapod.rootfs.upperdir";
/// Overlay work dir (same filesystem as the upper dir).
pub const ANNOTATION_ROOTFS_WORKDIR: &str = "io.peapod.rootfs.workdir";
pub const ANNOTATION_POD_NAME: &str = "io.kubernetes.pod.name";
pub const ANNOTATION_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const ANNOTATION_POD_UID: &str = "io.kubernetes.pod.uid";
pub const ANNOTATION_CONTAINER_NAME: &str = "io.kubernetes.container.name";

/// pids.max for every container. Not a Kubernetes field (the kubelet's podPidsLimit defaults to
/// unlimited); a fork bomb in one pod must not take the host down, and 4096 is far above what a
/// pod's processes normally use.
pub const DEFAULT_PIDS_LIMIT: i64 = 4096;
pub use crate::cgroup::CPU_PERIOD_US;
/// Smallest quota the kernel accepts (1ms).
pub const MIN_CPU_QUOTA_US: i64 = 1_000;
pub const MIN_CPU_SHARES: u64 = 2;
pub use crate::manifest::defaults::DEFAULT_TERMINATION_MESSAGE_PATH;
pub const OCI_VERSION: &str = "1.2.0";

/// containerd's default capability set (pkg/oci/spec.go `defaultUnixCaps`).
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];
/// Every capability oci-spec knows, for privileged containers.
const ALL_CAPABILITIES: [&str; 41] = [
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETGID",
    "SETFCAP",
    "SETPCAP",
    "SETUID",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "SYSLOG",
    "WAKE_ALARM",
];
/// containerd's default masked paths (pkg/oci/spec.go).
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
/// containerd's default read-only paths.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Errors turning a PodSpec container into a runtime Spec. Each names the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{field}: no command specified (the image has no ENTRYPOINT or CMD either)")]
    NoCommand { field: String },
    #[error("{field}: {what} is not supported by peapod")]
    Unsupported { field: String, what: String },
    #[error("{field}: {reason}")]
    InvalidValue { field: String, reason: String },
    /// A refusal the kubelet words itself (subPath, recursiveReadOnly): its text, as it is.
    #[error("{0}")]
    Kubelet(String),
    #[error("image user {user:?}: {reason}")]
    ImageUser { user: String, reason: String },
    /// The kubelet's runAsNonRoot refusals (a `CreateContainerConfigError`), worded as upstream
    /// [pkg/kubelet/kuberuntime/security_context_others.go].
    #[error("{reason} (pod: {pod:?}, container: {container})")]
    RunAsNonRoot {
        reason: String,
        pod: String,
        container: String,
    },
    /// An env source that cannot be resolved (`configmap "x" not found`): the kubelet's
    /// CreateContainerConfigError message, as is.
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error("container {container:?} is not in the pod's spec.containers or spec.initContainers")]
    UnknownContainer { container: String },
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("building the oci runtime spec: {0}")]
    Oci(#[from] oci_spec::OciSpecError),
    /// A Localhost seccomp profile that cannot be read: the runtime's error, which the kubelet
    /// shows as a `CreateContainerError` (not a config error).
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    /// An AppArmor profile that cannot be applied: containerd's error, a
    /// `CreateContainerError` for the kubelet.
    #[error("failed to generate apparmor spec opts: {0}")]
    AppArmor(#[from] super::apparmor::AppArmorError),
}

/// The container's overlay rootfs, prepared by the image store and the supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RootfsLayout {
    /// Unpacked layer dirs, BOTTOM layer first (image manifest order).
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub merged: PathBuf,
}

/// Everything [`build_spec`] needs; the pod has its defaults applied.
#[derive(Debug, Clone)]
pub struct SpecInput<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub image_config: &'a ImageConfiguration,
    pub rootfs: RootfsLayout,
    /// The sandbox (pause) process; its net/uts/ipc namespaces are joined.
    pub sandbox_pid: i32,
    pub pod_ip: Option<Ipv4Addr>,
    /// The node's address as pods see it (`status.hostIP`).
    pub host_ip: Option<Ipv4Addr>,
    pub hosts_path: PathBuf,
    pub resolv_path: PathBuf,
    pub hostname_path: PathBuf,
    /// The pod-wide /dev/shm directory (a tmpfs the supervisor mounts).
    pub shm_path: PathBuf,
    /// Host file bind-mounted at terminationMessagePath.
    pub termination_log_path: PathBuf,
    /// Volume name -> host dir prepared by the supervisor (`volume::setup`).
    pub volume_dirs: BTreeMap<String, HostVolume>,
    /// volumeMounts index -> the host path of its subPath, bind-mounted by the supervisor
    /// (`volume::subpath`) from what [`volume_sub_paths`] returned.
    pub sub_path_sources: BTreeMap<usize, PathBuf>,
    /// The ConfigMaps and Secrets the container's env refers to, read by the supervisor.
    pub objects: &'a Snapshot,
    /// Absolute cgroupfs dir for this container; None = no cgroup (host without cgroup v2).
    pub cgroup_path: Option<PathBuf>,
    /// The host's device nodes (`container::devices::host_devices`), given to a privileged
    /// container; the supervisor reads them only for those ([`is_privileged`]).
    pub host_devices: Vec<LinuxDevice>,
    /// The node's seccomp profile directory, for `Localhost` profiles (`Paths::seccomp_profiles`).
    pub seccomp_root: PathBuf,
    /// The container's AppArmor profile (`apparmor::spec_profile`, which reads the host);
    /// None: unconfined.
    pub apparmor_profile: Option<String>,
    pub resources: Resources,
    pub qos: QosClass,
    pub node_name: String,
    pub node_memory_bytes: u64,
}

/// The kubelet's oom_score_adj for a container [pkg/kubelet/qos/policy.go].
pub fn oom_score_adj(qos: QosClass, memory_request_bytes: u64, node_memory_bytes: u64) -> i32 {
    match qos {
        QosClass::Guaranteed => -997,
        QosClass::BestEffort => 1000,
        QosClass::Burstable => {
            if node_memory_bytes == 0 {
                return 999;
            }
            let req = u128::from(memory_request_bytes);
            let cap = u128::from(node_memory_bytes);
            let adj = 1000i128 - (1000 * req / cap).min(2000) as i128;
            adj.clamp(3, 999) as i32
        }
    }
}

/// The container's field path in the pod (`spec.containers[1]`, `spec.initContainers[0]`).
pub(crate) fn container_field(pod: &Pod, container: &Container) -> Result<String, SpecError> {
    let spec = pod.spec.as_ref();
    if let Some(i) = spec.and_then(|s| s.containers.iter().position(|c| c.name == container.name)) {
        return Ok(format!("spec.containers[{i}]"));
    }
    if let Some(i) = spec
        .and_then(|s| s.init_containers.as_ref())
        .and_then(|v| v.iter().position(|c| c.name == container.name))
    {
        return Ok(format!("spec.initContainers[{i}]"));
    }
    Err(SpecError::UnknownContainer {
        container: container.name.clone(),
    })
}

/// Parses a Kubernetes capability name (`NET_ADMIN`, `CAP_NET_ADMIN`, any case).
fn parse_capability(name: &str, field: &str) -> Result<Capability, SpecError> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    bare.parse().map_err(|_| SpecError::InvalidValue {
        field: field.to_string(),
        reason: format!("unknown capability {name:?}"),
    })
}

fn capability_set(names: &[&str]) -> Capabilities {
    names.iter().filter_map(|n| n.parse().ok()).collect()
}

/// The bounding set of a container that adds and drops nothing: [`DEFAULT_CAPABILITIES`].
pub(crate) fn default_capabilities() -> Capabilities {
    capability_set(&DEFAULT_CAPABILITIES)
}

/// containerd's defaults, then drop (`ALL` clears), then add (`ALL` = every capability);
/// privileged containers get every capability and ignore add/drop.
fn capabilities(
    sc: Option<&SecurityContext>,
    privileged: bool,
    field: &str,
) -> Result<Capabilities, SpecError> {
    if privileged {
        return Ok(capability_set(&ALL_CAPABILITIES));
    }
    let mut caps = capability_set(&DEFAULT_CAPABILITIES);
    let requested = sc.and_then(|s| s.capabilities.as_ref());
    let field = format!("{field}.securityContext.capabilities");
    let drop = requested.and_then(|c| c.drop.clone()).unwrap_or_default();
    for (j, name) in drop.iter().enumerate() {
        if name.eq_ignore_ascii_case("ALL") {
            caps.clear();
        } else {
            caps.remove(&parse_capability(name, &format!("{field}.drop[{j}]"))?);
        }
    }
    let add = requested.and_then(|c| c.add.clone()).unwrap_or_default();
    for (j, name) in add.iter().enumerate() {
        if name.eq_ignore_ascii_case("ALL") {
            caps.extend(capability_set(&ALL_CAPABILITIES));
        } else {
            caps.insert(parse_capability(name, &format!("{field}.add[{j}]"))?);
        }
    }
    Ok(caps)
}

/// cgroup resources from parsed requests/limits [pkg/kubelet/cm/helpers_linux.go].
pub fn linux_resources(res: &Resources) -> Result<LinuxResources, SpecError> {
    let mut cpu = LinuxCpuBuilder::default();
    let shares = res
        .cpu_request_millis
        .map(|m| (m.saturating_mul(1024) / 1000).max(MIN_CPU_SHARES))
        .unwrap_or(MIN_CPU_SHARES);
    cpu = cpu.shares(shares);
    if let Some(limit) = res.cpu_limit_millis {
        let quota = i64::try_from(limit.saturating_mul(100))
            .unwrap_or(i64::MAX)
            .max(MIN_CPU_QUOTA_US);
        cpu = cpu.quota(quota).period(CPU_PERIOD_US);
    }
    let mut builder = LinuxResourcesBuilder::default().cpu(cpu.build()?).pids(
        LinuxPidsBuilder::default()
            .limit(DEFAULT_PIDS_LIMIT)
            .build()?,
    );
    if let Some(mem) = res.memory_limit_bytes {
        let limit = i64::try_from(mem).unwrap_or(i64::MAX);
        builder = builder.memory(LinuxMemoryBuilder::default().limit(limit).build()?);
    }
    Ok(builder.build()?)
}

/// The cgroup resources a CRI UpdateContainerResources asks for (shares, CFS quota and
/// period, memory limit; a zero is "not given"), for the running container's cgroup.
pub fn update_resources(
    cpu_shares: u64,
    cpu_quota: i64,
    cpu_period: u64,
    memory_limit: i64,
) -> Result<LinuxResources, SpecError> {
    let mut cpu = LinuxCpuBuilder::default();
    if cpu_shares > 0 {
        cpu = cpu.shares(cpu_shares.max(MIN_CPU_SHARES));
    }
    if cpu_quota > 0 {
        cpu = cpu.quota(cpu_quota.max(MIN_CPU_QUOTA_US));
    }
    cpu = cpu.period(if cpu_period > 0 {
        cpu_period
    } else {
        CPU_PERIOD_US
    });
    let mut builder = LinuxResourcesBuilder::default().cpu(cpu.build()?);
    if memory_limit > 0 {
        builder = builder.memory(LinuxMemoryBuilder::default().limit(memory_limit).build()?);
    }
    Ok(builder.build()?)
}

fn namespace(typ: LinuxNamespaceType, path: Option<PathBuf>) -> Result<LinuxNamespace, SpecError> {
    let b = LinuxNamespaceBuilder::default().typ(typ);
    Ok(match path {
        Some(p) => b.path(p).build()?,
        None => b.build()?,
    })
}

/// spec.hostname, else the pod name, cut to 63 characters without a trailing '-' or '.'
/// [pkg/kubelet/kubelet_pods.go GeneratePodHostNameAndDomain].
fn pod_hostname(pod: &Pod) -> String {
    let full = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    if full.len() <= 63 {
        return full;
    }
    let cut: String = full.chars().take(63).collect();
    cut.trim_end_matches(['-', '.']).to_string()
}

/// `securityContext.privileged: true`: every capability and host device, no masked paths.
pub fn is_privileged(container: &Container) -> bool {
    container
        .security_context
        .as_ref()
        .and_then(|s| s.privileged)
        .unwrap_or(false)
}

/// What the downward API and `$(VAR)` expansion see of the pod and the node.
pub(crate) fn env_context<'a>(input: &'a SpecInput, field: &'a str) -> EnvContext<'a> {
    EnvContext {
        pod: input.pod,
        container: input.container,
        field,
        resources: input.resources,
        pod_ip: input.pod_ip,
        host_ip: input.host_ip,
        node_name: &input.node_name,
        node: NodeAllocatable {
            cpu_millis: None,
            memory_bytes: input.node_memory_bytes,
        },
        objects: input.objects,
    }
}

/// Each volumeMount's subPath (subPathExpr expanded from the container's env, then checked as
/// the kubelet checks it), None where the whole volume is mounted. The supervisor makes and
/// mounts them and passes their host paths back in [`SpecInput::sub_path_sources`].
pub fn volume_sub_paths(input: &SpecInput) -> Result<Vec<Option<String>>, SpecError> {
    super::mounts::sub_paths(input)
}

/// The pod's `securityContext.sysctls`, names in their dotted form. They were admitted
/// (`container::sysctl::admit`); every container's init writes them, in the pod's shared net and
/// ipc namespaces, so the values are the same whichever container starts first.
fn pod_sysctls(pod: &Pod) -> HashMap<String, String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.sysctls.as_ref())
        .into_iter()
        .flatten()
        .map(|s| (super::sysctl::normalize(&s.name), s.value.clone()))
        .collect()
}

/// Turns one container of the pod into its OCI runtime Spec.
pub fn build_spec(input: &SpecInput) -> Result<Spec, SpecError> {
    let pod = input.pod;
    let container = input.container;
    let field = container_field(pod, container)?;
    let image = input.image_config.config().as_ref();
    let sc = container.security_context.as_ref();
    let privileged = is_privileged(container);
    let ro_rootfs = sc
        .and_then(|s| s.read_only_root_filesystem)
        .unwrap_or(false);
    let hostname = pod_hostname(pod);

    let ctx = env_context(input, &field);
    let vars = container_env(&ctx)?;
    let args = process_args(container, image, &vars, &field)?;
    let env = process_env(image, &hostname, &vars, container.tty == Some(true));

    let cwd = container
        .working_dir
        .clone()
        .filter(|d| !d.is_empty())
        .or_else(|| {
            image
                .and_then(|c| c.working_dir().clone())
                .filter(|d| !d.is_empty())
        })
        .unwrap_or_else(|| "/".to_string());

    // A CRI container's settings beyond the Pod (none for other pods).
    let cri =
        crate::pod::control::CriContainerSettings::of(pod, &container.name).unwrap_or_default();
    // The CRI's run_as_username takes the place of the image's user, as containerd passes it
    // to the same lookup (`oci.WithUser`); a runAsGroup still replaces its group.
    let user = resolve_user(
        pod,
        container,
        cri.run_as_username
            .as_deref()
            .or_else(|| image.and_then(|c| c.user().as_deref())),
        &input.rootfs.lower,
        &field,
    )?;
    let mut user_builder = UserBuilder::default().uid(user.uid).gid(user.gid);
    if !user.additional_gids.is_empty() {
        user_builder = user_builder.additional_gids(user.additional_gids.clone());
    }

    let caps = capabilities(sc, privileged, &field)?;
    let seccomp_choice = seccomp::choose(pod, container, privileged);
    let seccomp_profile = seccomp::spec_profile(&seccomp_choice, &caps, &input.seccomp_root)?;
    let linux_caps = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(Capabilities::new())
        .ambient(Capabilities::new())
        .build()?;
    // The kubelet sets no_new_privs only when allowPrivilegeEscalation is explicitly false.
    let no_new_privileges = sc.and_then(|s| s.allow_privilege_escalation) == Some(false);

    let mut process = ProcessBuilder::default()
        .terminal(container.tty.unwrap_or(false))
        .user(user_builder.build()?)
        .args(args)
        .env(env)
        .cwd(cwd)
        .capabilities(linux_caps)
        // No rlimits: the process inherits the supervisor's, as under containerd 2.x (oci-spec's
        // builder default would pin RLIMIT_NOFILE to 1024).
        .rlimits(Vec::new())
        .no_new_privileges(no_new_privileges)
        .oom_score_adj(oom_score_adj(
            input.qos,
            input.resources.memory_request_bytes.unwrap_or(0),
            input.node_memory_bytes,
        ))
        .build()?;
    process.set_apparmor_profile(input.apparmor_profile.clone());

    let ns_path = |name: &str| {
        Some(PathBuf::from(format!(
            "/proc/{}/ns/{name}",
            input.sandbox_pid
        )))
    };
    // The host's namespaces (hostPID, hostNetwork with its UTS, hostIPC) are left out of the
    // Spec, as containerd leaves them out: the container stays in the caller's, the host's.
    // With shareProcessNamespace every container joins the pid namespace the pause process
    // holds (it is its pid 1), as the kubelet asks of the runtime (NamespaceMode_POD).
    let host = crate::sandbox::HostNamespaces::of(pod);
    let mut namespaces = Vec::new();
    if !host.pid {
        let pid_ns = if crate::sandbox::shares_process_namespace(pod) {
            ns_path("pid")
        } else {
            None
        };
        namespaces.push(namespace(LinuxNamespaceType::Pid, pid_ns)?);
    }
    namespaces.push(namespace(LinuxNamespaceType::Mount, None)?);
    namespaces.push(namespace(LinuxNamespaceType::Cgroup, None)?);
    for (shared, typ, name) in [
        (host.network, LinuxNamespaceType::Network, "net"),
        (host.uts(), LinuxNamespaceType::Uts, "uts"),
        (host.ipc, LinuxNamespaceType::Ipc, "ipc"),
    ] {
        if !shared {
            namespaces.push(namespace(typ, ns_path(name))?);
        }
    }
    // A CRI container: the kubelet's lists replace the defaults when it gave some (an empty
    // list, which the CRI cannot tell from none, keeps them, as under containerd).
    let given = |l: Option<Vec<String>>, default: &[&str]| {
        l.filter(|l| !l.is_empty())
            .unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect())
    };
    let (masked, readonly): (Vec<String>, Vec<String>) = if privileged {
        (Vec::new(), Vec::new())
    } else {
        (
            given(cri.masked_paths, &MASKED_PATHS),
            given(cri.readonly_paths, &READONLY_PATHS),
        )
    };
    let mut rules = device_cgroup_rules(privileged)?;
    let mut devices = linux_devices(privileged, &input.host_devices)?;
    for d in cri.devices {
        rules.push(super::devices::device_rule(&d.device, &d.permissions)?);
        devices.retain(|o| o.path() != d.device.path());
        devices.push(d.device);
    }
    let mut resources = linux_resources(&input.resources)?;
    resources.set_devices(Some(rules));
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .masked_paths(masked)
        .readonly_paths(readonly)
        .devices(devices)
        .resources(resources);
    if let Some(path) = &input.cgroup_path {
        linux = linux.cgroups_path(path.clone());
    }
    if let Some(propagation) = super::mounts::root_propagation(input) {
        linux = linux.rootfs_propagation(propagation);
    }
    if let Some(profile) = seccomp_profile {
        linux = linux.seccomp(profile);
    }
    let sysctls = pod_sysctls(pod);
    if !sysctls.is_empty() {
        linux = linux.sysctl(sysctls);
    }

    let meta = &pod.metadata;
    let lower: Vec<String> = input
        .rootfs
        .lower
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    let annotations: HashMap<String, String> = [
        (ANNOTATION_ROOTFS_LOWERDIRS, lower.join(":")),
        (
            ANNOTATION_ROOTFS_UPPERDIR,
            input.rootfs.upper.display().to_string(),
        ),
        (
            ANNOTATION_ROOTFS_WORKDIR,
            input.rootfs.work.display().to_string(),
        ),
        (ANNOTATION_POD_NAME, meta.name.clone().unwrap_or_default()),
        (
            ANNOTATION_POD_NAMESPACE,
            meta.namespace.clone().unwrap_or_else(|| "default".into()),
        ),
        (ANNOTATION_POD_UID, meta.uid.clone().unwrap_or_default()),
        (ANNOTATION_CONTAINER_NAME, container.name.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();

    tracing::debug!(container = %container.name, %field, "built oci runtime spec");
    let mut spec = SpecBuilder::default()
        .version(OCI_VERSION)
        .root(
            RootBuilder::default()
                .path(&input.rootfs.merged)
                .readonly(ro_rootfs)
                .build()?,
        )
        .mounts(mounts(input, &field, privileged, ro_rootfs)?)
        .process(process)
        .annotations(annotations)
        .linux(linux.build()?)
        .build()?;
    // The builder starts from oci-spec's example defaults (hostname "youki"); the uts namespace
    // is the sandbox's, which already carries the pod hostname.
    spec.set_hostname(None);
    Ok(spec)
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
