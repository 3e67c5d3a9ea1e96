//! ContainerStats, ListContainerStats, PodSandboxStats, ListPodSandboxStats: CPU time and the
//! memory working set of the containers' and pods' cgroups (`cgroup::stats`, read-only), as
//! the kubelet's cadvisor-less stats provider asks for them. A container that does not run has
//! no cgroup: its attributes come without usage.

use k8s_cri::v1 as cri;
use tonic::Status;

use super::records::{self, ContainerRecord, Live, SandboxRecord};
use super::translate;
use crate::store::Paths;

fn usage_of(dir: &std::path::Path) -> (Option<cri::CpuUsage>, Option<cri::MemoryUsage>) {
    match crate::cgroup::stats::read_usage(dir) {
        Ok(u) => {
            let timestamp = records::now_ns();
            (
                Some(cri::CpuUsage {
                    timestamp,
                    usage_core_nano_seconds: Some(cri::UInt64Value {
                        value: u.cpu_usec.saturating_mul(1000),
                    }),
                    usage_nano_cores: None,
                }),
                Some(cri::MemoryUsage {
                    timestamp,
                    working_set_bytes: Some(cri::UInt64Value {
                        value: u.working_set,
                    }),
                    ..Default::default()
                }),
            )
        }
        Err(e) => {
            tracing::debug!(cgroup = %dir.display(), error = %e, "no usage");
            (None, None)
        }
    }
}

fn container_stats(live: &Live, rec: &ContainerRecord) -> cri::ContainerStats {
    let cgroup = live
        .state
        .as_ref()
        .and_then(|s| s.containers.get(&rec.name))
        .filter(|c| c.process.as_ref().is_some_and(|p| p.is_alive()))
        .and_then(|c| c.cgroup.clone());
    let (cpu, memory) = cgroup.as_deref().map(usage_of).unwrap_or((None, None));
    cri::ContainerStats {
        attributes: Some(cri::ContainerAttributes {
            id: rec.id.clone(),
            metadata: rec.config.metadata.clone(),
            labels: rec.config.labels.clone(),
            annotations: rec.config.annotations.clone(),
        }),
        cpu,
        memory,
        writable_layer: None,
        swap: None,
    }
}

pub fn container(paths: &Paths, id: &str) -> Result<cri::ContainerStats, Status> {
    let (_, rec) = records::find_container(paths, id)?;
    Ok(container_stats(&Live::read(paths, &rec.pod_uid), &rec))
}

/// The running containers' stats (containerd lists those with a task), filtered.
pub fn list_containers(
    paths: &Paths,
    filter: Option<cri::ContainerStatsFilter>,
) -> Result<Vec<cri::ContainerStats>, Status> {
    let f = filter.unwrap_or_default();
    let mut out = Vec::new();
    for (sandbox, rec) in records::containers(paths)? {
        let wanted = (f.id.is_empty() || rec.id.starts_with(&f.id))
            && (f.pod_sandbox_id.is_empty() || sandbox.id.starts_with(&f.pod_sandbox_id))
            && translate::labels_match(&rec.config.labels, &f.label_selector);
        if !wanted {
            continue;
        }
        let stats = container_stats(&Live::read(paths, &rec.pod_uid), &rec);
        if stats.cpu.is_some() {
            out.push(stats);
        }
    }
    Ok(out)
}

fn sandbox_stats(paths: &Paths, rec: &SandboxRecord) -> cri::PodSandboxStats {
    let live = Live::read(paths, &rec.uid);
    let (cpu, memory) = live
        .state
        .as_ref()
        .filter(|_| live.sandbox_ready())
        .and_then(|s| s.pod_cgroup.clone())
        .map(|dir| usage_of(&dir))
        .unwrap_or((None, None));
    let containers = records::containers_of(paths, &rec.uid)
        .iter()
        .map(|c| container_stats(&live, c))
        .filter(|s| s.cpu.is_some())
        .collect();
    cri::PodSandboxStats {
        attributes: Some(cri::PodSandboxAttributes {
            id: rec.id.clone(),
            metadata: Some(rec.metadata()),
            labels: rec.config.labels.clone(),
            annotations: rec.config.annotations.clone(),
        }),
        linux: Some(cri::LinuxPodSandboxStats {
            cpu,
            memory,
            network: None,
            process: None,
            containers,
        }),
        windows: None,
    }
}

pub fn sandbox(paths: &Paths, id: &str) -> Result<cri::PodSandboxStats, Status> {
    let rec = records::find_sandbox(paths, id)?;
    Ok(sandbox_stats(paths, &rec))
}

pub fn list_sandboxes(
    paths: &Paths,
    filter: Option<cri::PodSandboxStatsFilter>,
) -> Result<Vec<cri::PodSandboxStats>, Status> {
    let f = filter.unwrap_or_default();
    Ok(records::sandboxes(paths)?
        .iter()
        .filter(|r| {
            (f.id.is_empty() || r.id.starts_with(&f.id))
                && translate::labels_match(&r.config.labels, &f.label_selector)
                && Live::read(paths, &r.uid).sandbox_ready()
        })
        .map(|r| sandbox_stats(paths, r))
        .collect())
}
