//! The CRI `RuntimeService`: `Version`, `Status`, `RuntimeConfig` and `UpdateRuntimeConfig`
//! answer as a node runtime should; the pod sandbox calls are served by `sandboxes`, the
//! container calls by `containers`, the stats by `stats`, ExecSync and the streaming calls by
//! `streaming` (over the records, through `resolve::CriResolver`), GetContainerEvents by
//! `events` (each lifecycle call sends its events once it succeeded). The few others answer gRPC
//! `Unimplemented`, naming the call (the kubelet then reports the runtime's error instead of
//! acting on a fake answer).

use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_server::RuntimeService;
use tonic::{Request, Response, Status};

use super::events::{EventStream, Events};
use super::records;
use super::resolve::CriResolver;
use super::streaming::{self, StreamingServer};
use super::{blocking, containers, sandboxes, stats, status};
use crate::store::Paths;

/// The CRI API version the kubelet expects in `VersionResponse.version` (containerd's
/// `kubeAPIVersion`).
pub const KUBE_API_VERSION: &str = "0.1.0";
pub const RUNTIME_NAME: &str = "peapod";
/// The CRI API peapod serves.
pub const RUNTIME_API_VERSION: &str = "v1";

/// The runtime service over peapod's state directories, with the streaming server its Exec,
/// Attach and PortForward send clients to.
#[derive(Clone)]
pub struct CriRuntime {
    paths: Paths,
    streaming: StreamingServer,
    resolver: CriResolver,
    events: Events,
}

impl CriRuntime {
    pub fn new(paths: Paths, streaming: StreamingServer, events: Events) -> CriRuntime {
        let resolver = CriResolver {
            paths: paths.clone(),
        };
        CriRuntime {
            paths,
            streaming,
            resolver,
            events,
        }
    }
}

/// The answer to a call peapod does not serve yet.
fn not_implemented(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "{rpc} is not implemented by peapod's CRI server yet"
    ))
}

/// `UpdateRuntimeConfig`'s pod CIDRs (comma separated, as the kubelet sends them); an
/// unparsable one is refused with the field named, as containerd refuses it.
fn pod_cidrs(value: &str) -> Result<Vec<String>, Status> {
    value
        .split(',')
        .map(str::trim)
        .map(|c| {
            let valid = c.split_once('/').is_some_and(|(addr, len)| {
                let max = match addr.parse::<std::net::IpAddr>() {
                    Ok(std::net::IpAddr::V4(_)) => 32,
                    Ok(std::net::IpAddr::V6(_)) => 128,
                    Err(_) => return false,
                };
                len.parse::<u8>().is_ok_and(|l| l <= max)
            });
            if valid {
                Ok(c.to_string())
            } else {
                Err(Status::invalid_argument(format!(
                    "runtime_config.network_config.pod_cidr: invalid CIDR {c:?}"
                )))
            }
        })
        .collect()
}

