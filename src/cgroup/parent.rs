//! A CRI sandbox's `linux.cgroup_parent`: the pod cgroup the kubelet made (cgroupfs driver:
//! `/kubepods/burstable/pod<uid>`, usually with the pod-level limits already set on it), under
//! which peapod puts the sandbox's pause process and each container, named by their CRI IDs as
//! containerd does [internal/cri/server getCgroupsPath: `<parent>/<id>`].
//!
//! The parent is not peapod's: it only makes the components that are missing (and records
//! them), enables the controllers its own cgroups need in `cgroup.subtree_control` along the
//! path, never writes a limit on the parent, and removes only what it made: its own cgroups,
//! then the components it created, innermost first, each only once nothing is left in it.

use std::io;
use std::path::{Component, Path, PathBuf};

use super::{
    io_err, read_file, remove_one, write_file, CgroupError, CgroupManager, FILE_SUBTREE_CONTROL,
    REQUIRED_CONTROLLERS,
};

/// Why a `cgroup_parent` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParentError {
    #[error(
        "cgroup_parent {0:?} is a systemd slice, but this runtime's cgroup driver is cgroupfs \
         (RuntimeConfig): run the kubelet with --cgroup-driver=cgroupfs (cgroupDriver: cgroupfs)"
    )]
    SystemdSlice(String),
    #[error(
        "cgroup_parent {0:?} is not an absolute cgroupfs path (such as \
         /kubepods/burstable/pod<uid>)"
    )]
    NotAbsolute(String),
    #[error("cgroup_parent {0:?} has a \".\" or \"..\" component")]
    Relative(String),
}

/// The kubelet's `cgroup_parent` as a path relative to the cgroup2 root; None where peapod
/// keeps its own layout: an empty parent (the kubelet with `--cgroups-per-qos=false` gives
/// none) or the hierarchy's root itself. A systemd slice (a last component ending in
/// `.slice`, as containerd tells them apart) is refused: peapod reports the cgroupfs driver.
pub fn parse(parent: &str) -> Result<Option<PathBuf>, ParentError> {
    if parent.is_empty() {
        return Ok(None);
    }
    let path = Path::new(parent);
    if path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(".slice"))
    {
        return Err(ParentError::SystemdSlice(parent.to_string()));
    }
    if !path.is_absolute() {
        return Err(ParentError::NotAbsolute(parent.to_string()));
    }
    let mut rel = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(name) => rel.push(name),
            _ => return Err(ParentError::Relative(parent.to_string())),
        }
    }
    Ok((!rel.as_os_str().is_empty()).then_some(rel))
}

/// The components of `<root>/<parent>` from the outermost down, each as a full path.
fn components(root: &Path, parent: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut at = root.to_path_buf();
    for c in parent.components() {
        at.push(c);
        out.push(at.clone());
    }
    out
}

/// The components of `<root>/<parent>` that do not exist, outermost first: what peapod will
/// make (and record before it makes them).
pub fn missing(root: &Path, parent: &Path, exists: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    components(root, parent)
        .into_iter()
        .filter(|p| !exists(p))
        .collect()
}

/// The controllers of [`REQUIRED_CONTROLLERS`] not in `subtree_control` yet, as written to it.
fn to_enable(subtree_control: &str) -> Option<String> {
    let on: Vec<&str> = subtree_control.split_whitespace().collect();
    let add: Vec<String> = REQUIRED_CONTROLLERS
        .iter()
        .filter(|c| !on.contains(c))
        .map(|c| format!("+{c}"))
        .collect();
    (!add.is_empty()).then(|| add.join(" "))
}

impl CgroupManager {
    /// `<root>/<parent>`: the pod cgroup of a CRI pod with a cgroup parent.
    pub fn parent_path(&self, parent: &Path) -> PathBuf {
        self.root.join(parent)
    }

    /// `<root>/<parent>/<id>`: the cgroup of the sandbox or container with CRI ID `id`.
    pub fn child_path(&self, parent: &Path, id: &str) -> PathBuf {
        self.parent_path(parent).join(id)
    }

