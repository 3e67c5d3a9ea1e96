//! Pod sysctls: which the node allows, after the kubelet (pkg/kubelet/sysctl: the safe set of
//! safe_sysctls.go, the namespaces of namespace.go, the admission of allowlist.go).
//!
//! A pod may set the safe sysctls, and the namespaced ones the node allows with
//! `PEAPOD_ALLOWED_UNSAFE_SYSCTLS` (the kubelet's `--allowed-unsafe-sysctls`: a comma list of
//! names or `prefix*` patterns, e.g. `net.core.somaxconn,kernel.msg*`). Anything else rejects
//! the pod with the kubelet's reason `SysctlForbidden`. A non-namespaced sysctl (`vm.*`,
//! `kernel.panic`, ...) can never be allowed: it would change the whole host, so the setting
//! itself is refused, as the kubelet refuses to start with it.

use std::fmt;

/// The node setting: sysctls (or `prefix*` patterns) allowed beyond the safe set.
pub const ENV_ALLOWED_UNSAFE_SYSCTLS: &str = "PEAPOD_ALLOWED_UNSAFE_SYSCTLS";
/// The kubelet's rejection reason [pkg/kubelet/sysctl/allowlist.go].
pub const REASON_SYSCTL_FORBIDDEN: &str = "SysctlForbidden";
/// Where the kernel version is read.
const OSRELEASE: &str = "/proc/sys/kernel/osrelease";
/// The API server's limit on a sysctl name.
pub const MAX_NAME_LENGTH: usize = 253;
/// The API server's sysctl name format [pkg/apis/core/validation SysctlContainSlashFmt].
pub const NAME_FORMAT: &str =
    r"([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?";

/// The kubelet's safe sysctls and the kernel (major, minor) from which each is namespaced.
const SAFE: &[(&str, Option<(u32, u32)>)] = &[
    ("kernel.shm_rmid_forced", None),
    ("net.ipv4.ip_local_port_range", None),
    ("net.ipv4.tcp_syncookies", None),
    ("net.ipv4.ping_group_range", None),
    ("net.ipv4.ip_unprivileged_port_start", None),
    ("net.ipv4.ip_local_reserved_ports", Some((3, 16))),
    ("net.ipv4.tcp_keepalive_time", Some((4, 5))),
    ("net.ipv4.tcp_fin_timeout", Some((4, 6))),
    ("net.ipv4.tcp_keepalive_intvl", Some((4, 5))),
    ("net.ipv4.tcp_keepalive_probes", Some((4, 5))),
    ("net.ipv4.tcp_rmem", None),
    ("net.ipv4.tcp_wmem", None),
];

/// The kernel namespace a sysctl belongs to; a pod's net and ipc namespaces are shared by its
/// containers, so a value set once holds for the whole pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    Ipc,
    Net,
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Namespace::Ipc => "ipc",
            Namespace::Net => "net",
        })
    }
}

/// The namespace of a (dotted) sysctl name, None if it is not known to be namespaced
/// [component-helpers/node/util/sysctl/namespace.go].
pub fn namespaced_by(name: &str) -> Option<Namespace> {
    if name == "kernel.sem" {
        return Some(Namespace::Ipc);
    }
    const PREFIXES: [(&str, Namespace); 4] = [
        ("kernel.shm", Namespace::Ipc),
        ("kernel.msg", Namespace::Ipc),
        ("fs.mqueue.", Namespace::Ipc),
        ("net.", Namespace::Net),
    ];
    PREFIXES
        .iter()
        .find(|(p, _)| name.starts_with(p))
        .map(|(_, ns)| *ns)
}

/// The dotted form of a name written with slashes (`net/ipv4/conf/eth0.100/rp_filter` ->
/// `net.ipv4.conf.eth0/100.rp_filter`): '.' and '/' swap when the first separator is a '/'.
pub fn normalize(name: &str) -> String {
    match name.find(['.', '/']) {
        Some(i) if name.as_bytes()[i] == b'/' => name
            .chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect(),
        _ => name.to_string(),
    }
}

fn is_segment(s: &str) -> bool {
    let ok_end = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty()
        && s.starts_with(ok_end)
        && s.ends_with(ok_end)
        && s.chars().all(|c| ok_end(c) || c == '-' || c == '_')
}

/// Whether `name` matches [`NAME_FORMAT`] within [`MAX_NAME_LENGTH`]; with `pattern`, the last
/// segment may be `*` (the kubelet's allowlist patterns).
pub fn is_valid_name(name: &str, pattern: bool) -> bool {
    if name.len() > MAX_NAME_LENGTH {
        return false;
    }
    let segments: Vec<&str> = name.split(['.', '/']).collect();
    let (last, rest) = match segments.split_last() {
        Some(split) => split,
        None => return false,
    };
    rest.iter().all(|s| is_segment(s)) && (is_segment(last) || (pattern && is_star_segment(last)))
}

