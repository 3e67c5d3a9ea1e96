//! The contents of the files the kubelet writes for every pod: /etc/hostname, /etc/hosts and
//! /etc/resolv.conf, as pure functions of the Pod (and the node's resolv.conf).
//!
//! Formats follow pkg/kubelet/kubelet_pods.go (hosts) and pkg/kubelet/network/dns (resolv.conf);
//! the resolv.conf line order (search, nameserver, options) is what containerd writes. Writing
//! the files and mounting them is the sandbox's job, not this module's.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use k8s_openapi::api::core::v1::{Pod, PodDNSConfig};

pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
pub const HOSTS_HEADER: &str = "# Kubernetes-managed hosts file.\n";
/// The header of a host-network pod's hosts file [kubelet_pods.go].
pub const HOSTS_HEADER_HOST_NETWORK: &str = "# Kubernetes-managed hosts file (host network).\n";
pub const HOST_ALIASES_HEADER: &str = "# Entries added by HostAliases.\n";
/// glibc's limits, enforced by the kubelet (pkg/apis/core/validation).
pub const MAX_NAMESERVERS: usize = 3;
pub const MAX_SEARCH_DOMAINS: usize = 32;
pub const MAX_SEARCH_LINE_CHARS: usize = 2048;
pub const MAX_HOSTNAME_LEN: usize = 63;
pub const DEFAULT_NDOTS: &str = "ndots:5";

pub const DNS_CLUSTER_FIRST: &str = "ClusterFirst";
pub const DNS_CLUSTER_FIRST_WITH_HOST_NET: &str = "ClusterFirstWithHostNet";
pub const DNS_DEFAULT: &str = "Default";
pub const DNS_NONE: &str = "None";

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("pod {pod}: spec.dnsPolicy {policy:?} is not one of ClusterFirst, ClusterFirstWithHostNet, Default, None")]
    DnsPolicy { pod: String, policy: String },
    #[error("pod {pod}: spec.dnsConfig.nameservers must name at least one server when dnsPolicy is None")]
    NoNameserver { pod: String },
}

/// The cluster DNS service the pods of ClusterFirst policy use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDns {
    pub nameserver: IpAddr,
    pub domain: String,
}

fn namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

/// spec.hostname, else the pod name; cut to 63 characters with trailing `-` and `.` trimmed,
/// as the kubelet's truncatePodHostnameIfNeeded does.
pub fn pod_hostname(pod: &Pod) -> String {
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.as_deref())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| pod_name(pod));
    if name.len() <= MAX_HOSTNAME_LEN {
        return name.to_string();
    }
    let mut cut = MAX_HOSTNAME_LEN;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    name[..cut].trim_end_matches(['-', '.']).to_string()
}

/// The pod's /etc/hosts, byte for byte as the kubelet writes it.
pub fn hosts_file(pod: &Pod, pod_ip: Option<Ipv4Addr>, cluster_domain: &str) -> String {
    let hostname = pod_hostname(pod);
    let spec = pod.spec.as_ref();
    let mut out = String::from(HOSTS_HEADER);
    out.push_str("127.0.0.1\tlocalhost\n");
    out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    out.push_str("fe00::0\tip6-localnet\n");
    out.push_str("fe00::0\tip6-mcastprefix\n");
    out.push_str("fe00::1\tip6-allnodes\n");
    out.push_str("fe00::2\tip6-allrouters\n");
    if let Some(ip) = pod_ip {
        match spec
            .and_then(|s| s.subdomain.as_deref())
            .filter(|s| !s.is_empty())
        {
            Some(sub) => {
                let ns = namespace(pod);
                let _ = writeln!(
                    out,
                    "{ip}\t{hostname}.{sub}.{ns}.svc.{cluster_domain}\t{hostname}"
                );
            }
            None => {
                let _ = writeln!(out, "{ip}\t{hostname}");
            }
        }
    }
    out.push_str(&host_aliases_block(pod));
    out
}

/// The hostAliases entries after a blank line and their header, or nothing without aliases
/// [kubelet_pods.go hostsEntriesFromHostAliases].
fn host_aliases_block(pod: &Pod) -> String {
    let aliases = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_aliases.as_deref())
        .unwrap_or_default();
    let mut out = String::new();
    if !aliases.is_empty() {
        out.push('\n');
        out.push_str(HOST_ALIASES_HEADER);
        for alias in aliases {
            let names = alias.hostnames.as_deref().unwrap_or_default().join("\t");
            let _ = writeln!(out, "{}\t{names}", alias.ip);
        }
    }
    out
}