    /// Makes the missing components of `<root>/<parent>` and enables cpu, memory and pids for
    /// the cgroups peapod puts in it (in the root and each component, where they are not on
    /// yet). Returns the components it made; one that appeared meanwhile (EEXIST) is not
    /// peapod's. Writes no limit: the pod-level ones are the kubelet's.
    pub fn create_parent(&self, parent: &Path) -> Result<Vec<PathBuf>, CgroupError> {
        let mut made = Vec::new();
        for dir in components(&self.root, parent) {
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    tracing::info!(path = %dir.display(), "created a missing component of the cgroup parent");
                    made.push(dir);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(&dir)(e)),
            }
        }
        if self.controllers {
            let mut dirs = vec![self.root.clone()];
            dirs.extend(components(&self.root, parent));
            for dir in dirs {
                let on = match read_file(&dir, FILE_SUBTREE_CONTROL) {
                    Ok(on) => on,
                    // Only a directory that mimics cgroupfs (tests) lacks the file.
                    Err(CgroupError::Io { source, .. })
                        if source.kind() == io::ErrorKind::NotFound =>
                    {
                        String::new()
                    }
                    Err(e) => return Err(e),
                };
                if let Some(add) = to_enable(&on) {
                    write_file(&dir, FILE_SUBTREE_CONTROL, &add)?;
                }
            }
        }
        Ok(made)
    }

    /// Removes the components of a parent that peapod made (`created`), innermost first, and
    /// stops at the first one still in use (a cgroup in it: another sandbox of the same pod,
    /// or the kubelet's): that one and those above it stay. A missing one is fine.
    pub fn remove_created(&self, created: &[PathBuf]) -> Result<(), CgroupError> {
        let mut dirs = created.to_vec();
        dirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for dir in dirs {
            if !dir.starts_with(&self.root) || dir == self.root {
                continue;
            }
            if has_child_dir(&dir)? {
                tracing::info!(path = %dir.display(), "cgroup parent still in use; left in place");
                return Ok(());
            }
            // Two tries: a directory that mimics cgroupfs (tests) loses its control files on the first.
            match remove_one(&dir, 2) {
                Ok(()) => {}
                Err(CgroupError::Busy { .. }) => {
                    tracing::info!(path = %dir.display(), "cgroup parent still in use; left in place");
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn has_child_dir(dir: &Path) -> Result<bool, CgroupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        if entry.file_type().map_err(io_err(dir))?.is_dir() {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubelets_cgroupfs_names_are_taken_and_the_rest_refused() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("/"), Ok(None), "the root: peapod's own layout");
        assert_eq!(
            parse("/kubepods/burstable/pod1234"),
            Ok(Some(PathBuf::from("kubepods/burstable/pod1234")))
        );
        assert_eq!(
            parse("/kubepods//pod1234/"),
            Ok(Some(PathBuf::from("kubepods/pod1234")))
        );
        let slice = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice";
        let e = parse(slice).unwrap_err();
        assert_eq!(e, ParentError::SystemdSlice(slice.into()));
        assert!(e.to_string().contains("--cgroup-driver=cgroupfs"), "{e}");
        assert!(matches!(
            parse("kubepods-besteffort.slice"),
            Err(ParentError::SystemdSlice(_))
        ));
        // As containerd: only the last component tells a slice; a cgroupfs path through a
        // systemd-made directory is a cgroupfs path.
        assert_eq!(
            parse("/system.slice/pods/pod1"),
            Ok(Some(PathBuf::from("system.slice/pods/pod1")))
        );
        assert!(matches!(
            parse("kubepods/pod1"),
            Err(ParentError::NotAbsolute(_))
        ));
        assert!(matches!(
            parse("/kubepods/../etc"),
            Err(ParentError::Relative(_))
        ));
        // Path components drop a "." inside the path.
        assert_eq!(
            parse("/kubepods/./pod1"),
            Ok(Some(PathBuf::from("kubepods/pod1")))
        );
    }

    #[test]
    fn only_the_missing_components_are_made() {
        let root = Path::new("/sys/fs/cgroup");
        let parent = Path::new("kubepods/burstable/pod1");
        let have = |p: &Path| p == Path::new("/sys/fs/cgroup/kubepods");
        assert_eq!(
            missing(root, parent, have),
            [
                PathBuf::from("/sys/fs/cgroup/kubepods/burstable"),
                PathBuf::from("/sys/fs/cgroup/kubepods/burstable/pod1")
            ]
        );
        assert!(missing(root, parent, |_| true).is_empty());
        assert_eq!(missing(root, parent, |_| false).len(), 3);
    }

    /// A kubelet-made `kubepods` with its controllers on and a limit of its own; peapod makes
    /// `burstable/pod1` below it, enables what is missing, and removes only what it made, once
    /// empty.
    #[test]
    fn a_parent_is_completed_and_only_its_new_components_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::write(root.join(FILE_SUBTREE_CONTROL), "cpu\n").unwrap();
        let kubepods = root.join("kubepods");
        std::fs::create_dir(&kubepods).unwrap();
        std::fs::write(
            kubepods.join(FILE_SUBTREE_CONTROL),
            "cpuset cpu memory pids\n",
        )
        .unwrap();
        std::fs::write(kubepods.join("memory.max"), "1073741824\n").unwrap();
        let m = CgroupManager::new(root.to_path_buf());
        let parent = Path::new("kubepods/burstable/pod1");
        let made = m.create_parent(parent).unwrap();
        let (burstable, pod) = (kubepods.join("burstable"), kubepods.join("burstable/pod1"));
        assert_eq!(made, [burstable.clone(), pod.clone()]);
        assert_eq!(m.parent_path(parent), pod);
        assert_eq!(m.child_path(parent, "abc"), pod.join("abc"));
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&root.join(FILE_SUBTREE_CONTROL)), "+memory +pids");
        assert_eq!(
            read(&kubepods.join(FILE_SUBTREE_CONTROL)),
            "cpuset cpu memory pids\n"
        );
        assert_eq!(read(&pod.join(FILE_SUBTREE_CONTROL)), "+cpu +memory +pids");
        assert_eq!(
            read(&kubepods.join("memory.max")),
            "1073741824\n",
            "not peapod's"
        );
        // Made again (a sandbox retry): nothing new is peapod's.
        assert!(m.create_parent(parent).unwrap().is_empty());

        // Another sandbox's cgroup in it: nothing goes.
        std::fs::create_dir(pod.join("other")).unwrap();
        m.remove_created(&made).unwrap();
        assert!(pod.exists() && burstable.exists());
        std::fs::remove_dir(pod.join("other")).unwrap();
        m.remove_created(&made).unwrap();
        assert!(!burstable.exists(), "peapod's components are gone");
        assert!(kubepods.exists(), "the kubelet's stays");
        m.remove_created(&made).unwrap();
    }

    #[test]
    fn controllers_are_enabled_only_where_missing() {
        assert_eq!(to_enable("cpu memory pids io"), None);
        assert_eq!(to_enable("cpuset memory").as_deref(), Some("+cpu +pids"));
        assert_eq!(to_enable("").as_deref(), Some("+cpu +memory +pids"));
    }
}
