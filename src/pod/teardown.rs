//! Releasing everything a pod holds on the host, from its recorded `PodState`.
//!
//! Used by the supervisor at the end of a delete ([`release_all`]) and when its pod finished
//! ([`release_host`]: the record, status and logs stay), and by `peapod delete` itself when the
//! supervisor is gone (killed, crashed, or exited after its pod finished): the state file is
//! written before each resource is created, so this can always find what to release. Every
//! step is idempotent and a failure in one step does not stop the others.

use std::fs;
use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cgroup::CgroupManager;
use crate::network;
use k8s_openapi::api::core::v1::Pod;

use crate::pod::record::{self, PodState, ProcessRef, CONTAINERS_DIR, POD_FILE};
use crate::store::{read_json, Paths};
use crate::volume::{VOLUMES_DIR, VOLUME_SUBPATHS_DIR};

#[derive(Debug, thiserror::Error)]
pub enum TeardownError {
    #[error("pod {pod}: could not release {what}: {message}")]
    Step {
        pod: String,
        what: String,
        message: String,
    },
}

/// Sends SIGKILL to a recorded process if it is still the one we started.
pub fn kill_recorded(p: &ProcessRef) {
    if p.is_alive() {
        let _ = kill(Pid::from_raw(p.pid), Signal::SIGKILL);
    }
}

/// Mount points in this mount namespace at or under any of `roots`, deepest first.
pub fn mounts_under(mountinfo: &str, roots: &[PathBuf]) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(crate::procfs::unescape_mount_path)
        .filter(|m| roots.iter().any(|r| m.starts_with(r)))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// Lazily unmounts everything mounted at or under `roots` (a pod's shm, memory-backed
/// emptyDirs).
pub fn unmount_under(roots: &[PathBuf]) -> Vec<String> {
    let mut errors = Vec::new();
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return vec!["cannot read /proc/self/mountinfo".into()];
    };
    for m in mounts_under(&info, roots) {
        if let Err(e) = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH) {
            if e != nix::errno::Errno::EINVAL && e != nix::errno::Errno::ENOENT {
                errors.push(format!("umount {}: {e}", m.display()));
            }
        }
    }
    errors
}

fn remove_dir(path: &Path) -> Option<String> {
    match fs::remove_dir_all(path) {
        Ok(()) => None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some(format!("remove {}: {e}", path.display())),
    }
}

/// The cgroups that are the pod's to kill and remove: its pod cgroup, or, in a CRI cgroup
/// parent (not peapod's), only the sandbox's and containers' cgroups peapod made there. A pod
/// cgroup outside peapod's own layout with no such record is left alone.
fn own_cgroups(state: &PodState) -> Vec<&PathBuf> {
    match &state.cgroup_parent {
        Some(parent) => parent.children.iter().collect(),
        None => state
            .pod_cgroup
            .iter()
            .filter(|p| CgroupManager::is_own_pod_path(p))
            .collect(),
    }
}

