//! Pods: the records shared by the CLI and the supervisor, the status model, the restart policy
//! and back-off, and the per-pod supervisor process.

pub mod record;
pub mod lifecycle;
