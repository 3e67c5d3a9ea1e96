//! Parsed resource requests and limits, and the pod's QoS class.
//! (Types shared by the manifest and container modules; the parsing lives beside them.)

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use serde::{Deserialize, Serialize};

use super::quantity::{parse_quantity, Quantity, QuantityError};
use super::ManifestError;

/// One container's cpu and memory requests and limits, parsed from quantities.
/// A limit without a request makes the request equal to the limit, as the API server does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub cpu_request_millis: Option<u64>,
    pub cpu_limit_millis: Option<u64>,
    pub memory_request_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
}

/// The pod's quality-of-service class [pkg/apis/core/v1/helper/qos].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

/// Parses one container's cpu (millicores, rounded up like Kubernetes `MilliValue`) and memory
/// (bytes, rounded up) requests and limits. A limit without a request sets the request.
pub fn container_resources(c: &Container) -> Result<Resources, ManifestError> {
    match c.resources.as_ref() {
        Some(r) => requirements(r, &format!("container {:?}: resources", c.name)),
        None => Ok(Resources::default()),
    }
}

/// The pod-level `resources` (KEP-2837), parsed as a container's are; None when unset.
pub fn pod_level_resources(spec: &PodSpec) -> Result<Option<Resources>, ManifestError> {
    spec.resources
        .as_ref()
        .filter(|r| {
            r.requests.as_ref().is_some_and(|m| !m.is_empty())
                || r.limits.as_ref().is_some_and(|m| !m.is_empty())
        })
        .map(|r| requirements(r, "spec.resources"))
        .transpose()
}

fn requirements(r: &ResourceRequirements, at: &str) -> Result<Resources, ManifestError> {
    let get = |map: Option<&BTreeMap<String, K8sQuantity>>, field: &str, name: &str| {
        let Some(q) = map.and_then(|m| m.get(name)) else {
            return Ok(None);
        };
        let path = format!("{at}.{field}.{name}");
        let parsed = parse_quantity(&q.0).map_err(|source| ManifestError::Quantity {
            path: path.clone(),
            source,
        })?;
        if parsed.is_negative() {
            return Err(ManifestError::Quantity {
                path,
                source: QuantityError::Negative(q.0.clone()),
            });
        }
        let amount = if name == "cpu" {
            parsed.milli_value_ceil()
        } else {
            parsed.value_ceil()
        };
        Ok(Some(u64::try_from(amount).unwrap_or(u64::MAX)))
    };
    let cpu_limit = get(r.limits.as_ref(), "limits", "cpu")?;
    let memory_limit = get(r.limits.as_ref(), "limits", "memory")?;
    Ok(Resources {
        cpu_request_millis: get(r.requests.as_ref(), "requests", "cpu")?.or(cpu_limit),
        cpu_limit_millis: cpu_limit,
        memory_request_bytes: get(r.requests.as_ref(), "requests", "memory")?.or(memory_limit),
        memory_limit_bytes: memory_limit,
    })
}

