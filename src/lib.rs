//! peapod: a Kubernetes pod runtime that works directly on Linux namespaces.
//!
//! The flow of one pod (see ARCHITECTURE.md):
//! `manifest` decodes and validates Pod YAML; `image` resolves each container's image to unpacked
//! layers in the content store; `pod::supervisor` (one process per pod) starts the `sandbox`
//! (pause process owning net/uts/ipc), wires it to the bridge through `network`, turns every
//! container into an OCI runtime Spec (`container::spec`) and starts it with `container::runtime`
//! inside its `cgroup`, captures its output with `logs`, and restarts it per restartPolicy.
//! `store` holds the on-disk layout shared by the CLI and the supervisors; `cli` prints.

pub mod cgroup;
pub mod cli;
pub mod container;
pub mod cri;
pub mod gofmt;
pub mod image;
pub mod logs;
pub mod manifest;
pub mod network;
pub mod node;
pub mod object;
pub mod pod;
pub mod probe;
pub mod procfs;
pub mod sandbox;
pub mod starttrace;
pub mod store;
pub mod tls;
pub mod volume;