/// The last segment of an allowlist pattern: `*`, or a segment's start ending in `*`
/// [pkg/apis/policy/validation SysctlPatternSegmentFmt].
fn is_star_segment(s: &str) -> bool {
    let Some(head) = s.strip_suffix('*') else {
        return false;
    };
    head.is_empty()
        || (head.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && head
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'))
}

/// A node setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    #[error("{ENV_ALLOWED_UNSAFE_SYSCTLS}: sysctl {pattern:?} must have at most {MAX_NAME_LENGTH} characters and match regex {NAME_FORMAT} (optionally ending in *)")]
    InvalidPattern { pattern: String },
    /// The kubelet's words when `--allowed-unsafe-sysctls` names a host-wide sysctl.
    #[error("{ENV_ALLOWED_UNSAFE_SYSCTLS}: the sysctl {pattern:?} are not known to be namespaced")]
    NotNamespaced { pattern: String },
}

/// The sysctls a pod may set on this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    names: Vec<(String, Namespace)>,
    prefixes: Vec<(String, Namespace)>,
}

/// The running kernel's (major, minor), if it can be read.
pub fn kernel_version() -> Option<(u32, u32)> {
    parse_kernel_version(&std::fs::read_to_string(OSRELEASE).ok()?)
}

fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

impl Allowlist {
    /// The safe set for `kernel` (sysctls not namespaced on an older kernel are left out, as
    /// the kubelet leaves them out) plus the node's `unsafe_patterns`.
    pub fn new(kernel: Option<(u32, u32)>, unsafe_patterns: &[&str]) -> Result<Self, SysctlError> {
        let mut list = Allowlist::default();
        for (name, since) in SAFE {
            if since.is_none_or(|v| kernel.is_some_and(|k| k >= v)) {
                if let Some(ns) = namespaced_by(name) {
                    list.names.push((name.to_string(), ns));
                }
            }
        }
        for pattern in unsafe_patterns
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
        {
            if !is_valid_name(pattern, true) {
                return Err(SysctlError::InvalidPattern {
                    pattern: pattern.to_string(),
                });
            }
            let dotted = normalize(pattern);
            let (target, is_prefix) = match dotted.strip_suffix('*') {
                Some(prefix) => (prefix.to_string(), true),
                None => (dotted.clone(), false),
            };
            let Some(ns) = namespaced_by(&target) else {
                return Err(SysctlError::NotNamespaced { pattern: dotted });
            };
            if is_prefix {
                list.prefixes.push((target, ns));
            } else {
                list.names.push((target, ns));
            }
        }
        Ok(list)
    }

    /// The node's list: the safe set for the running kernel and `PEAPOD_ALLOWED_UNSAFE_SYSCTLS`.
    pub fn from_env() -> Result<Self, SysctlError> {
        let setting = std::env::var(ENV_ALLOWED_UNSAFE_SYSCTLS).unwrap_or_default();
        let patterns: Vec<&str> = setting.split(',').collect();
        Allowlist::new(kernel_version(), &patterns)
    }

    /// Whether the pod may set `name`; the error is the kubelet's text.
    pub fn check(&self, name: &str) -> Result<(), String> {
        let name = normalize(name);
        let allowed = self.names.iter().any(|(n, _)| *n == name)
            || self
                .prefixes
                .iter()
                .any(|(p, _)| name.starts_with(p.as_str()));
        if allowed {
            Ok(())
        } else {
            Err(format!("{name:?} not allowlisted"))
        }
    }

    /// Every namespaced sysctl: a pod the kubelet drives through the CRI was admitted by the
    /// kubelet's own allowlist (its safe set and `--allowed-unsafe-sysctls`), so the runtime
    /// refuses only what cannot be set in the pod's namespaces, as containerd leaves that to runc.
    pub fn every_namespaced() -> Self {
        let all = |names: &[&str]| {
            names
                .iter()
                .filter_map(|n| namespaced_by(n).map(|ns| (n.to_string(), ns)))
                .collect()
        };
        Allowlist {
            names: all(&["kernel.sem"]),
            prefixes: all(&["kernel.shm", "kernel.msg", "fs.mqueue.", "net."]),
        }
    }
}

