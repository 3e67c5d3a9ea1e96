//! The ConfigMaps and Secrets one pod refers to, read at one moment: what the kubelet's
//! ConfigMap and Secret managers hand its env and volume code. Pure lookups over what was
//! read, so that the code using them is tested without a store.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use super::{ObjectError, ObjectStore, StoredObject};

/// The resource names in the kubelet's not-found errors: its ConfigMap and Secret managers
/// use the singular, lower-case group resource [pkg/kubelet/configmap/configmap_manager.go,
/// pkg/kubelet/secret/secret_manager.go], so users see `configmap "x" not found`.
pub const KUBELET_CONFIG_MAP: &str = "configmap";
pub const KUBELET_SECRET: &str = "secret";

/// An object the pod refers to does not exist (`configmap "x" not found`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{resource} \"{name}\" not found")]
pub struct Missing {
    pub resource: &'static str,
    pub name: String,
}

/// The names of the objects something refers to, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refs {
    pub config_maps: BTreeSet<String>,
    pub secrets: BTreeSet<String>,
}

impl Refs {
    pub fn is_empty(&self) -> bool {
        self.config_maps.is_empty() && self.secrets.is_empty()
    }

    pub fn extend(&mut self, other: Refs) {
        self.config_maps.extend(other.config_maps);
        self.secrets.extend(other.secrets);
    }
}

/// The referred objects of one namespace, each present or missing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub namespace: String,
    config_maps: BTreeMap<String, ConfigMap>,
    secrets: BTreeMap<String, Secret>,
}

impl Snapshot {
    /// Reads every object `refs` names from the store.
    pub fn read(store: &ObjectStore, namespace: &str, refs: &Refs) -> Result<Self, ObjectError> {
        let mut snap = Snapshot::empty(namespace);
        for name in &refs.config_maps {
            if let Some(cm) = store.get::<ConfigMap>(namespace, name)? {
                snap.config_maps.insert(name.clone(), cm);
            }
        }
        for name in &refs.secrets {
            if let Some(s) = store.get::<Secret>(namespace, name)? {
                snap.secrets.insert(name.clone(), s);
            }
        }
        Ok(snap)
    }

    /// No objects: everything is missing.
    pub fn empty(namespace: &str) -> Self {
        Snapshot {
            namespace: namespace.to_string(),
            ..Default::default()
        }
    }

    /// Adds an object (tests, and callers that hold objects already).
    pub fn with_config_map(mut self, cm: ConfigMap) -> Self {
        let name = cm.metadata.name.clone().unwrap_or_default();
        self.config_maps.insert(name, cm);
        self
    }

    pub fn with_secret(mut self, s: Secret) -> Self {
        let name = s.metadata.name.clone().unwrap_or_default();
        self.secrets.insert(name, s);
        self
    }

    pub fn config_map(&self, name: &str) -> Result<&ConfigMap, Missing> {
        self.config_maps.get(name).ok_or_else(|| Missing {
            resource: KUBELET_CONFIG_MAP,
            name: name.to_string(),
        })
    }

    pub fn secret(&self, name: &str) -> Result<&Secret, Missing> {
        self.secrets.get(name).ok_or_else(|| Missing {
            resource: KUBELET_SECRET,
            name: name.to_string(),
        })
    }
}

impl ObjectStore {
    /// Makes the directory of kind `T` in `namespace` if it is missing (Secrets: 0700, as the
    /// store keeps them), so that it can be watched before any object exists.
    pub fn ensure_dir<T: StoredObject>(
        &self,
        namespace: &str,
    ) -> Result<std::path::PathBuf, ObjectError> {
        let dir = self.dir::<T>(namespace);
        self.make_dirs::<T>(&dir)?;
        Ok(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::PutMode;
    use crate::store::Paths;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn reads_present_objects_and_reports_missing_ones_as_the_kubelet() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::new(&Paths::under(dir.path()));
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some("a".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        store.put(cm, PutMode::Apply).unwrap();
        let refs = Refs {
            config_maps: ["a".to_string(), "b".to_string()].into(),
            secrets: ["s".to_string()].into(),
        };
        let snap = Snapshot::read(&store, "ns", &refs).unwrap();
        assert!(snap.config_map("a").is_ok());
        assert_eq!(
            snap.config_map("b").unwrap_err().to_string(),
            "configmap \"b\" not found"
        );
        assert_eq!(
            snap.secret("s").unwrap_err().to_string(),
            "secret \"s\" not found"
        );
    }

    #[test]
    fn ensure_dir_makes_private_secret_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::new(&Paths::under(dir.path()));
        let d = store.ensure_dir::<Secret>("ns").unwrap();
        assert_eq!(fs_mode(&d), 0o700);
        let d = store.ensure_dir::<ConfigMap>("ns").unwrap();
        assert!(d.is_dir());
    }

    fn fs_mode(p: &std::path::Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o777
    }
}
