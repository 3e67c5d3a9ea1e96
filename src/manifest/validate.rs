//! Validation of a decoded, defaulted Pod, after the rules of the API server
//! [pkg/apis/core/validation]: names, enumerations, ports, env names, quantities and limits.
//! Values that are valid Kubernetes but not implemented are reported as not supported, using
//! the lists in [`super::support`].

use std::collections::BTreeMap;
use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, PodDNSConfig, PodSpec, Volume};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

use super::names::{is_dns1123_label, is_dns1123_subdomain, is_port_name};
use super::quantity::parse_quantity;
use super::support::{SUPPORTED_EMPTY_DIR_MEDIA, SUPPORTED_RESOURCE_FIELD_REFS};
use super::validate_sources::{self, RELAXED_ENV_NAME_RULE};
use super::{Problem, Reason};
use crate::pod::model::REASON_INVALID_IMAGE_NAME;
use crate::volume::empty_dir::{MAX_MODE, MEDIUM_HUGE_PAGES_PREFIX};
use crate::volume::host_path::TYPES as HOST_PATH_TYPES;

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const MESSAGE_POLICIES: &[&str] = &["File", "FallbackToLogsOnError"];
const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];
const ID_RANGE: &str = "must be between 0 and 2147483647, inclusive";
/// Modeled on the API server's `fileModeErrorMsg` for `defaultMode`.
const EMPTY_DIR_MODE_RANGE: &str = "must be a number between 0 and 01777 (octal), both inclusive";
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;

pub(crate) struct Check<'a> {
    pub doc: usize,
    pub out: &'a mut Vec<Problem>,
}

impl Check<'_> {
    pub(crate) fn push(&mut self, path: impl Into<String>, reason: Reason) {
        self.out.push(Problem::new(self.doc, path, reason));
    }
    pub(crate) fn invalid(&mut self, path: impl Into<String>, why: impl Into<String>) {
        self.push(path, Reason::Invalid(why.into()));
    }
    pub(crate) fn one_of(&mut self, path: &str, value: &str, allowed: &[&str]) {
        if !allowed.contains(&value) {
            let list: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
            self.invalid(
                path,
                format!("{value:?}: supported values: {}", list.join(", ")),
            );
        }
    }
    /// field.NotSupported: `Unsupported value: "x": supported values: "a", "b"`.
    pub(crate) fn supported(&mut self, path: &str, value: &str, allowed: &[&'static str]) {
        if !allowed.contains(&value) {
            self.push(
                path,
                Reason::Unsupported {
                    value: value.to_string(),
                    supported: allowed.to_vec(),
                },
            );
        }
    }
    /// validateLocalDescendingPath: relative, no `..` element.
    pub(crate) fn descending_path(&mut self, path: &str, value: &str) {
        if value.starts_with('/') {
            self.invalid(path, format!("{value:?}: must be a relative path"));
        }
        self.no_backsteps(path, value);
    }
    /// validatePathNoBacksteps.
    pub(crate) fn no_backsteps(&mut self, path: &str, value: &str) {
        if value.split('/').any(|part| part == "..") {
            self.invalid(path, format!("{value:?}: must not contain '..'"));
        }
    }
    /// validation.IsValidUserID / IsValidGroupID [apimachinery/pkg/util/validation].
    pub(crate) fn id(&mut self, path: String, id: Option<i64>) {
        if let Some(id) = id.filter(|id| !(0..=i64::from(i32::MAX)).contains(id)) {
            self.invalid(path, format!("{id}: {ID_RANGE}"));
        }
    }
    pub(crate) fn label(&mut self, path: &str, value: &str) {
        if !is_dns1123_label(value) {
            self.invalid(path, format!("{value:?}: {DNS_LABEL_RULE}"));
        }
    }
}

pub(crate) const DNS_LABEL_RULE: &str = "a lowercase RFC 1123 label must consist of lower case \
alphanumeric characters or '-', start and end with an alphanumeric character, at most 63 long";

