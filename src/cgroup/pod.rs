//! What a pod's cgroup is given, as the kubelet computes it [pkg/kubelet/cm/helpers_linux.go
//! ResourceConfigForPod, with the pod's requests and limits added up as
//! component-helpers/resource PodRequests and PodLimits do, pod-level `resources` first]:
//! - `cpu.weight` from the pod's cpu requests (every pod gets one, so CPU is shared between pods
//!   in proportion to their requests; a BestEffort pod gets the minimum);
//! - `cpu.max` and `memory.max` from the pod's limits, for a Guaranteed pod, or a Burstable pod
//!   whose containers all declare that limit (or whose pod-level resources do).

use k8s_openapi::api::core::v1::Pod;

use crate::manifest::resources::{container_resources, pod_level_resources, qos_class, QosClass};
use crate::manifest::{ManifestError, Resources};
use crate::pod::machine::Kind;

/// cpu.shares bounds and scale [helpers_linux.go MinShares, MaxShares, SharesPerCPU].
pub const MIN_SHARES: u64 = 2;
pub const MAX_SHARES: u64 = 262_144;
const SHARES_PER_CPU: u64 = 1024;
const MILLI_CPU_PER_CPU: u64 = 1000;
/// cpu.weight bounds of cgroup v2.
const MAX_WEIGHT: u64 = 10_000;

/// What the pod cgroup gets; None leaves the kernel's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodResources {
    pub cpu_weight: Option<u64>,
    pub cpu_limit_millis: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
}

/// milliCPU to cpu.shares [helpers_linux.go MilliCPUToShares]: 0 is the minimum.
pub fn milli_cpu_to_shares(milli_cpu: u64) -> u64 {
    if milli_cpu == 0 {
        return MIN_SHARES;
    }
    (milli_cpu.saturating_mul(SHARES_PER_CPU) / MILLI_CPU_PER_CPU).clamp(MIN_SHARES, MAX_SHARES)
}

/// cpu.shares to the pod cgroup's cpu.weight, with the kubelet's own linear mapping for the
/// cgroups it manages [cm/cgroup_manager_linux.go getCPUWeight]. (Container cgroups are
/// written by the OCI runtime, whose mapping is `super::cpu_weight_from_shares`.)
pub fn pod_cpu_weight(shares: u64) -> u64 {
    if shares >= MAX_SHARES {
        return MAX_WEIGHT;
    }
    1 + (shares.max(MIN_SHARES) - MIN_SHARES) * (MAX_WEIGHT - 1) / (MAX_SHARES - MIN_SHARES)
}

/// A resource of the pod's containers added up: the app containers and sidecars summed, and
/// at least what any init container needs while it runs (itself plus the sidecars started
/// before it) [AggregateContainerRequests/Limits]. `declared`: every container has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aggregate {
    pub total: u64,
    pub declared: bool,
}

/// Adds up one resource over the containers, in spec order (init containers with their kind).
pub fn aggregate(
    app: &[Resources],
    init: &[(Kind, Resources)],
    get: fn(&Resources) -> Option<u64>,
) -> Aggregate {
    let mut declared = true;
    let mut value = |r: &Resources| {
        let v = get(r);
        declared &= v.is_some();
        v.unwrap_or(0)
    };
    let mut total = app.iter().map(&mut value).fold(0u64, u64::saturating_add);
    let mut sidecars = 0u64;
    let mut init_max = 0u64;
    for (kind, r) in init {
        let own = value(r);
        let while_running = if *kind == Kind::Sidecar {
            total = total.saturating_add(own);
            sidecars = sidecars.saturating_add(own);
            sidecars
        } else {
            own.saturating_add(sidecars)
        };
        init_max = init_max.max(while_running);
    }
    Aggregate {
        total: total.max(init_max),
        declared,
    }
}

/// The pod cgroup's resources from the containers' and the pod's own (`pod_level`), and the
/// pod's QoS class.
pub fn pod_cgroup_resources(
    app: &[Resources],
    init: &[(Kind, Resources)],
    pod_level: Option<&Resources>,
    qos: QosClass,
) -> PodResources {
    let pick = |pod: Option<u64>, get: fn(&Resources) -> Option<u64>| -> Aggregate {
        match pod {
            Some(total) => Aggregate {
                total,
                declared: true,
            },
            None => aggregate(app, init, get),
        }
    };
    let cpu_request = pick(pod_level.and_then(|p| p.cpu_request_millis), |r| {
        r.cpu_request_millis
    });
    let cpu_limit = pick(pod_level.and_then(|p| p.cpu_limit_millis), |r| {
        r.cpu_limit_millis
    });
    let memory_limit = pick(pod_level.and_then(|p| p.memory_limit_bytes), |r| {
        r.memory_limit_bytes
    });
    let weight = |millis: u64| Some(pod_cpu_weight(milli_cpu_to_shares(millis)));
    match qos {
        QosClass::BestEffort => PodResources {
            cpu_weight: Some(pod_cpu_weight(MIN_SHARES)),
            ..Default::default()
        },
        QosClass::Guaranteed => PodResources {
            cpu_weight: weight(cpu_request.total),
            cpu_limit_millis: Some(cpu_limit.total),
            memory_limit_bytes: Some(memory_limit.total),
        },
        QosClass::Burstable => PodResources {
            cpu_weight: weight(cpu_request.total),
            cpu_limit_millis: cpu_limit.declared.then_some(cpu_limit.total),
            memory_limit_bytes: memory_limit.declared.then_some(memory_limit.total),
        },
    }
}

/// The pod cgroup's resources for `pod`.
pub fn pod_resources(pod: &Pod) -> Result<PodResources, ManifestError> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(PodResources::default());
    };
    let app = spec
        .containers
        .iter()
        .map(container_resources)
        .collect::<Result<Vec<_>, _>>()?;
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| Ok((Kind::of_init(c), container_resources(c)?)))
        .collect::<Result<Vec<_>, ManifestError>>()?;
    let pod_level = pod_level_resources(spec)?;
    Ok(pod_cgroup_resources(
        &app,
        &init,
        pod_level.as_ref(),
        qos_class(pod),
    ))
}
