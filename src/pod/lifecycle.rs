//! Creating and removing pods: what `apply` and `delete` do.

use k8s_openapi::api::core::v1::Pod;

use crate::store::Paths;

/// What `apply` did with one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// `pod/<name> created`
    Created { namespace: String, name: String, uid: String },
    /// The name is taken in its namespace; the running pod was left alone.
    AlreadyExists { namespace: String, name: String },
}

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("pods \"{name}\" not found in namespace \"{namespace}\"")]
    NotFound { namespace: String, name: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Other(String),
}

/// Records each (already validated) pod and starts its supervisor.
pub fn apply(_paths: &Paths, _pods: Vec<Pod>) -> Result<Vec<ApplyOutcome>, LifecycleError> {
    todo!("apply")
}

/// Stops a pod (stop signal, grace period, SIGKILL) and removes everything it holds.
/// `grace_period_seconds: None` uses the pod's terminationGracePeriodSeconds; `force` with 0
/// kills at once. Returns when the pod is gone.
pub fn delete(
    _paths: &Paths,
    _namespace: &str,
    _name: &str,
    _grace_period_seconds: Option<i64>,
    _force: bool,
) -> Result<(), LifecycleError> {
    todo!("delete")
}