/// A host-network pod's /etc/hosts: the node's own file under the kubelet's header, then the
/// pod's hostAliases [kubelet_pods.go nodeHostsFileContent].
pub fn host_network_hosts_file(pod: &Pod, node_hosts: &str) -> String {
    let mut out = String::from(HOSTS_HEADER_HOST_NETWORK);
    out.push_str(node_hosts);
    out.push_str(&host_aliases_block(pod));
    out
}

/// What a resolv.conf says, in the kubelet's terms.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct DnsConfig {
    servers: Vec<String>,
    searches: Vec<String>,
    options: Vec<String>,
}

/// The pod's /etc/resolv.conf for its dnsPolicy, with spec.dnsConfig merged on top.
pub fn resolv_conf(
    pod: &Pod,
    host_resolv_conf: &str,
    cluster_dns: Option<&ClusterDns>,
) -> Result<String, FilesError> {
    let spec = pod.spec.as_ref();
    let policy = spec
        .and_then(|s| s.dns_policy.as_deref())
        .unwrap_or(DNS_CLUSTER_FIRST);
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let mut config = match policy {
        DNS_NONE => DnsConfig::default(),
        // ClusterFirst in the host's network falls back to the node's DNS, as the kubelet does.
        DNS_CLUSTER_FIRST if host_network => parse_host(host_resolv_conf),
        DNS_CLUSTER_FIRST | DNS_CLUSTER_FIRST_WITH_HOST_NET => match cluster_dns {
            Some(dns) => {
                let host = parse_host(host_resolv_conf);
                let ns = namespace(pod);
                let domain = dns.domain.as_str();
                let mut searches = vec![
                    format!("{ns}.svc.{domain}"),
                    format!("svc.{domain}"),
                    domain.to_string(),
                ];
                searches.extend(host.searches);
                DnsConfig {
                    servers: vec![dns.nameserver.to_string()],
                    searches: dedup(searches),
                    options: vec![DEFAULT_NDOTS.to_string()],
                }
            }
            None => {
                tracing::warn!(
                    pod = pod_name(pod),
                    "no cluster DNS configured; using the node's resolv.conf"
                );
                parse_host(host_resolv_conf)
            }
        },
        DNS_DEFAULT => parse_host(host_resolv_conf),
        other => {
            return Err(FilesError::DnsPolicy {
                pod: pod_name(pod).to_string(),
                policy: other.to_string(),
            })
        }
    };
    if let Some(extra) = spec.and_then(|s| s.dns_config.as_ref()) {
        config = merge(config, extra);
    }
    if policy == DNS_NONE && config.servers.is_empty() {
        return Err(FilesError::NoNameserver {
            pod: pod_name(pod).to_string(),
        });
    }
    Ok(render(fit_limits(config)))
}

/// Reads nameserver, search (the last line wins) and options (merged by name) from a
/// resolv.conf; comments start with `#` or `;`.
fn parse_host(content: &str) -> DnsConfig {
    let mut config = DnsConfig::default();
    for line in content.lines() {
        let line = line.trim_start();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["nameserver", server, ..] => config.servers.push((*server).to_string()),
            ["search", domains @ ..] => {
                config.searches = domains
                    .iter()
                    .filter(|d| **d != ".")
                    .map(|d| d.trim_end_matches('.').to_string())
                    .collect();
            }
            ["options", opts @ ..] => {
                for opt in opts {
                    set_option(&mut config.options, opt);
                }
            }
            _ => {}
        }
    }
    config
}

/// Sets an option, replacing one of the same name (`ndots:2` replaces `ndots:5`) in place.
fn set_option(options: &mut Vec<String>, option: &str) {
    let name = option.split(':').next().unwrap_or(option);
    match options
        .iter_mut()
        .find(|o| o.split(':').next().unwrap_or(o) == name)
    {
        Some(existing) => *existing = option.to_string(),
        None => options.push(option.to_string()),
    }
}