/// Releases what the pod holds on the host: its processes, network (veth, host ports and
/// their claim, IP), mounts and cgroups, then the contents of its volumes (once nothing is mounted there any more). The
/// record, the status and the logs stay. Returns the steps that failed (after trying all).
pub fn release_host(paths: &Paths, state: &PodState) -> Vec<String> {
    let uid = state.uid.as_str();
    let mut errors: Vec<String> = Vec::new();

    // 1. Processes: containers first, then the sandbox; the pod cgroup catches any we missed.
    for c in state.containers.values() {
        if let Some(p) = &c.process {
            kill_recorded(p);
        }
    }
    if let Some(p) = &state.sandbox.process {
        kill_recorded(p);
    }
    let cgroups = CgroupManager::new(PathBuf::from(crate::cgroup::CGROUP_ROOT));
    for cg in own_cgroups(state) {
        if cg.exists() {
            if let Err(e) = cgroups.kill_all(cg) {
                errors.push(format!("kill cgroup {}: {e}", cg.display()));
            }
        }
    }
    wait_gone(state);

    // 2. Network: the veth (its peer goes with it), host ports, then the IP.
    let veth = state
        .sandbox
        .veth
        .clone()
        .unwrap_or_else(|| network::veth_name(uid));
    if let Err(e) = network::detach(&veth) {
        errors.push(format!("veth {veth}: {e}"));
    }
    // The host port rules, then the claim on the ports (the bridge settings go back after the
    // last pod with host ports).
    if let Some(table) = &state.host_port_table {
        if let Err(e) = network::hostport::remove_table(table) {
            errors.push(e.to_string());
        }
    }
    if let Err(e) = network::hostport::release(paths, uid) {
        errors.push(e.to_string());
    }
    match network::NetworkConfig::load(paths) {
        Ok(cfg) => {
            if let Err(e) = network::Ipam::new(paths, &cfg).release(uid) {
                errors.push(format!("ip of {uid}: {e}"));
            }
        }
        Err(e) => errors.push(format!("network config: {e}")),
    }

    // 3. Mounts under the pod's directories.
    let run_dir = paths.pod_run_dir(uid);
    let lib_dir = paths.pod_dir(uid);
    errors.extend(unmount_under(&[run_dir.clone(), lib_dir.clone()]));

    // 4. cgroups (children first; the manager handles nesting), then the components of a
    // cgroup parent peapod had to make.
    for cg in own_cgroups(state) {
        if let Err(e) = cgroups.remove(cg) {
            errors.push(format!("cgroup {}: {e}", cg.display()));
        }
    }
    if let Some(parent) = &state.cgroup_parent {
        if let Err(e) = cgroups.remove_created(&parent.created) {
            errors.push(format!("cgroup parent: {e}"));
        }
    }

    // 5. What the volumes and instances held, only once nothing is mounted there: a mount
    // left behind must never have its contents removed.
    if errors.is_empty() {
        for dir in [VOLUMES_DIR, VOLUME_SUBPATHS_DIR, CONTAINERS_DIR] {
            errors.extend(remove_dir(&lib_dir.join(dir)));
        }
        // The instances' bundles (`Paths::instance_bundle`).
        errors.extend(remove_dir(&run_dir.join(CONTAINERS_DIR)));
    }
    errors
}

/// Ends a pod that no supervisor will end (a CRI sandbox a reboot took down: its supervisor
/// and processes are gone, what it held on the host is still recorded), as its supervisor's
/// end would have: what the state records is released and the state says `finished`; the
/// record, status and logs stay. Nothing to do for a finished pod or one whose supervisor
/// runs (it ends its pod itself).
pub fn finish_unsupervised(paths: &Paths, uid: &str) -> Result<(), TeardownError> {
    let file = paths.pod_dir(uid).join(record::STATE_FILE);
    let Ok(state) = read_json::<PodState>(&file) else {
        return Ok(());
    };
    if state.finished || state.supervisor.as_ref().is_some_and(ProcessRef::is_alive) {
        return Ok(());
    }
    let pod = format!("{}/{}", state.namespace, state.name);
    let failed = |message: String| TeardownError::Step {
        pod: pod.clone(),
        what: "resources".into(),
        message,
    };
    // A keeper still there (its supervisor killed in this boot) starts no other one now; one
    // it started meanwhile ends the pod itself, when asked through its control socket.
    if let Some(k) = &state.keeper {
        kill_recorded(k);
    }
    let Ok(mut state) = read_json::<PodState>(&file) else {
        return Ok(());
    };
    if state.supervisor.as_ref().is_some_and(ProcessRef::is_alive) {
        return Err(failed(
            "its supervisor was started again meanwhile; stop it again".into(),
        ));
    }
    let errors = release_host(paths, &state);
    if !errors.is_empty() {
        return Err(failed(errors.join("; ")));
    }
    state.host_released();
    state.supervisor = None;
    state.keeper = None;
    state.finished = true;
    crate::store::write_json_volatile(&file, &state).map_err(|e| failed(e.to_string()))
}