/// Appends every problem of `pod` to `out`.
pub(crate) fn validate(pod: &Pod, doc: usize, out: &mut Vec<Problem>) {
    let mut check = Check { doc, out };
    match pod.metadata.name.as_deref() {
        None | Some("") => check.push("metadata.name", Reason::Required),
        Some(name) if !is_dns1123_subdomain(name) => check.invalid(
            "metadata.name",
            format!("{name:?}: a lowercase RFC 1123 subdomain of at most 253 characters"),
        ),
        Some(_) => {}
    }
    if let Some(ns) = pod.metadata.namespace.as_deref() {
        check.label("metadata.namespace", ns);
    }
    super::objects::validate_labels(&pod.metadata, &mut check);
    for key in pod.metadata.annotations.iter().flatten().map(|(k, _)| k) {
        if crate::pod::control::reserved_annotation(key) {
            check.push(
                format!("metadata.annotations[{key}]"),
                Reason::Forbidden(crate::pod::control::RESERVED_ANNOTATION.to_string()),
            );
        }
    }
    let Some(spec) = pod.spec.as_ref() else {
        check.push("spec", Reason::Required);
        return;
    };
    validate_spec(spec, &mut check);
}

fn validate_spec(spec: &PodSpec, check: &mut Check) {
    if spec.containers.is_empty() {
        check.push("spec.containers", Reason::Required);
    }
    let volumes = validate_volumes(spec.volumes.as_deref().unwrap_or_default(), check);
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let all_names: Vec<&str> = init
        .iter()
        .chain(&spec.containers)
        .map(|c| c.name.as_str())
        .collect();
    let mut seen = HashSet::new();
    let lists = [
        ("spec.initContainers", init),
        ("spec.containers", &spec.containers[..]),
    ];
    for (list, containers) in lists {
        for (i, c) in containers.iter().enumerate() {
            let path = format!("{list}[{i}]");
            if !c.name.is_empty() && !seen.insert(c.name.as_str()) {
                check.push(
                    format!("{path}.name"),
                    Reason::Duplicate(format!("{:?}", c.name)),
                );
            }
            validate_container(c, &path, &volumes, &all_names, check);
        }
    }
    if let Some(p) = spec.restart_policy.as_deref() {
        check.one_of("spec.restartPolicy", p, RESTART_POLICIES);
    }
    if let Some(p) = spec.dns_policy.as_deref() {
        check.one_of("spec.dnsPolicy", p, DNS_POLICIES);
        if p == "None" && spec.dns_config.is_none() {
            check.invalid("spec.dnsConfig", "must be provided when dnsPolicy is None");
        }
    }
    if let Some(dns) = spec.dns_config.as_ref() {
        validate_dns_config(dns, check);
    }
    for (field, value) in [
        ("spec.hostname", &spec.hostname),
        ("spec.subdomain", &spec.subdomain),
    ] {
        if let Some(v) = value.as_deref() {
            check.label(field, v);
        }
    }
    for (i, alias) in spec.host_aliases.iter().flatten().enumerate() {
        let path = format!("spec.hostAliases[{i}]");
        match alias.ip.parse::<std::net::IpAddr>() {
            Ok(_) => {}
            Err(_) => check.invalid(
                format!("{path}.ip"),
                format!("{:?}: must be an IP address", alias.ip),
            ),
        }
        for (j, host) in alias.hostnames.iter().flatten().enumerate() {
            if !is_dns1123_subdomain(host) {
                check.invalid(
                    format!("{path}.hostnames[{j}]"),
                    format!("{host:?}: must be a DNS name"),
                );
            }
        }
    }
    super::security::validate(spec, check);
    super::validate_lifecycle::validate(spec, check);
    super::probes::validate(spec, check);
    super::pod_resources::validate(spec, check);
    super::ports::validate(spec, check);
    if spec.termination_grace_period_seconds.is_some_and(|s| s < 0) {
        check.invalid(
            "spec.terminationGracePeriodSeconds",
            "must be greater than or equal to 0",
        );
    }
    if let Some(sc) = spec.security_context.as_ref() {
        super::volume_rules::validate_pod_security_context(sc, check);
    }
}