/// Generates the service: the calls served (written out below) and one `Unimplemented`
/// method per call listed. (A macro, since `async_trait` must see the methods expanded.)
macro_rules! runtime_service {
    ($($method:ident($req:ident) -> $resp:ident = $rpc:literal;)*) => {
        #[tonic::async_trait]
        impl RuntimeService for CriRuntime {
            async fn version(
                &self,
                _request: Request<cri::VersionRequest>,
            ) -> Result<Response<cri::VersionResponse>, Status> {
                Ok(Response::new(cri::VersionResponse {
                    version: KUBE_API_VERSION.to_string(),
                    runtime_name: RUNTIME_NAME.to_string(),
                    runtime_version: env!("CARGO_PKG_VERSION").to_string(),
                    runtime_api_version: RUNTIME_API_VERSION.to_string(),
                }))
            }

            async fn status(
                &self,
                request: Request<cri::StatusRequest>,
            ) -> Result<Response<cri::StatusResponse>, Status> {
                let verbose = request.get_ref().verbose;
                let paths = self.paths.clone();
                blocking(move || Ok(status::status(&paths, verbose)))
                    .await
                    .map(Response::new)
            }

            async fn runtime_config(
                &self,
                _request: Request<cri::RuntimeConfigRequest>,
            ) -> Result<Response<cri::RuntimeConfigResponse>, Status> {
                // peapod writes cgroupfs paths itself (/sys/fs/cgroup/peapod/..., or under the
                // sandbox's cgroupfs cgroup_parent), not systemd slices: the kubelet must use
                // the cgroupfs driver too (a slice parent is refused).
                Ok(Response::new(cri::RuntimeConfigResponse {
                    linux: Some(cri::LinuxRuntimeConfiguration {
                        cgroup_driver: cri::CgroupDriver::Cgroupfs as i32,
                    }),
                }))
            }

            async fn update_runtime_config(
                &self,
                request: Request<cri::UpdateRuntimeConfigRequest>,
            ) -> Result<Response<cri::UpdateRuntimeConfigResponse>, Status> {
                let value = request
                    .get_ref()
                    .runtime_config
                    .as_ref()
                    .and_then(|c| c.network_config.as_ref())
                    .map(|n| n.pod_cidr.clone())
                    .unwrap_or_default();
                if value.is_empty() {
                    return Ok(Response::new(cri::UpdateRuntimeConfigResponse {}));
                }
                let cidrs = pod_cidrs(&value)?;
                // As containerd with a CNI config in place: the node's network is already
                // configured (peapod's bridge and pod CIDR), so the kubelet's is noted only.
                let own = crate::network::NetworkConfig::load(&self.paths)
                    .map(|n| format!("{}/{}", n.subnet, n.prefix_len))
                    .unwrap_or_default();
                tracing::info!(kubelet = ?cidrs, peapod = %own, "pod CIDR from the kubelet noted; peapod keeps its own network settings (<lib>/network/config.json)");
                Ok(Response::new(cri::UpdateRuntimeConfigResponse {}))
            }

            async fn run_pod_sandbox(
                &self,
                request: Request<cri::RunPodSandboxRequest>,
            ) -> Result<Response<cri::RunPodSandboxResponse>, Status> {
                let (paths, req, events) = (self.paths.clone(), request.into_inner(), self.events.clone());
                blocking(move || {
                    let id = sandboxes::run(&paths, req)?;
                    events.running(&id);
                    events.send(&paths, &id, &id, cri::ContainerEventType::ContainerCreatedEvent);
                    events.send(&paths, &id, &id, cri::ContainerEventType::ContainerStartedEvent);
                    Ok(id)
                })
                .await
                    .map(|pod_sandbox_id| Response::new(cri::RunPodSandboxResponse { pod_sandbox_id }))
            }

            async fn stop_pod_sandbox(
                &self,
                request: Request<cri::StopPodSandboxRequest>,
            ) -> Result<Response<cri::StopPodSandboxResponse>, Status> {
                let (paths, id, events) = (self.paths.clone(), request.into_inner().pod_sandbox_id, self.events.clone());
                blocking(move || {
                    let sandbox = records::find_sandbox(&paths, &id)?;
                    sandboxes::stop(&paths, &sandbox.id)?;
                    for c in records::containers_of(&paths, &sandbox.uid) {
                        events.stopped(&paths, &c.id, &sandbox.id);
                    }
                    events.stopped(&paths, &sandbox.id, &sandbox.id);
                    Ok(())
                })
                .await
                    .map(|()| Response::new(cri::StopPodSandboxResponse {}))
            }

            async fn remove_pod_sandbox(
                &self,
                request: Request<cri::RemovePodSandboxRequest>,
            ) -> Result<Response<cri::RemovePodSandboxResponse>, Status> {
                let (paths, id, events) = (self.paths.clone(), request.into_inner().pod_sandbox_id, self.events.clone());
                blocking(move || {
                    let all = records::sandboxes(&paths)?;
                    let sandbox = records::by_id(&all, &id, |s| &s.id)?.cloned();
                    let held = sandbox
                        .as_ref()
                        .map(|s| records::containers_of(&paths, &s.uid))
                        .unwrap_or_default();
                    sandboxes::remove(&paths, &id)?;
                    if let Some(sandbox) = sandbox {
                        for c in held {
                            events.stopped(&paths, &c.id, &sandbox.id);
                            events.deleted(&paths, &c.id, &sandbox.id);
                        }
                        events.stopped(&paths, &sandbox.id, &sandbox.id);
                        events.deleted(&paths, &sandbox.id, &sandbox.id);
                    }
                    Ok(())
                })
                .await
                    .map(|()| Response::new(cri::RemovePodSandboxResponse {}))
            }

            async fn pod_sandbox_status(
                &self,
                request: Request<cri::PodSandboxStatusRequest>,
            ) -> Result<Response<cri::PodSandboxStatusResponse>, Status> {
                let (paths, req) = (self.paths.clone(), request.into_inner());
                blocking(move || sandboxes::status(&paths, &req.pod_sandbox_id, req.verbose))
                    .await
                    .map(Response::new)
            }

            async fn list_pod_sandbox(
                &self,
                request: Request<cri::ListPodSandboxRequest>,
            ) -> Result<Response<cri::ListPodSandboxResponse>, Status> {
                let (paths, filter) = (self.paths.clone(), request.into_inner().filter);
                blocking(move || sandboxes::list(&paths, filter))
                    .await
                    .map(|items| Response::new(cri::ListPodSandboxResponse { items }))
            }

            async fn create_container(
                &self,
                request: Request<cri::CreateContainerRequest>,
            ) -> Result<Response<cri::CreateContainerResponse>, Status> {
                let (paths, req, events) = (self.paths.clone(), request.into_inner(), self.events.clone());
                blocking(move || {
                    let sandbox = records::find_sandbox(&paths, &req.pod_sandbox_id)?;
                    let id = containers::create(&paths, req)?;
                    events.send(&paths, &id, &sandbox.id, cri::ContainerEventType::ContainerCreatedEvent);
                    Ok(id)
                })
                .await
                    .map(|container_id| Response::new(cri::CreateContainerResponse { container_id }))
            }

            async fn start_container(
                &self,
                request: Request<cri::StartContainerRequest>,
            ) -> Result<Response<cri::StartContainerResponse>, Status> {
                let (paths, id, events) = (self.paths.clone(), request.into_inner().container_id, self.events.clone());
                blocking(move || {
                    let (sandbox, rec) = records::find_container(&paths, &id)?;
                    containers::start(&paths, &rec.id)?;
                    events.running(&rec.id);
                    events.send(&paths, &rec.id, &sandbox.id, cri::ContainerEventType::ContainerStartedEvent);
                    Ok(())
                })
                .await
                    .map(|()| Response::new(cri::StartContainerResponse {}))
            }

            async fn stop_container(
                &self,
                request: Request<cri::StopContainerRequest>,
            ) -> Result<Response<cri::StopContainerResponse>, Status> {
                let (paths, req, events) = (self.paths.clone(), request.into_inner(), self.events.clone());
                blocking(move || {
                    let (sandbox, rec) = records::find_container(&paths, &req.container_id)?;
                    containers::stop(&paths, &rec.id, req.timeout)?;
                    events.stopped(&paths, &rec.id, &sandbox.id);
                    Ok(())
                })
                .await
                    .map(|()| Response::new(cri::StopContainerResponse {}))
            }

            async fn remove_container(
                &self,
                request: Request<cri::RemoveContainerRequest>,
            ) -> Result<Response<cri::RemoveContainerResponse>, Status> {
                let (paths, id, events) = (self.paths.clone(), request.into_inner().container_id, self.events.clone());
                blocking(move || {
                    let all = records::containers(&paths)?;
                    let found = records::by_id(&all, &id, |(_, c)| &c.id)?.cloned();
                    containers::remove(&paths, &id)?;
                    if let Some((sandbox, rec)) = found {
                        events.stopped(&paths, &rec.id, &sandbox.id);
                        events.deleted(&paths, &rec.id, &sandbox.id);
                    }
                    Ok(())
                })
                .await
                    .map(|()| Response::new(cri::RemoveContainerResponse {}))
            }

            async fn container_status(
                &self,
                request: Request<cri::ContainerStatusRequest>,
            ) -> Result<Response<cri::ContainerStatusResponse>, Status> {
                let (paths, req) = (self.paths.clone(), request.into_inner());
                blocking(move || containers::status(&paths, &req.container_id, req.verbose))
                    .await
                    .map(Response::new)
            }

            async fn list_containers(
                &self,
                request: Request<cri::ListContainersRequest>,
            ) -> Result<Response<cri::ListContainersResponse>, Status> {
                let (paths, filter) = (self.paths.clone(), request.into_inner().filter);
                blocking(move || containers::list(&paths, filter))
                    .await
                    .map(|containers| Response::new(cri::ListContainersResponse { containers }))
            }

            async fn container_stats(
                &self,
                request: Request<cri::ContainerStatsRequest>,
            ) -> Result<Response<cri::ContainerStatsResponse>, Status> {
                let (paths, id) = (self.paths.clone(), request.into_inner().container_id);
                blocking(move || stats::container(&paths, &id))
                    .await
                    .map(|s| Response::new(cri::ContainerStatsResponse { stats: Some(s) }))
            }

            async fn list_container_stats(
                &self,
                request: Request<cri::ListContainerStatsRequest>,
            ) -> Result<Response<cri::ListContainerStatsResponse>, Status> {
                let (paths, filter) = (self.paths.clone(), request.into_inner().filter);
                blocking(move || stats::list_containers(&paths, filter))
                    .await
                    .map(|stats| Response::new(cri::ListContainerStatsResponse { stats }))
            }

            async fn pod_sandbox_stats(
                &self,
                request: Request<cri::PodSandboxStatsRequest>,
            ) -> Result<Response<cri::PodSandboxStatsResponse>, Status> {
                let (paths, id) = (self.paths.clone(), request.into_inner().pod_sandbox_id);
                blocking(move || stats::sandbox(&paths, &id))
                    .await
                    .map(|s| Response::new(cri::PodSandboxStatsResponse { stats: Some(s) }))
            }

            async fn list_pod_sandbox_stats(
                &self,
                request: Request<cri::ListPodSandboxStatsRequest>,
            ) -> Result<Response<cri::ListPodSandboxStatsResponse>, Status> {
                let (paths, filter) = (self.paths.clone(), request.into_inner().filter);
                blocking(move || stats::list_sandboxes(&paths, filter))
                    .await
                    .map(|stats| Response::new(cri::ListPodSandboxStatsResponse { stats }))
            }

            async fn update_container_resources(
                &self,
                request: Request<cri::UpdateContainerResourcesRequest>,
            ) -> Result<Response<cri::UpdateContainerResourcesResponse>, Status> {
                let (paths, req) = (self.paths.clone(), request.into_inner());
                blocking(move || containers::update_resources(&paths, &req.container_id, req.linux))
                    .await
                    .map(|()| Response::new(cri::UpdateContainerResourcesResponse {}))
            }

            async fn reopen_container_log(
                &self,
                request: Request<cri::ReopenContainerLogRequest>,
            ) -> Result<Response<cri::ReopenContainerLogResponse>, Status> {
                let (paths, id) = (self.paths.clone(), request.into_inner().container_id);
                blocking(move || containers::reopen_log(&paths, &id))
                    .await
                    .map(|()| Response::new(cri::ReopenContainerLogResponse {}))
            }

            async fn exec_sync(
                &self,
                request: Request<cri::ExecSyncRequest>,
            ) -> Result<Response<cri::ExecSyncResponse>, Status> {
                streaming::exec_sync(&self.streaming, &self.resolver, request.into_inner())
                    .await
                    .map(Response::new)
            }

            async fn exec(
                &self,
                request: Request<cri::ExecRequest>,
            ) -> Result<Response<cri::ExecResponse>, Status> {
                let (server, resolver) = (self.streaming.clone(), self.resolver.clone());
                let req = request.into_inner();
                blocking(move || streaming::exec(&server, &resolver, req))
                    .await
                    .map(Response::new)
            }

            async fn attach(
                &self,
                request: Request<cri::AttachRequest>,
            ) -> Result<Response<cri::AttachResponse>, Status> {
                let (server, resolver) = (self.streaming.clone(), self.resolver.clone());
                let req = request.into_inner();
                blocking(move || streaming::attach(&server, &resolver, req))
                    .await
                    .map(Response::new)
            }

            async fn port_forward(
                &self,
                request: Request<cri::PortForwardRequest>,
            ) -> Result<Response<cri::PortForwardResponse>, Status> {
                let (server, resolver) = (self.streaming.clone(), self.resolver.clone());
                let req = request.into_inner();
                blocking(move || streaming::port_forward(&server, &resolver, req))
                    .await
                    .map(Response::new)
            }

            type GetContainerEventsStream = EventStream;

            async fn get_container_events(
                &self,
                _request: Request<cri::GetEventsRequest>,
            ) -> Result<Response<Self::GetContainerEventsStream>, Status> {
                Ok(Response::new(self.events.subscribe()))
            }

            $(
                async fn $method(
                    &self,
                    _request: Request<cri::$req>,
                ) -> Result<Response<cri::$resp>, Status> {
                    Err(not_implemented($rpc))
                }
            )*
        }
    };
}

runtime_service! {
    checkpoint_container(CheckpointContainerRequest) -> CheckpointContainerResponse = "CheckpointContainer";
    list_metric_descriptors(ListMetricDescriptorsRequest) -> ListMetricDescriptorsResponse = "ListMetricDescriptors";
    list_pod_sandbox_metrics(ListPodSandboxMetricsRequest) -> ListPodSandboxMetricsResponse = "ListPodSandboxMetrics";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_cidrs_are_checked_and_named() {
        assert_eq!(
            pod_cidrs("10.244.0.0/24, fd00::/64").unwrap(),
            ["10.244.0.0/24", "fd00::/64"]
        );
        let e = pod_cidrs("10.244.0.0/33").unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("pod_cidr") && e.message().contains("10.244.0.0/33"));
        assert!(pod_cidrs("nonsense").is_err());
    }
}
