//! Containers: a PodSpec container plus its image config becomes an OCI runtime Spec
//! (`spec`), and the executor (`runtime`) starts a process from that Spec alone.

pub mod env;
mod mounts;
pub mod names;
pub mod runtime;
pub mod spec;
mod user;