fn validate_dns_config(dns: &PodDNSConfig, check: &mut Check) {
    let nameservers = dns.nameservers.as_deref().unwrap_or_default();
    if nameservers.len() > MAX_NAMESERVERS {
        check.invalid(
            "spec.dnsConfig.nameservers",
            format!("must not have more than {MAX_NAMESERVERS} nameservers"),
        );
    }
    for (i, ns) in nameservers.iter().enumerate() {
        if ns.parse::<std::net::IpAddr>().is_err() {
            check.invalid(
                format!("spec.dnsConfig.nameservers[{i}]"),
                format!("{ns:?}: must be an IP address"),
            );
        }
    }
    let searches = dns.searches.as_deref().unwrap_or_default();
    if searches.len() > MAX_SEARCHES {
        check.invalid(
            "spec.dnsConfig.searches",
            format!("must not have more than {MAX_SEARCHES} search paths"),
        );
    }
    for (i, s) in searches.iter().enumerate() {
        if !is_dns1123_subdomain(s.strip_suffix('.').unwrap_or(s)) {
            check.invalid(
                format!("spec.dnsConfig.searches[{i}]"),
                format!("{s:?}: must be a DNS name"),
            );
        }
    }
    for (i, o) in dns.options.iter().flatten().enumerate() {
        if o.name.as_deref().unwrap_or_default().is_empty() {
            check.push(
                format!("spec.dnsConfig.options[{i}].name"),
                Reason::Required,
            );
        }
    }
}

/// Checks the volumes and returns their names.
fn validate_volumes<'a>(volumes: &'a [Volume], check: &mut Check) -> HashSet<&'a str> {
    let mut names = HashSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let path = format!("spec.volumes[{i}]");
        check.label(&format!("{path}.name"), &v.name);
        if !names.insert(v.name.as_str()) {
            check.push(
                format!("{path}.name"),
                Reason::Duplicate(format!("{:?}", v.name)),
            );
        }
        // A volume without a source was defaulted to an emptyDir.
        validate_sources::volume(&path, v, check);
        if let Some(e) = v.empty_dir.as_ref() {
            let medium = e.medium.as_deref().unwrap_or_default();
            if medium.starts_with(MEDIUM_HUGE_PAGES_PREFIX) {
                check.push(
                    format!("{path}.emptyDir.medium"),
                    Reason::NotSupported(Some(format!(
                        "medium {medium:?}: hugepages-backed emptyDir volumes"
                    ))),
                );
            } else if !SUPPORTED_EMPTY_DIR_MEDIA.contains(&medium) {
                check.push(
                    format!("{path}.emptyDir.medium"),
                    Reason::NotSupported(Some(format!("medium {medium:?}"))),
                );
            }
            if let Some(q) = e.size_limit.as_ref() {
                match parse_quantity(&q.0) {
                    Ok(v) if v.is_negative() => check.push(
                        format!("{path}.emptyDir.sizeLimit"),
                        Reason::Forbidden(
                            "SizeLimit field must be a valid resource quantity".into(),
                        ),
                    ),
                    Ok(_) => {}
                    Err(err) => {
                        check.invalid(format!("{path}.emptyDir.sizeLimit"), err.to_string())
                    }
                }
            }
            if let Some(mode) = e.mode.filter(|m| !(0..=MAX_MODE).contains(m)) {
                check.invalid(
                    format!("{path}.emptyDir.mode"),
                    format!("{mode}: {EMPTY_DIR_MODE_RANGE}"),
                );
            }
        }
        if let Some(h) = v.host_path.as_ref() {
            let p = format!("{path}.hostPath.path");
            if h.path.is_empty() {
                check.push(p, Reason::Required);
            } else if !h.path.starts_with('/') {
                check.invalid(p, format!("{:?}: must be an absolute path", h.path));
            } else {
                check.no_backsteps(&p, &h.path);
            }
            if let Some(t) = h.type_.as_deref() {
                check.supported(&format!("{path}.hostPath.type"), t, HOST_PATH_TYPES);
            }
        }
    }
    names
}

