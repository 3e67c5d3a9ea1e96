//! The files of stored objects, and create/apply/update/delete under the store's lock.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{ObjectError, StoredObject};
use crate::pod::record::Event;
use crate::store::{
    read_json, write_atomic, write_atomic_private, write_json, FileLock, Paths, StoreError,
};

const LOCK_FILE: &str = ".lock";
/// The store-wide counter behind every resourceVersion.
const REVISION_FILE: &str = ".revision";
const SUFFIX: &str = ".json";

/// How [`ObjectStore::put`] treats an object that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// `create`: an existing object is an error (AlreadyExists).
    Create,
    /// `apply`: declarative; an existing object is updated to what was given.
    Apply,
}

/// What [`ObjectStore::put`] did, as kubectl prints it (`configmap/x created`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    Configured,
    Unchanged,
}

impl PutOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            PutOutcome::Created => "created",
            PutOutcome::Configured => "configured",
            PutOutcome::Unchanged => "unchanged",
        }
    }
}

/// The objects under `<lib>/objects`.
#[derive(Debug, Clone)]
pub struct ObjectStore {
    root: PathBuf,
}

impl ObjectStore {
    pub fn new(paths: &Paths) -> Self {
        ObjectStore {
            root: paths.objects(),
        }
    }

    /// The directory holding the objects of kind `T` in `namespace` (ignored for
    /// cluster-scoped kinds). It may not exist yet.
    pub fn dir<T: StoredObject>(&self, namespace: &str) -> PathBuf {
        let kind = self.root.join(T::URL_PATH_SEGMENT);
        if T::NAMESPACED {
            kind.join(namespace)
        } else {
            kind
        }
    }

    fn file<T: StoredObject>(&self, namespace: &str, name: &str) -> PathBuf {
        self.dir::<T>(namespace).join(format!("{name}{SUFFIX}"))
    }

