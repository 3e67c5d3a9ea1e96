//! Defaults the API server applies to a Pod on create [pkg/apis/core/v1/defaults.go], so the
//! runtime and `get -o yaml` see the same values a cluster would.

use k8s_openapi::api::core::v1::{Container, EmptyDirVolumeSource, Pod, PodSpec, Volume};

use super::quantity::parse_quantity;

pub const DEFAULT_NAMESPACE: &str = "default";
pub const DEFAULT_RESTART_POLICY: &str = "Always";
pub const DEFAULT_DNS_POLICY: &str = "ClusterFirst";
pub const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
pub const DEFAULT_TERMINATION_MESSAGE_POLICY: &str = "File";
pub const DEFAULT_PROTOCOL: &str = "TCP";

/// Fills in every defaulted field that the manifest left unset.
pub(crate) fn apply(pod: &mut Pod) {
    let meta = &mut pod.metadata;
    set_if_empty(&mut meta.namespace, DEFAULT_NAMESPACE);
    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    set_if_empty(&mut spec.restart_policy, DEFAULT_RESTART_POLICY);
    set_if_empty(&mut spec.dns_policy, DEFAULT_DNS_POLICY);
    spec.termination_grace_period_seconds
        .get_or_insert(DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS);
    for volume in spec.volumes.iter_mut().flatten() {
        apply_volume(volume);
    }
    for container in spec.init_containers.iter_mut().flatten() {
        apply_container(container);
    }
    for container in &mut spec.containers {
        apply_container(container);
    }
    super::ports::default_host_network_ports(spec);
    for volume in spec.volumes.iter_mut().flatten() {
        apply_volume(volume);
    }
    // After the containers' own defaults, as the API server orders them.
    super::pod_resources::default_pod_requests(spec);
}

/// `defaultMode` 0644 on API-data volumes [SetDefaults_{ConfigMap,Secret,DownwardAPI,
/// Projected}VolumeSource], shown as 420 by `get -o yaml` as by kubectl; a volume with no
/// source is an emptyDir [defaults.go SetDefaults_Volume].
fn apply_volume(v: &mut Volume) {
    let has_source = serde_json::to_value(&*v)
        .ok()
        .and_then(|value| value.as_object().map(|m| m.keys().any(|k| k != "name")))
        .unwrap_or(true);
    if !has_source {
        v.empty_dir = Some(EmptyDirVolumeSource::default());
    }
    let mode = crate::volume::projection::DEFAULT_MODE;
    if let Some(cm) = v.config_map.as_mut() {
        cm.default_mode.get_or_insert(mode);
    }
    if let Some(s) = v.secret.as_mut() {
        s.default_mode.get_or_insert(mode);
    }
    if let Some(d) = v.downward_api.as_mut() {
        d.default_mode.get_or_insert(mode);
    }
    if let Some(p) = v.projected.as_mut() {
        p.default_mode.get_or_insert(mode);
    }
}

fn apply_container(c: &mut Container) {
    if c.image_pull_policy
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        let policy = default_pull_policy(c.image.as_deref().unwrap_or_default());
        c.image_pull_policy = Some(policy.to_string());
    }
    set_if_empty(
        &mut c.termination_message_path,
        DEFAULT_TERMINATION_MESSAGE_PATH,
    );
    set_if_empty(
        &mut c.termination_message_policy,
        DEFAULT_TERMINATION_MESSAGE_POLICY,
    );
    for port in c.ports.iter_mut().flatten() {
        set_if_empty(&mut port.protocol, DEFAULT_PROTOCOL);
    }
    super::probes::apply_defaults(c);
    // A limit without a request makes the request equal to the limit.
    if let Some(resources) = c.resources.as_mut() {
        if let Some(limits) = resources.limits.as_ref() {
            let requests = resources.requests.get_or_insert_with(Default::default);
            // An unparseable limit is reported once, at the limit, not copied.
            let valid = limits.iter().filter(|(_, q)| parse_quantity(&q.0).is_ok());
            for (name, limit) in valid {
                requests
                    .entry(name.clone())
                    .or_insert_with(|| limit.clone());
            }
        }
    }
}

/// `Always` for `:latest` or an untagged image, `IfNotPresent` for a tag or a digest.
pub fn default_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    // The tag follows the last ':' after the last '/'; a ':' before it is a registry port.
    let last_part = image.rsplit('/').next().unwrap_or(image);
    match last_part.split_once(':') {
        Some((_, tag)) if tag != "latest" => "IfNotPresent",
        _ => "Always",
    }
}

fn set_if_empty(field: &mut Option<String>, value: &str) {
    if field.as_deref().unwrap_or_default().is_empty() {
        *field = Some(value.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("nginx:1.29"), "IfNotPresent");
        assert_eq!(default_pull_policy("localhost:5000/nginx"), "Always");
        assert_eq!(
            default_pull_policy("localhost:5000/nginx:1.0"),
            "IfNotPresent"
        );
        assert_eq!(
            default_pull_policy("nginx@sha256:0123456789abcdef"),
            "IfNotPresent"
        );
        assert_eq!(
            default_pull_policy("nginx:latest@sha256:0123456789abcdef"),
            "IfNotPresent"
        );
    }
}
