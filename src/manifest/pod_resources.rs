//! Pod-level `resources` (KEP-2837, beta and on by default in 1.34) as the API server defaults
//! and validates them [pkg/apis/core/v1/defaults.go defaultPodRequests; validation.go
//! validatePodResources, validatePodResourceConsistency; component-helpers/resource
//! AggregateContainerRequests]. The runtime side is in `cgroup::pod`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

use super::quantity::{parse_quantity, Quantity};
use super::validate::Check;
use super::Reason;
use crate::pod::machine::Kind;

/// The resources a pod may set for itself [resourcehelper.IsSupportedPodLevelResource].
pub const POD_LEVEL_RESOURCES: &[&str] = &["cpu", "memory"];
const CLAIMS_FORBIDDEN: &str = "claims cannot be set for Resources at pod-level";

fn parsed(map: Option<&BTreeMap<String, K8sQuantity>>) -> BTreeMap<String, Quantity> {
    map.into_iter()
        .flatten()
        .filter_map(|(k, q)| Some((k.clone(), parse_quantity(&q.0).ok()?)))
        .collect()
}

fn add_into(total: &mut BTreeMap<String, Quantity>, more: &BTreeMap<String, Quantity>) {
    for (name, q) in more {
        let sum = match total.get(name) {
            Some(t) => t.checked_add(q).unwrap_or(*t),
            None => *q,
        };
        total.insert(name.clone(), sum);
    }
}

fn max_into(total: &mut BTreeMap<String, Quantity>, other: &BTreeMap<String, Quantity>) {
    for (name, q) in other {
        if total.get(name).is_none_or(|t| q.cmp_value(t).is_gt()) {
            total.insert(name.clone(), *q);
        }
    }
}

fn requests(c: &Container) -> BTreeMap<String, Quantity> {
    parsed(c.resources.as_ref().and_then(|r| r.requests.as_ref()))
}

/// The containers' requests added up: app containers and sidecars summed, and at least what
/// any init container needs while it runs (itself plus the sidecars before it).
pub fn aggregate_container_requests(spec: &PodSpec) -> BTreeMap<String, Quantity> {
    let mut total = BTreeMap::new();
    for c in &spec.containers {
        add_into(&mut total, &requests(c));
    }
    let mut sidecars = BTreeMap::new();
    let mut init_max = BTreeMap::new();
    for c in spec.init_containers.iter().flatten() {
        let own = requests(c);
        let while_running = if Kind::of_init(c) == Kind::Sidecar {
            add_into(&mut total, &own);
            add_into(&mut sidecars, &own);
            sidecars.clone()
        } else {
            let mut with = own;
            add_into(&mut with, &sidecars);
            with
        };
        max_into(&mut init_max, &while_running);
    }
    max_into(&mut total, &init_max);
    total
}

fn text(q: &Quantity, written: &str) -> String {
    q.canonical().unwrap_or_else(|| written.to_string())
}

/// The API server's defaulting of pod-level requests, once pod-level limits are set: a
/// resource the containers request defaults to their aggregate, any other limited one to its
/// limit [defaults.go defaultPodRequests].
pub(crate) fn default_pod_requests(spec: &mut PodSpec) {
    let aggregate = aggregate_container_requests(spec);
    let Some(res) = spec.resources.as_mut() else {
        return;
    };
    let Some(limits) = res.limits.as_ref().filter(|l| !l.is_empty()) else {
        return;
    };
    let mut reqs = res.requests.clone().unwrap_or_default();
    for (name, q) in &aggregate {
        if POD_LEVEL_RESOURCES.contains(&name.as_str()) && !reqs.contains_key(name) {
            if let Some(t) = q.canonical() {
                reqs.insert(name.clone(), K8sQuantity(t));
            }
        }
    }
    for (name, limit) in limits {
        if POD_LEVEL_RESOURCES.contains(&name.as_str()) && !reqs.contains_key(name) {
            reqs.insert(name.clone(), limit.clone());
        }
    }
    if !reqs.is_empty() {
        res.requests = Some(reqs);
    }
}

