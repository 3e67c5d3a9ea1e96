//! Pods: the records shared by the CLI and the supervisor, the status model, the lifecycle model
//! (`machine`: restart policy, init order, sidecars, termination) and back-off, the node's admission (sysctls, AppArmor), the per-pod supervisor process, and creating and removing pods.

pub mod admission;
pub mod adopt;
pub mod attach;
pub mod backoff;
pub mod control;
pub mod events;
pub mod image_use;
pub mod keeper;
pub mod lifecycle;
pub mod machine;
pub mod metadata;
pub mod model;
pub mod phase;
pub mod reboot;
pub mod record;
pub mod spawner;
pub mod supervisor;
pub mod teardown;
pub mod update;