fn validate_container(
    c: &Container,
    path: &str,
    volumes: &HashSet<&str>,
    containers: &[&str],
    check: &mut Check,
) {
    if c.name.is_empty() {
        check.push(format!("{path}.name"), Reason::Required);
    } else {
        check.label(&format!("{path}.name"), &c.name);
    }
    match c.image.as_deref().map(str::trim) {
        None | Some("") => check.push(format!("{path}.image"), Reason::Required),
        Some(image) => {
            // The kubelet would accept the pod and leave the container waiting with
            // InvalidImageName forever; refusing it here names the reference at once.
            if let Err(e) = crate::image::normalize_reference(image) {
                let why = match e {
                    crate::image::ImageError::InvalidReference { reason, .. } => reason,
                    other => other.to_string(),
                };
                check.invalid(
                    format!("{path}.image"),
                    format!("{image:?}: {REASON_INVALID_IMAGE_NAME}: {why}"),
                );
            }
        }
    }
    if let Some(p) = c.image_pull_policy.as_deref() {
        check.one_of(&format!("{path}.imagePullPolicy"), p, PULL_POLICIES);
    }
    if let Some(p) = c.termination_message_policy.as_deref() {
        check.one_of(
            &format!("{path}.terminationMessagePolicy"),
            p,
            MESSAGE_POLICIES,
        );
    }
    let mut port_names = HashSet::new();
    for (i, port) in c.ports.iter().flatten().enumerate() {
        let p = format!("{path}.ports[{i}]");
        if !(1..=65535).contains(&port.container_port) {
            check.invalid(
                format!("{p}.containerPort"),
                format!(
                    "{}: must be between 1 and 65535, inclusive",
                    port.container_port
                ),
            );
        }
        check.one_of(
            &format!("{p}.protocol"),
            port.protocol.as_deref().unwrap_or_default(),
            PROTOCOLS,
        );
        if let Some(name) = port.name.as_deref() {
            if !is_port_name(name) {
                check.invalid(format!("{p}.name"), format!("{name:?}: must be at most 15 lower case letters, digits or '-', with a letter"));
            } else if !port_names.insert(name) {
                check.push(format!("{p}.name"), Reason::Duplicate(format!("{name:?}")));
            }
        }
    }
    for (i, env) in c.env.iter().flatten().enumerate() {
        validate_env(env, &format!("{path}.env[{i}]"), containers, check);
    }
    for (i, source) in c.env_from.iter().flatten().enumerate() {
        validate_sources::env_from(&format!("{path}.envFrom[{i}]"), source, check);
    }
    if let Some(r) = c.resources.as_ref() {
        let limits = validate_resource_map(
            &format!("{path}.resources.limits"),
            r.limits.as_ref(),
            check,
        );
        let requests = validate_resource_map(
            &format!("{path}.resources.requests"),
            r.requests.as_ref(),
            check,
        );
        for (name, request) in &requests {
            if let Some(limit) = limits.get(name) {
                if request.1.cmp_value(&limit.1).is_gt() {
                    check.invalid(
                        format!("{path}.resources.requests.{name}"),
                        format!(
                            "{:?}: must be less than or equal to {name} limit of {}",
                            request.0, limit.0
                        ),
                    );
                }
            }
        }
    }
    super::volume_rules::validate_volume_mounts(c, path, volumes, check);
    if let Some(sc) = c.security_context.as_ref() {
        for (field, id) in [
            ("runAsUser", sc.run_as_user),
            ("runAsGroup", sc.run_as_group),
        ] {
            check.id(format!("{path}.securityContext.{field}"), id);
        }
    }
}