/// The QoS class by the Kubernetes rules [pkg/apis/core/v1/helper/qos ComputePodQOS]:
/// Guaranteed when every container, init containers included, has cpu and memory limits equal
/// to its requests; BestEffort when no container has any cpu or memory request or limit; else
/// Burstable. Pod-level `resources`, when set, decide alone (Guaranteed then needs pod-level
/// cpu and memory limits equal to the requests). Zero and unparseable quantities count as
/// unset.
pub fn qos_class(pod: &Pod) -> QosClass {
    let Some(spec) = pod.spec.as_ref() else {
        return QosClass::BestEffort;
    };
    let pod_level = spec.resources.as_ref().filter(|r| {
        r.requests.as_ref().is_some_and(|m| !m.is_empty())
            || r.limits.as_ref().is_some_and(|m| !m.is_empty())
    });
    if let Some(r) = pod_level {
        let requests = compute_amounts(r.requests.as_ref());
        let limits = compute_amounts(r.limits.as_ref());
        if requests.is_empty() && limits.is_empty() {
            return QosClass::BestEffort;
        }
        let both_limits = limits.len() == 2;
        let equal = requests.len() == limits.len()
            && requests
                .iter()
                .all(|(name, req)| limits.get(name).is_some_and(|l| l.cmp_value(req).is_eq()));
        return if both_limits && equal {
            QosClass::Guaranteed
        } else {
            QosClass::Burstable
        };
    }
    let mut any = false;
    let mut guaranteed = true;
    let init = spec.init_containers.as_deref().unwrap_or_default();
    for c in init.iter().chain(&spec.containers) {
        let r = c.resources.as_ref();
        let limits = compute_amounts(r.and_then(|r| r.limits.as_ref()));
        let mut requests = compute_amounts(r.and_then(|r| r.requests.as_ref()));
        for (name, limit) in &limits {
            requests.entry(name).or_insert(*limit);
        }
        any |= !limits.is_empty() || !requests.is_empty();
        for name in ["cpu", "memory"] {
            match (requests.get(name), limits.get(name)) {
                (Some(req), Some(lim)) if req.cmp_value(lim).is_eq() => {}
                _ => guaranteed = false,
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => QosClass::BestEffort,
        (true, true) => QosClass::Guaranteed,
        (true, false) => QosClass::Burstable,
    }
}

fn compute_amounts(
    map: Option<&BTreeMap<String, K8sQuantity>>,
) -> BTreeMap<&'static str, Quantity> {
    let mut out = BTreeMap::new();
    for name in ["cpu", "memory"] {
        let parsed = map
            .and_then(|m| m.get(name))
            .and_then(|q| parse_quantity(&q.0).ok())
            .filter(|q| q.value_ceil() != 0 || q.milli_value_ceil() != 0);
        if let Some(q) = parsed {
            out.insert(name, q);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(name: &str, requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        let map = |pairs: &[(&str, &str)]| {
            (!pairs.is_empty()).then(|| {
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), K8sQuantity(v.to_string())))
                    .collect()
            })
        };
        Container {
            name: name.into(),
            resources: Some(ResourceRequirements {
                requests: map(requests),
                limits: map(limits),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(init: Vec<Container>, containers: Vec<Container>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                init_containers: (!init.is_empty()).then_some(init),
                containers,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn parses_cpu_and_memory() -> Result<(), ManifestError> {
        let c = container(
            "a",
            &[("cpu", "250m"), ("memory", "64Mi")],
            &[("cpu", "0.5"), ("memory", "1G")],
        );
        assert_eq!(
            container_resources(&c)?,
            Resources {
                cpu_request_millis: Some(250),
                cpu_limit_millis: Some(500),
                memory_request_bytes: Some(64 << 20),
                memory_limit_bytes: Some(1_000_000_000),
            }
        );
        let c = container("a", &[], &[("cpu", "0.0001"), ("memory", "1Ki")]);
        let r = container_resources(&c)?;
        assert_eq!(
            (r.cpu_request_millis, r.cpu_limit_millis),
            (Some(1), Some(1))
        );
        assert_eq!(r.memory_request_bytes, Some(1024));
        assert_eq!(
            container_resources(&Container::default())?,
            Resources::default()
        );
        Ok(())
    }

    #[test]
    fn bad_quantity_names_the_field() {
        let c = container("web", &[("cpu", "lots")], &[]);
        let err = container_resources(&c).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("resources.requests.cpu"), "{err}");
        assert!(container_resources(&container("web", &[("memory", "-1")], &[])).is_err());
    }

    #[test]
    fn qos_classes() {
        let guaranteed = container("g", &[], &[("cpu", "1"), ("memory", "1Gi")]);
        let equal = container(
            "e",
            &[("cpu", "1000m"), ("memory", "1Gi")],
            &[("cpu", "1"), ("memory", "1073741824")],
        );
        let burst = container("b", &[("memory", "1Gi")], &[]);
        let none = Container::default();
        assert_eq!(
            qos_class(&pod(vec![], vec![guaranteed.clone(), equal.clone()])),
            QosClass::Guaranteed
        );
        assert_eq!(
            qos_class(&pod(vec![none.clone()], vec![guaranteed.clone()])),
            QosClass::Burstable
        );
        assert_eq!(qos_class(&pod(vec![], vec![burst])), QosClass::Burstable);
        assert_eq!(
            qos_class(&pod(vec![none.clone()], vec![none.clone()])),
            QosClass::BestEffort
        );
        let zero = container("z", &[("cpu", "0")], &[]);
        assert_eq!(qos_class(&pod(vec![], vec![zero])), QosClass::BestEffort);
        let cpu_only = container("c", &[], &[("cpu", "1")]);
        assert_eq!(qos_class(&pod(vec![], vec![cpu_only])), QosClass::Burstable);
    }

    #[test]
    fn pod_level_resources_decide_the_qos_class() {
        let with = |pod_json: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({"spec": pod_json})).unwrap()
        };
        let guaranteed = with(serde_json::json!({
            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}}}]
        }));
        assert_eq!(qos_class(&guaranteed), QosClass::Guaranteed);
        let burstable = with(serde_json::json!({
            "resources": {"requests": {"cpu": "1", "memory": "100Mi"}, "limits": {"cpu": "1", "memory": "200Mi"}},
            "containers": [{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]
        }));
        assert_eq!(qos_class(&burstable), QosClass::Burstable);
        let cpu_only = with(serde_json::json!({
            "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "1"}},
            "containers": [{"name": "a"}]
        }));
        assert_eq!(qos_class(&cpu_only), QosClass::Burstable);
        let spec = guaranteed.spec.unwrap();
        let r = pod_level_resources(&spec).unwrap().unwrap();
        assert_eq!(r.cpu_request_millis, Some(1000));
        assert_eq!(r.memory_limit_bytes, Some(1 << 30));
    }
}