    /// The object, or None.
    pub fn get<T: StoredObject>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<T>, ObjectError> {
        match read_json(&self.file::<T>(namespace, name)) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Every object of kind `T` in `namespace` (all namespaces when None), by namespace and name.
    pub fn list<T: StoredObject>(&self, namespace: Option<&str>) -> Result<Vec<T>, ObjectError> {
        let kind_dir = self.root.join(T::URL_PATH_SEGMENT);
        let dirs: Vec<PathBuf> = match (T::NAMESPACED, namespace) {
            (false, _) => vec![kind_dir],
            (true, Some(ns)) => vec![kind_dir.join(ns)],
            (true, None) => sorted_entries(&kind_dir)?
                .into_iter()
                .filter(|p| p.is_dir())
                .collect(),
        };
        let mut out = Vec::new();
        for dir in dirs {
            for file in sorted_entries(&dir)? {
                let is_object = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(SUFFIX) && !n.starts_with('.'));
                if !is_object {
                    continue;
                }
                match read_json(&file) {
                    Ok(v) => out.push(v),
                    // Deleted while we listed.
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(out)
    }

    /// Creates or (with [`PutMode::Apply`]) updates an object. On update the uid and creation
    /// time are kept, the API server's update rules are checked, and the resourceVersion only
    /// moves when something changed.
    pub fn put<T: StoredObject>(
        &self,
        object: T,
        mode: PutMode,
    ) -> Result<(T, PutOutcome), ObjectError> {
        let _lock = self.lock()?;
        self.put_with_lock_held(object, mode)
    }

    /// [`ObjectStore::put`] (create) for a caller that holds [`ObjectStore::lock`].
    pub fn put_locked<T: StoredObject>(&self, object: T) -> Result<T, ObjectError> {
        self.put_with_lock_held(object, PutMode::Create)
            .map(|(o, _)| o)
    }

    /// What [`ObjectStore::put`] would do, done to nothing (a dry run): the outcome, or the
    /// refusal. Reads the stored object without the lock and writes nothing, the lock file
    /// included.
    pub fn put_dry_run<T: StoredObject>(
        &self,
        object: T,
        mode: PutMode,
    ) -> Result<PutOutcome, ObjectError> {
        self.decide(object, mode).map(|(_, outcome)| outcome)
    }

    fn put_with_lock_held<T: StoredObject>(
        &self,
        object: T,
        mode: PutMode,
    ) -> Result<(T, PutOutcome), ObjectError> {
        let (mut object, outcome) = self.decide(object, mode)?;
        if outcome == PutOutcome::Unchanged {
            return Ok((object, outcome));
        }
        object.metadata_mut().resource_version = Some(self.next_revision()?);
        self.write(&object)?;
        Ok((object, outcome))
    }

    /// The object as `put` would store it (without its new resourceVersion) and the outcome;
    /// an unchanged object is the stored one.
    fn decide<T: StoredObject>(
        &self,
        mut object: T,
        mode: PutMode,
    ) -> Result<(T, PutOutcome), ObjectError> {
        let (namespace, name) = names(&object);
        let existing: Option<T> = self.get(&namespace, &name)?;
        let outcome = match existing {
            Some(_) if mode == PutMode::Create => {
                return Err(ObjectError::AlreadyExists {
                    resource: T::URL_PATH_SEGMENT.to_string(),
                    name,
                })
            }
            Some(old) => {
                let causes = T::update_causes(&old, &object);
                if !causes.is_empty() {
                    return Err(ObjectError::Invalid {
                        kind: T::KIND.to_string(),
                        name,
                        causes,
                    });
                }
                object.keep_server_fields(&old);
                let meta = object.metadata_mut();
                let old_meta = old.metadata();
                meta.uid = old_meta.uid.clone();
                meta.creation_timestamp = old_meta.creation_timestamp.clone();
                meta.resource_version = old_meta.resource_version.clone();
                meta.finalizers = old_meta.finalizers.clone();
                meta.deletion_timestamp = old_meta.deletion_timestamp.clone();
                if object == old {
                    return Ok((old, PutOutcome::Unchanged));
                }
                PutOutcome::Configured
            }
            None => {
                object.on_create();
                let meta = object.metadata_mut();
                meta.uid = Some(uuid::Uuid::new_v4().to_string());
                meta.creation_timestamp = Some(Time(now()));
                meta.deletion_timestamp = None;
                PutOutcome::Created
            }
        };
        Ok((object, outcome))
    }

    /// Read-modify-write of an existing object under the lock: `change` returns whether it
    /// changed anything; the resourceVersion moves only then. None when there is no object.
    pub fn update<T: StoredObject>(
        &self,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut T) -> bool,
    ) -> Result<Option<T>, ObjectError> {
        let _lock = self.lock()?;
        self.update_locked(namespace, name, change)
    }

    /// [`ObjectStore::update`] for a caller that holds [`ObjectStore::lock`].
    pub fn update_locked<T: StoredObject>(
        &self,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut T) -> bool,
    ) -> Result<Option<T>, ObjectError> {
        let Some(mut object) = self.get::<T>(namespace, name)? else {
            return Ok(None);
        };
        if change(&mut object) {
            object.metadata_mut().resource_version = Some(self.next_revision()?);
            self.write(&object)?;
        }
        Ok(Some(object))
    }

    /// Removes an object; returns it, or None when there was none.
    pub fn remove<T: StoredObject>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<T>, ObjectError> {
        let _lock = self.lock()?;
        self.remove_locked(namespace, name)
    }

    /// [`ObjectStore::remove`] for a caller that holds [`ObjectStore::lock`].
    pub fn remove_locked<T: StoredObject>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<T>, ObjectError> {
        let Some(object) = self.get::<T>(namespace, name)? else {
            return Ok(None);
        };
        let file = self.file::<T>(namespace, name);
        fs::remove_file(&file).map_err(|e| StoreError::io(&file, e))?;
        let events = self.events_file::<T>(namespace, name);
        if let Err(e) = fs::remove_file(&events) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(StoreError::io(&events, e).into());
            }
        }
        Ok(Some(object))
    }

    /// The events of one object (a claim's provisioning, ...), oldest first.
    pub fn events<T: StoredObject>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<Event>, ObjectError> {
        match read_json(&self.events_file::<T>(namespace, name)) {
            Ok(v) => Ok(v),
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Records an event about an object, deduplicated as pod events are. Takes no lock (it
    /// may run under the store's lock): two writers at once may lose a count, never a file.
    pub fn record_event<T: StoredObject>(
        &self,
        namespace: &str,
        name: &str,
        type_: &str,
        reason: &str,
        message: String,
    ) -> Result<(), ObjectError> {
        let mut list = self.events::<T>(namespace, name)?;
        let now = now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        crate::pod::events::record(&mut list, type_, reason, "", message, &now);
        write_json(&self.events_file::<T>(namespace, name), &list)?;
        Ok(())
    }

    /// Beside the object, hidden from listings: `.<name>.events.json`.
    fn events_file<T: StoredObject>(&self, namespace: &str, name: &str) -> PathBuf {
        self.dir::<T>(namespace)
            .join(format!(".{name}.events{SUFFIX}"))
    }

    /// The store's writer lock, for callers that read and then write several objects.
    pub fn lock(&self) -> Result<FileLock, ObjectError> {
        Ok(FileLock::exclusive(&self.root.join(LOCK_FILE))?)
    }

    fn next_revision(&self) -> Result<String, ObjectError> {
        let path = self.root.join(REVISION_FILE);
        let current: u64 = match fs::read_to_string(&path) {
            Ok(text) => text.trim().parse().unwrap_or(0),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(StoreError::io(&path, e).into()),
        };
        let next = current + 1;
        write_atomic(&path, next.to_string().as_bytes())?;
        Ok(next.to_string())
    }

    fn write<T: StoredObject>(&self, object: &T) -> Result<(), ObjectError> {
        let (namespace, name) = names(object);
        let path = self.file::<T>(&namespace, &name);
        let data = serde_json::to_vec_pretty(object).map_err(|source| StoreError::Json {
            path: path.clone(),
            source,
        })?;
        if T::PRIVATE {
            if let Some(dir) = path.parent() {
                private_dirs(&self.root, dir)?;
            }
            write_atomic_private(&path, &data)?;
        } else {
            write_atomic(&path, &data)?;
        }
        Ok(())
    }

    /// Makes `dir` (a kind's directory) and its parents, 0700 for private kinds.
    pub(super) fn make_dirs<T: StoredObject>(&self, dir: &Path) -> Result<(), StoreError> {
        if T::PRIVATE {
            return private_dirs(&self.root, dir);
        }
        fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))
    }
}