/// The pod-level resources' rules: cpu and memory only, valid quantities, requests at most the
/// limits, requests at least what the containers add up to, and no container limit above the
/// pod's. Paths and texts are the API server's (`spec.resources.requests[cpu]`).
pub(crate) fn validate(spec: &PodSpec, check: &mut Check) {
    let Some(r) = spec.resources.as_ref() else {
        return;
    };
    if r.claims.as_ref().is_some_and(|c| !c.is_empty()) {
        check.push(
            "spec.resources.claims",
            Reason::Forbidden(CLAIMS_FORBIDDEN.into()),
        );
    }
    for (side, map) in [("limits", &r.limits), ("requests", &r.requests)] {
        for (name, q) in map.iter().flatten() {
            let path = format!("spec.resources.{side}[{name}]");
            if !POD_LEVEL_RESOURCES.contains(&name.as_str()) {
                check.supported(&path, name, POD_LEVEL_RESOURCES);
                continue;
            }
            match parse_quantity(&q.0) {
                Ok(v) if v.is_negative() => check.invalid(
                    path,
                    format!("{:?}: must be greater than or equal to 0", q.0),
                ),
                Ok(_) => {}
                Err(e) => check.invalid(path, e.to_string()),
            }
        }
    }
    let (requests, limits) = (parsed(r.requests.as_ref()), parsed(r.limits.as_ref()));
    for (name, req) in &requests {
        let Some(limit) = limits.get(name) else {
            continue;
        };
        if req.cmp_value(limit).is_gt() {
            let (rt, lt) = (text(req, ""), text(limit, ""));
            check.invalid(
                "spec.resources.requests",
                format!("{rt:?}: must be less than or equal to {name} limit of {lt}"),
            );
        }
    }
    let zero = parse_quantity("0").ok();
    for (name, aggregate) in aggregate_container_requests(spec) {
        if !POD_LEVEL_RESOURCES.contains(&name.as_str()) {
            continue;
        }
        let pod = requests.get(&name).copied().or(zero);
        if pod.is_some_and(|p| aggregate.cmp_value(&p).is_gt()) {
            let pt = pod.map(|p| text(&p, "0")).unwrap_or_default();
            check.invalid(
                format!("spec.resources.requests[{name}]"),
                format!(
                    "{pt:?}: must be greater than or equal to aggregate container requests of {}",
                    text(&aggregate, "")
                ),
            );
        }
    }
    for (i, c) in spec.containers.iter().enumerate() {
        let own = parsed(c.resources.as_ref().and_then(|r| r.limits.as_ref()));
        for (name, limit) in &own {
            let Some(pod) = limits.get(name) else {
                continue;
            };
            if limit.cmp_value(pod).is_gt() {
                // The API server builds this path from the pod-level one, as here.
                check.invalid(
                    format!("spec.resources.containers[{i}][{name}].limits"),
                    format!(
                        "{:?}: must be less than or equal to pod limits of {}",
                        text(limit, ""),
                        text(pod, "")
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Problem;

    fn spec(json: serde_json::Value) -> PodSpec {
        serde_json::from_value(json).unwrap()
    }

    fn problems(s: &PodSpec) -> Vec<String> {
        let mut out: Vec<Problem> = Vec::new();
        validate(
            s,
            &mut Check {
                doc: 1,
                out: &mut out,
            },
        );
        out.iter().map(|p| p.cause()).collect()
    }

    #[test]
    fn sidecars_count_with_the_app_containers_and_init_containers_at_their_peak() {
        let s = spec(serde_json::json!({
            "initContainers": [
                {"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}},
                {"name": "setup", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}
            ],
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}}]
        }));
        let agg = aggregate_container_requests(&s);
        assert_eq!(agg["cpu"].canonical().as_deref(), Some("1100m"));
        assert_eq!(agg["memory"].canonical().as_deref(), Some("1Gi"));
    }

    #[test]
    fn pod_requests_default_from_the_containers_then_the_limits() {
        let mut s = spec(serde_json::json!({
            "resources": {"limits": {"cpu": "2", "memory": "1Gi"}},
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "500m"}}},
                {"name": "b", "resources": {"requests": {"cpu": "0.5"}}}
            ]
        }));
        default_pod_requests(&mut s);
        let reqs = s.resources.unwrap().requests.unwrap();
        assert_eq!(reqs["cpu"].0, "1");
        assert_eq!(reqs["memory"].0, "1Gi");
    }

    #[test]
    fn upstream_messages_and_paths() {
        let s = spec(serde_json::json!({
            "resources": {
                "requests": {"cpu": "500m", "memory": "2Gi", "ephemeral-storage": "1Gi"},
                "limits": {"cpu": "1", "memory": "1Gi"},
                "claims": [{"name": "gpu"}]
            },
            "containers": [{"name": "a", "resources": {
                "requests": {"cpu": "1"}, "limits": {"cpu": "2", "memory": "100Mi"}}}]
        }));
        assert_eq!(
            problems(&s),
            vec![
                "spec.resources.claims: Forbidden: claims cannot be set for Resources at pod-level",
                "spec.resources.requests[ephemeral-storage]: Unsupported value: \"ephemeral-storage\": supported values: \"cpu\", \"memory\"",
                "spec.resources.requests: Invalid value: \"2Gi\": must be less than or equal to memory limit of 1Gi",
                "spec.resources.requests[cpu]: Invalid value: \"500m\": must be greater than or equal to aggregate container requests of 1",
                "spec.resources.containers[0][cpu].limits: Invalid value: \"2\": must be less than or equal to pod limits of 1",
            ]
        );
        let fine = spec(serde_json::json!({
            "resources": {"requests": {"cpu": "1", "memory": "100Mi"}, "limits": {"cpu": "1", "memory": "200Mi"}},
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "50Mi"}, "limits": {"cpu": "500m", "memory": "100Mi"}}},
                {"name": "b"}
            ]
        }));
        assert!(problems(&fine).is_empty(), "{:?}", problems(&fine));
    }
}
