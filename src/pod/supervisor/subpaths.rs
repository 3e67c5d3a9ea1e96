//! The supervisor's side of subPaths: each volumeMount with a subPath (subPathExpr expanded by
//! the Spec builder) is made and bind-mounted on the host by `volume::subpath` before the
//! container is created. A refusal keeps the container waiting (CreateContainerConfigError)
//! with the kubelet's message, which names the volumeMount but not the host path; the details
//! go to the supervisor's log.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::Supervisor;
use crate::container::spec::{self, SpecError, SpecInput};
use crate::volume;
use crate::volume::subpath::{self, PrepareError, SubPath};

/// Why the subPaths of a container could not be made ready (a CreateContainerConfigError).
#[derive(Debug, thiserror::Error)]
pub(super) enum SubPathFailure {
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The kubelet's message, which names the volumeMount but not the host path.
    #[error("{message}")]
    Refused {
        message: String,
        #[source]
        source: PrepareError,
    },
}

impl Supervisor {
    /// The host path of every subPath of the container, by volumeMount index.
    pub(super) fn prepare_sub_paths(
        &self,
        input: &SpecInput,
    ) -> Result<BTreeMap<usize, PathBuf>, SubPathFailure> {
        let subs = spec::volume_sub_paths(input)?;
        let container = input.container.name.as_str();
        let mounts = input.container.volume_mounts.as_deref().unwrap_or_default();
        let mut sources = BTreeMap::new();
        for (index, (vm, sub)) in mounts.iter().zip(subs).enumerate() {
            let Some(sub) = sub else { continue };
            // A volume that was not set up is reported by the Spec builder.
            let Some(volume_dir) = input.volume_dirs.get(&vm.name) else {
                continue;
            };
            let target =
                volume::sub_path_target(&self.paths, &self.uid, &vm.name, container, index);
            let request = SubPath {
                volume_dir: &volume_dir.path,
                sub_path: &sub,
                target: &target,
            };
            match subpath::prepare(&request) {
                Ok(path) => {
                    sources.insert(index, path);
                }
                Err(e) => {
                    let cause = std::error::Error::source(&e)
                        .map(|c| c.to_string())
                        .unwrap_or_default();
                    tracing::warn!(%container, volume_mount = %vm.name, sub_path = %sub,
                        error = %e, %cause, "subPath refused");
                    return Err(SubPathFailure::Refused {
                        message: e.kubelet_message(&vm.name, container),
                        source: e,
                    });
                }
            }
        }
        Ok(sources)
    }
}