/// Why a sysctl cannot be set in a pod that shares the host's network (`host_network`) or IPC
/// (`host_ipc`) namespace, or that no pod namespace holds; runc's words
/// (libcontainer/configs/validate `sysctl`), which containerd passes on.
pub fn not_in_pod_namespace(name: &str, host_network: bool, host_ipc: bool) -> Option<String> {
    let name = normalize(name);
    match namespaced_by(&name) {
        None => Some(format!(
            "sysctl {name:?} is not in a separate kernel namespace"
        )),
        Some(Namespace::Net) if host_network => Some(format!(
            "sysctl {name:?} not allowed in host network namespace"
        )),
        Some(Namespace::Ipc) if host_ipc => Some(format!(
            "sysctl {name:?} is not allowed in the hosts ipc namespace"
        )),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_set_depends_on_the_kernel() {
        let new = Allowlist::new(Some((6, 1)), &[]).unwrap();
        for name in ["net.ipv4.ip_local_port_range", "kernel.shm_rmid_forced"] {
            assert!(new.check(name).is_ok(), "{name}");
        }
        assert!(new.check("net.ipv4.tcp_fin_timeout").is_ok());
        let old = Allowlist::new(Some((4, 4)), &[]).unwrap();
        assert!(old.check("net.ipv4.tcp_keepalive_time").is_err());
        assert!(old.check("net.ipv4.tcp_syncookies").is_ok());
    }

    #[test]
    fn a_cri_pod_may_set_any_namespaced_sysctl_only() {
        let list = Allowlist::every_namespaced();
        for name in [
            "net.core.somaxconn",
            "kernel.msgmax",
            "kernel.sem",
            "fs.mqueue.msg_max",
        ] {
            assert!(list.check(name).is_ok(), "{name}");
        }
        assert!(list.check("vm.swappiness").is_err());
        assert!(list.check("kernel.semx").is_err());
        assert_eq!(
            not_in_pod_namespace("vm/swappiness", false, false).unwrap(),
            "sysctl \"vm.swappiness\" is not in a separate kernel namespace"
        );
        assert_eq!(
            not_in_pod_namespace("net.core.somaxconn", false, true),
            None
        );
        assert!(not_in_pod_namespace("net.core.somaxconn", true, false)
            .unwrap()
            .contains("host network namespace"));
        assert!(not_in_pod_namespace("kernel.shmmax", false, true).is_some());
    }

    #[test]
    fn unsafe_ones_are_refused_with_the_kubelets_words() {
        let list = Allowlist::new(Some((6, 1)), &[]).unwrap();
        assert_eq!(
            list.check("net.core.somaxconn").unwrap_err(),
            "\"net.core.somaxconn\" not allowlisted"
        );
        assert!(list.check("kernel.msgmax").is_err());
        assert!(list.check("vm.swappiness").is_err());
    }

    #[test]
    fn node_setting_allows_namespaced_names_and_patterns_only() {
        let list =
            Allowlist::new(Some((6, 1)), &["net.core.somaxconn", " kernel.msg*", ""]).unwrap();
        assert!(list.check("net.core.somaxconn").is_ok());
        assert!(list.check("kernel.msgmax").is_ok());
        assert!(list.check("kernel.sem").is_err());
        let err = Allowlist::new(None, &["vm.swappiness"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "PEAPOD_ALLOWED_UNSAFE_SYSCTLS: the sysctl \"vm.swappiness\" are not known to be namespaced"
        );
        assert!(matches!(
            Allowlist::new(None, &["Net.core"]),
            Err(SysctlError::InvalidPattern { .. })
        ));
    }

    #[test]
    fn namespaces_and_names() {
        assert_eq!(namespaced_by("net.core.somaxconn"), Some(Namespace::Net));
        assert_eq!(namespaced_by("kernel.shmmax"), Some(Namespace::Ipc));
        assert_eq!(namespaced_by("fs.mqueue.msg_max"), Some(Namespace::Ipc));
        assert_eq!(namespaced_by("kernel.sem"), Some(Namespace::Ipc));
        assert_eq!(namespaced_by("kernel.panic"), None);
        assert_eq!(
            normalize("net/ipv4/conf/eth0.100/rp_filter"),
            "net.ipv4.conf.eth0/100.rp_filter"
        );
        assert_eq!(normalize("net.ipv4.ip_forward"), "net.ipv4.ip_forward");
        assert!(is_valid_name("net.ipv4.conf.eth0/100.rp_filter", false));
        assert!(!is_valid_name("net..x", false));
        assert!(!is_valid_name("Net.x", false));
        assert!(!is_valid_name("net.*", false));
        assert!(is_valid_name("net.*", true));
        assert!(is_valid_name("kernel.msg*", true));
        assert!(!is_valid_name("kernel.m*g", true));
        assert!(!is_valid_name(&"a".repeat(254), false));
        assert_eq!(parse_kernel_version("6.1.0-13-cloud-amd64\n"), Some((6, 1)));
    }
}