fn names<T: StoredObject>(object: &T) -> (String, String) {
    let meta = object.metadata();
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

fn now() -> Timestamp {
    let t = Timestamp::now();
    t.round(jiff::Unit::Second).unwrap_or(t)
}

/// Makes the directories between the store root and `dir` (included) with mode 0700.
fn private_dirs(root: &Path, dir: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    for d in dir
        .ancestors()
        .take_while(|d| d.starts_with(root) && *d != root)
    {
        fs::set_permissions(d, fs::Permissions::from_mode(0o700))
            .map_err(|e| StoreError::io(d, e))?;
    }
    Ok(())
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        out.push(entry.map_err(|e| StoreError::io(dir, e))?.path());
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;
    use std::os::unix::fs::MetadataExt;

    fn cm(name: &str, value: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([("k".to_string(), value.to_string())])),
            ..Default::default()
        }
    }

    #[test]
    fn create_apply_unchanged_and_configured() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::new(&Paths::under(dir.path()));
        let (first, outcome) = store.put(cm("a", "1"), PutMode::Apply).unwrap();
        assert_eq!(outcome, PutOutcome::Created);
        let uid = first.metadata.uid.clone().unwrap();
        let (same, outcome) = store.put(cm("a", "1"), PutMode::Apply).unwrap();
        assert_eq!(outcome, PutOutcome::Unchanged);
        assert_eq!(
            same.metadata.resource_version,
            first.metadata.resource_version
        );
        let (changed, outcome) = store.put(cm("a", "2"), PutMode::Apply).unwrap();
        assert_eq!(outcome, PutOutcome::Configured);
        assert_eq!(changed.metadata.uid.as_deref(), Some(uid.as_str()));
        assert_ne!(
            changed.metadata.resource_version,
            first.metadata.resource_version
        );
        let err = store.put(cm("a", "3"), PutMode::Create).unwrap_err();
        assert_eq!(err.to_string(), "configmaps \"a\" already exists");
        let got: ConfigMap = store.get("default", "a").unwrap().unwrap();
        assert_eq!(got.data.unwrap()["k"], "2");
        assert_eq!(store.list::<ConfigMap>(None).unwrap().len(), 1);
        assert!(store.remove::<ConfigMap>("default", "a").unwrap().is_some());
        assert!(store.get::<ConfigMap>("default", "a").unwrap().is_none());
    }

    #[test]
    fn immutable_objects_refuse_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::new(&Paths::under(dir.path()));
        let mut a = cm("a", "1");
        a.immutable = Some(true);
        store.put(a.clone(), PutMode::Apply).unwrap();
        let mut b = cm("a", "2");
        b.immutable = Some(true);
        let err = store.put(b, PutMode::Apply).unwrap_err().to_string();
        assert_eq!(
            err,
            "ConfigMap \"a\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
        );
        assert_eq!(
            store.put(a, PutMode::Apply).unwrap().1,
            PutOutcome::Unchanged
        );
    }

    #[test]
    fn secrets_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::new(&Paths::under(dir.path()));
        let s = Secret {
            metadata: ObjectMeta {
                name: Some("s".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                "k".to_string(),
                ByteString(b"v".to_vec()),
            )])),
            ..Default::default()
        };
        store.put(s, PutMode::Apply).unwrap();
        let file = store.dir::<Secret>("default").join("s.json");
        assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            fs::metadata(store.dir::<Secret>("default")).unwrap().mode() & 0o777,
            0o700
        );
    }
}