/// Releases every resource recorded in `state`, then removes the pod's directories.
/// Returns the steps that failed, if any (after trying all of them).
pub fn release_all(paths: &Paths, state: &PodState) -> Result<(), TeardownError> {
    let uid = state.uid.as_str();
    // The spec names the claims to release once the pod is gone.
    let pod: Option<Pod> = read_json(&paths.pod_dir(uid).join(POD_FILE)).ok();
    // The keeper first, so that it starts no supervisor for a pod going away; not when the
    // caller is the supervisor it keeps (it ends once that supervisor has).
    if let Some(k) = &state.keeper {
        if k.pid != nix::unistd::getppid().as_raw() {
            kill_recorded(k);
        }
    }
    let mut errors = release_host(paths, state);

    // Files: runtime dir, logs, and the record itself last so a retry can find it.
    let run_dir = paths.pod_run_dir(uid);
    let lib_dir = paths.pod_dir(uid);
    errors.extend(remove_dir(&run_dir));
    errors.extend(remove_dir(&paths.pod_log_dir(
        &state.namespace,
        &state.name,
        uid,
    )));
    if errors.is_empty() {
        // Renamed aside first: the pod leaves every listing at once (a watch never sees a
        // record losing its status file by file), and a teardown killed while removing it
        // leaves a `.gone-` directory that the next apply or teardown sweeps, never a pod
        // directory without its pod.json that nothing would find again.
        let gone = record::transient_pod_dir(paths, record::GONE_POD_PREFIX, uid);
        match fs::rename(&lib_dir, &gone) {
            Ok(()) => errors.extend(remove_dir(&gone)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => errors.push(format!("rename {}: {e}", lib_dir.display())),
        }
        record::sweep_transient(paths);
    }

    // Claims: the pod's ephemeral claims, and claims waiting for their last pod to go
    // (pvc-protection), now that this pod is no longer on record.
    if let Some(pod) = pod.as_ref().filter(|_| errors.is_empty()) {
        if let Err(e) = crate::volume::claim::release_for_pod(paths, pod) {
            errors.push(format!("claims: {e}"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(TeardownError::Step {
            pod: format!("{}/{}", state.namespace, state.name),
            what: "resources".into(),
            message: errors.join("; "),
        })
    }
}

/// Waits (briefly) until the recorded processes are gone, so that mounts and cgroups can go.
fn wait_gone(state: &PodState) {
    let procs: Vec<&ProcessRef> = state
        .containers
        .values()
        .filter_map(|c| c.process.as_ref())
        .chain(state.sandbox.process.as_ref())
        .collect();
    for _ in 0..200 {
        if procs.iter().all(|p| !p.is_alive()) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cgroup_parent_is_never_removed_only_peapods_cgroups_in_it() {
        let own = PodState {
            pod_cgroup: Some("/sys/fs/cgroup/peapod/pod-u1".into()),
            ..Default::default()
        };
        assert_eq!(
            own_cgroups(&own),
            [&PathBuf::from("/sys/fs/cgroup/peapod/pod-u1")]
        );
        let kubelets = PodState {
            pod_cgroup: Some("/sys/fs/cgroup/kubepods/pod1".into()),
            cgroup_parent: Some(crate::pod::record::ParentCgroups {
                created: Vec::new(),
                children: vec![
                    "/sys/fs/cgroup/kubepods/pod1/sandboxid".into(),
                    "/sys/fs/cgroup/kubepods/pod1/containerid".into(),
                ],
            }),
            ..Default::default()
        };
        let unrecorded = PodState {
            cgroup_parent: None,
            ..kubelets.clone()
        };
        assert!(own_cgroups(&unrecorded).is_empty(), "never the kubelet's");
        let cgroups = own_cgroups(&kubelets);
        assert_eq!(cgroups.len(), 2);
        assert!(cgroups
            .iter()
            .all(|c| c.parent() == Some(Path::new("/sys/fs/cgroup/kubepods/pod1"))));
    }

    #[test]
    fn finds_mounts_under_roots_deepest_first() {
        let info = "\
22 1 0:21 / / rw - ext4 /dev/vda rw
40 22 0:40 / /run/peapod/pods/u1/shm rw - tmpfs shm rw
41 22 0:41 / /var/lib/peapod/pods/u1/volumes/cache rw - tmpfs tmpfs rw
42 41 0:42 / /var/lib/peapod/pods/u1/volumes/cache/x\\040y rw - tmpfs tmpfs rw
43 22 0:43 / /run/peapod/pods/u2/shm rw - tmpfs shm rw
";
        let roots = vec![
            PathBuf::from("/run/peapod/pods/u1"),
            PathBuf::from("/var/lib/peapod/pods/u1"),
        ];
        let m = mounts_under(info, &roots);
        assert_eq!(
            m,
            vec![
                PathBuf::from("/var/lib/peapod/pods/u1/volumes/cache/x y"),
                PathBuf::from("/var/lib/peapod/pods/u1/volumes/cache"),
                PathBuf::from("/run/peapod/pods/u1/shm"),
            ]
        );
    }
}