fn dedup(items: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// spec.dnsConfig on top: nameservers and searches appended (duplicates dropped), options
/// merged by name with the pod's value winning (appendDNSConfig in the kubelet).
fn merge(mut config: DnsConfig, extra: &PodDNSConfig) -> DnsConfig {
    config
        .servers
        .extend(extra.nameservers.iter().flatten().cloned());
    config.servers = dedup(config.servers);
    config
        .searches
        .extend(extra.searches.iter().flatten().cloned());
    config.searches = dedup(config.searches);
    for opt in extra.options.iter().flatten() {
        let Some(name) = opt.name.as_deref().filter(|n| !n.is_empty()) else {
            continue;
        };
        match opt.value.as_deref().filter(|v| !v.is_empty()) {
            Some(value) => set_option(&mut config.options, &format!("{name}:{value}")),
            None => set_option(&mut config.options, name),
        }
    }
    config
}

/// At most 3 nameservers and 32 search domains in at most 2048 characters; the kubelet drops
/// whole domains from the end until the line fits.
fn fit_limits(mut config: DnsConfig) -> DnsConfig {
    if config.servers.len() > MAX_NAMESERVERS {
        tracing::warn!(dropped = ?&config.servers[MAX_NAMESERVERS..], "nameserver limit exceeded");
        config.servers.truncate(MAX_NAMESERVERS);
    }
    if config.searches.len() > MAX_SEARCH_DOMAINS {
        tracing::warn!(dropped = ?&config.searches[MAX_SEARCH_DOMAINS..], "search domain limit exceeded");
        config.searches.truncate(MAX_SEARCH_DOMAINS);
    }
    while config.searches.join(" ").len() > MAX_SEARCH_LINE_CHARS {
        config.searches.pop();
    }
    config
}

fn render(config: DnsConfig) -> String {
    let mut out = String::new();
    if !config.searches.is_empty() {
        let _ = writeln!(out, "search {}", config.searches.join(" "));
    }
    for server in &config.servers {
        let _ = writeln!(out, "nameserver {server}");
    }
    if !config.options.is_empty() {
        let _ = writeln!(out, "options {}", config.options.join(" "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_network_pods_get_the_nodes_hosts_file_with_the_kubelets_header() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"containers": [], "hostNetwork": true,
                     "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["db", "db.local"]}]}
        }))
        .unwrap();
        let node = "127.0.0.1\tlocalhost\n127.0.1.1\tnode1\n";
        assert_eq!(
            host_network_hosts_file(&pod, node),
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1\tlocalhost\n\
             127.0.1.1\tnode1\n\n# Entries added by HostAliases.\n10.1.2.3\tdb\tdb.local\n"
        );
    }

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    const HEAD: &str = "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n";
    const HOST: &str = "# generated\nnameserver 192.168.1.1\n; old\nnameserver 192.168.1.2\nsearch old.example\nsearch corp.example lab.example.\noptions timeout:2 ndots:1\noptions attempts:3\n";

    fn dns() -> ClusterDns {
        ClusterDns {
            nameserver: "10.96.0.10".parse().unwrap(),
            domain: DEFAULT_CLUSTER_DOMAIN.into(),
        }
    }

    #[test]
    fn hostname_prefers_spec_and_truncates_like_the_kubelet() {
        let p = pod(
            serde_json::json!({"metadata": {"name": "web"}, "spec": {"containers": [], "hostname": "h1"}}),
        );
        assert_eq!(pod_hostname(&p), "h1");
        let long = format!("{}-.x", "a".repeat(61));
        let p = pod(serde_json::json!({"metadata": {"name": long}}));
        assert_eq!(pod_hostname(&p), "a".repeat(61));
    }

    #[test]
    fn hosts_file_plain_pod() {
        let p = pod(serde_json::json!({"metadata": {"name": "web", "namespace": "shop"}}));
        let got = hosts_file(
            &p,
            Some(Ipv4Addr::new(10, 88, 0, 2)),
            DEFAULT_CLUSTER_DOMAIN,
        );
        assert_eq!(got, format!("{HEAD}10.88.0.2\tweb\n"));
        assert_eq!(hosts_file(&p, None, DEFAULT_CLUSTER_DOMAIN), HEAD);
    }

    #[test]
    fn hosts_file_with_subdomain_and_host_aliases() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "web-0", "namespace": "shop"},
            "spec": {"containers": [], "hostname": "web", "subdomain": "front",
                "hostAliases": [
                    {"ip": "127.0.0.1", "hostnames": ["foo.local", "bar.local"]},
                    {"ip": "10.1.2.3", "hostnames": ["foo.remote"]}]}}));
        let want = format!(
            "{HEAD}10.88.0.7\tweb.front.shop.svc.cluster.local\tweb\n\n# Entries added by HostAliases.\n127.0.0.1\tfoo.local\tbar.local\n10.1.2.3\tfoo.remote\n"
        );
        assert_eq!(
            hosts_file(
                &p,
                Some(Ipv4Addr::new(10, 88, 0, 7)),
                DEFAULT_CLUSTER_DOMAIN
            ),
            want
        );
    }

    #[test]
    fn resolv_cluster_first_with_cluster_dns() {
        let p = pod(serde_json::json!({"metadata": {"name": "web", "namespace": "shop"}}));
        let got = resolv_conf(&p, HOST, Some(&dns())).unwrap();
        assert_eq!(
            got,
            "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
    }

    #[test]
    fn resolv_cluster_first_without_cluster_dns_and_default_use_the_node() {
        let want = "search corp.example lab.example\nnameserver 192.168.1.1\nnameserver 192.168.1.2\noptions timeout:2 ndots:1 attempts:3\n";
        let p = pod(serde_json::json!({"metadata": {"name": "web"}}));
        assert_eq!(resolv_conf(&p, HOST, None).unwrap(), want);
        let p = pod(
            serde_json::json!({"metadata": {"name": "web"}, "spec": {"containers": [], "dnsPolicy": "Default"}}),
        );
        assert_eq!(resolv_conf(&p, HOST, Some(&dns())).unwrap(), want);
        let p = pod(
            serde_json::json!({"metadata": {"name": "web"}, "spec": {"containers": [], "hostNetwork": true}}),
        );
        assert_eq!(resolv_conf(&p, HOST, Some(&dns())).unwrap(), want);
    }

    #[test]
    fn resolv_none_uses_only_dns_config() {
        let p = pod(
            serde_json::json!({"metadata": {"name": "web"}, "spec": {"containers": [],
            "dnsPolicy": "None",
            "dnsConfig": {"nameservers": ["1.2.3.4"], "searches": ["ns1.svc.cluster-domain.example"],
                "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}}),
        );
        assert_eq!(
            resolv_conf(&p, HOST, Some(&dns())).unwrap(),
            "search ns1.svc.cluster-domain.example\nnameserver 1.2.3.4\noptions ndots:2 edns0\n"
        );
        let p = pod(
            serde_json::json!({"metadata": {"name": "web"}, "spec": {"containers": [], "dnsPolicy": "None"}}),
        );
        let err = resolv_conf(&p, HOST, None).unwrap_err().to_string();
        assert!(err.contains("web") && err.contains("nameservers"), "{err}");
    }

    #[test]
    fn resolv_dns_config_merges_on_top_of_cluster_first() {
        let p = pod(
            serde_json::json!({"metadata": {"name": "web", "namespace": "shop"}, "spec": {"containers": [],
            "dnsConfig": {"nameservers": ["10.96.0.10", "8.8.8.8"], "searches": ["extra.example", "cluster.local"],
                "options": [{"name": "ndots", "value": "2"}, {"name": "single-request"}]}}}),
        );
        assert_eq!(
            resolv_conf(&p, "", Some(&dns())).unwrap(),
            "search shop.svc.cluster.local svc.cluster.local cluster.local extra.example\nnameserver 10.96.0.10\nnameserver 8.8.8.8\noptions ndots:2 single-request\n"
        );
    }

    #[test]
    fn resolv_limits_and_bad_policy() {
        let searches: Vec<String> = (0..40).map(|i| format!("d{i}.example")).collect();
        let p = pod(
            serde_json::json!({"metadata": {"name": "web"}, "spec": {"containers": [],
            "dnsPolicy": "None",
            "dnsConfig": {"nameservers": ["1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4"], "searches": searches}}}),
        );
        let got = resolv_conf(&p, "", None).unwrap();
        assert_eq!(got.matches("nameserver ").count(), MAX_NAMESERVERS);
        assert!(!got.contains("1.1.1.4"));
        let search_line = got.lines().next().unwrap();
        assert_eq!(search_line.split(' ').count() - 1, MAX_SEARCH_DOMAINS);
        assert!(search_line.ends_with("d31.example"));

        let p = pod(
            serde_json::json!({"metadata": {"name": "web"}, "spec": {"containers": [], "dnsPolicy": "Cluster"}}),
        );
        let err = resolv_conf(&p, HOST, None).unwrap_err().to_string();
        assert!(err.contains("\"Cluster\"") && err.contains("web"), "{err}");
    }
}