fn validate_env(env: &EnvVar, path: &str, containers: &[&str], check: &mut Check) {
    if env.name.is_empty() {
        check.push(format!("{path}.name"), Reason::Required);
    } else if !super::names::is_env_name(&env.name) {
        check.invalid(
            format!("{path}.name"),
            format!("{:?}: {RELAXED_ENV_NAME_RULE}", env.name),
        );
    }
    let Some(from) = env.value_from.as_ref() else {
        return;
    };
    if env.value.as_deref().is_some_and(|v| !v.is_empty()) {
        check.invalid(
            format!("{path}.valueFrom"),
            "may not be specified when `value` is not empty",
        );
    }
    validate_sources::env_value_from(&format!("{path}.valueFrom"), from, check);
    if let Some(r) = from.resource_field_ref.as_ref() {
        let p = format!("{path}.valueFrom.resourceFieldRef");
        let res = r.resource.as_str();
        if !SUPPORTED_RESOURCE_FIELD_REFS.contains(&res) {
            if res.starts_with("limits.") || res.starts_with("requests.") {
                check.push(
                    format!("{p}.resource"),
                    Reason::NotSupported(Some(format!("resource {res}"))),
                );
            } else {
                check.invalid(format!("{p}.resource"), format!("{res:?}: supported values: limits.cpu, limits.memory, requests.cpu, requests.memory"));
            }
        }
        if let Some(name) = r.container_name.as_deref().filter(|n| !n.is_empty()) {
            if !containers.contains(&name) {
                check.invalid(
                    format!("{p}.containerName"),
                    format!("{name:?}: not a container of this pod"),
                );
            }
        }
        if let Some(d) = r.divisor.as_ref() {
            quantity(&format!("{p}.divisor"), d, check);
        }
    }
}

type Parsed<'a> = BTreeMap<&'a str, (&'a str, super::quantity::Quantity)>;

/// Checks resource names and quantities; returns those that parsed.
fn validate_resource_map<'a>(
    path: &str,
    map: Option<&'a BTreeMap<String, K8sQuantity>>,
    check: &mut Check,
) -> Parsed<'a> {
    let mut parsed = BTreeMap::new();
    for (name, q) in map.into_iter().flatten() {
        let p = format!("{path}.{name}");
        let standard = matches!(name.as_str(), "cpu" | "memory" | "ephemeral-storage")
            || name
                .strip_prefix("hugepages-")
                .is_some_and(|size| parse_quantity(size).is_ok());
        if !standard {
            if name.contains('/') {
                check.push(p, Reason::NotSupported(Some("extended resources".into())));
            } else {
                check.invalid(
                    p,
                    format!("{name:?}: must be cpu, memory, ephemeral-storage or hugepages-<size>"),
                );
            }
            continue;
        }
        if let Some(value) = quantity(&p, q, check) {
            parsed.insert(name.as_str(), (q.0.as_str(), value));
        }
    }
    parsed
}

fn quantity(path: &str, q: &K8sQuantity, check: &mut Check) -> Option<super::quantity::Quantity> {
    match parse_quantity(&q.0) {
        Ok(v) if v.is_negative() => {
            check.invalid(
                path,
                format!("{:?}: must be greater than or equal to 0", q.0),
            );
            None
        }
        Ok(v) => Some(v),
        Err(e) => {
            check.invalid(path, e.to_string());
            None
        }
    }
}

/// Two documents may not describe the same object.
pub(crate) fn check_unique(objects: &[(usize, super::Object)], out: &mut Vec<Problem>) {
    let mut seen = HashSet::new();
    for (doc, object) in objects {
        let key = (object.kind_name(), object.namespace(), object.name());
        if !seen.insert(key) {
            out.push(Problem::new(
                *doc,
                "metadata.name",
                Reason::Duplicate(format!(
                    "{} {:?} appears in an earlier document",
                    object.kind_name(),
                    object.name()
                )),
            ));
        }
    }
}
