//! What the node agent does first when it starts: bring back the pods a reboot stopped, as a
//! kubelet does when its node comes up, and drop what the earlier boot left of pods that are
//! gone.
//!
//! For each pod on record (`pod::reboot::after_boot` decides): one whose supervisor is gone
//! and whose recorded boot is not this one gets a supervisor again, which re-creates its
//! sandbox and restarts its containers per restartPolicy (`pod::supervisor::reboot`), except a
//! CRI sandbox, which stays down with its record settled to what the reboot left
//! (`pod::reboot::settle_cri`: NOTREADY, its running containers EXITED 255 `Unknown`) for the
//! kubelet to stop, remove and re-create, as containerd leaves its sandboxes; one being
//! deleted has its delete finished; finished pods and pods whose supervisor runs (the
//! agent itself was restarted) are left alone. A pod whose supervisor was killed in this same
//! boot is left alone too: its containers may still run, and taking them over is the matter of
//! supervisor re-adoption, not of this recovery; it stays `Unknown` as before.
//!
//! Then the leftovers: IP allocations (runtime state, `<run>/network/ipam.json`, gone with a
//! reboot, but a crash within a boot, or an earlier version's file on the disk, can leave
//! some) and runtime directories (`/run/peapod/pods/<uid>`) whose pod is no longer on record.
//! Host port claims of such pods are dropped by the next claim already
//! (`network::hostport::claim`).

use std::collections::BTreeSet;

use super::NodeError;
use crate::pod::lifecycle;
use crate::pod::reboot::{after_boot, settle_cri, AfterBoot, Leave, PodFacts, Settled};
use crate::pod::record;
use crate::store::{write_json_volatile, Paths, StoreError};

/// What the recovery did, for the log and `--once`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// `namespace/name` of the pods started again.
    pub recovered: Vec<String>,
    /// CRI sandboxes left down for their client (the kubelet) to re-create.
    pub kept_down: Vec<String>,
    /// Pods whose delete was finished.
    pub deleted: Vec<String>,
    /// Pods whose supervisor died in this boot (left `Unknown`).
    pub lost_this_boot: Vec<String>,
    /// IP allocations released: their pod is gone.
    pub released_ips: Vec<String>,
    pub failed: Vec<String>,
}

/// Recovers the pods of an earlier boot and drops the leftovers of gone ones.
pub fn recover(paths: &Paths) -> Result<RecoveryReport, NodeError> {
    let boot = crate::procfs::boot_id();
    let mut report = RecoveryReport::default();
    for uid in record::list_uids(paths)? {
        // One unreadable record must not keep the others down.
        let rec = match record::PodRecord::load(paths, &uid) {
            Ok(rec) => rec,
            Err(e) if e.is_not_found() => continue,
            Err(e) => {
                tracing::error!(%uid, error = %e, "cannot read the pod's record; not recovering it");
                report.failed.push(format!("{uid}: {e}"));
                continue;
            }
        };
        let key = format!("{}/{}", rec.namespace(), rec.name());
        let facts = PodFacts {
            state: rec.state.as_ref(),
            supervisor_alive: rec
                .state
                .as_ref()
                .and_then(|s| s.supervisor.as_ref())
                .is_some_and(|p| p.is_alive()),
            run_dir_exists: paths.pod_run_dir(&uid).exists(),
            deleting: rec.deleting.is_some(),
            cri: crate::pod::control::is_cri(&rec.pod),
        };
        match after_boot(&facts, &boot) {
            AfterBoot::Recover => {
                tracing::info!(pod = %key, "pod lost to a reboot: starting it again");
                match lifecycle::restart_supervisor(paths, &uid) {
                    Ok(()) => report.recovered.push(key),
                    Err(e) => {
                        tracing::error!(pod = %key, error = %e, "cannot recover the pod");
                        report.failed.push(format!("{key}: {e}"));
                    }
                }
            }
            AfterBoot::KeepDown => {
                let Some(state) = rec.state.as_ref() else {
                    continue;
                };
                let Some(settled) = settle_cri(state, rec.status.as_ref(), jiff::Timestamp::now())
                else {
                    continue;
                };
                tracing::info!(pod = %key, lost = ?settled.lost, "CRI sandbox lost to a reboot: left NOTREADY for its client to re-create");
                match save_settled(paths, &uid, &settled) {
                    Ok(()) => report.kept_down.push(key),
                    Err(e) => {
                        tracing::error!(pod = %key, error = %e, "cannot record what the reboot left of the CRI sandbox");
                        report.failed.push(format!("{key}: {e}"));
                    }
                }
            }
            AfterBoot::FinishDelete => {
                tracing::info!(pod = %key, "pod deleted before a reboot: finishing its delete");
                let Some(state) = rec.state.as_ref() else {
                    continue;
                };
                match in_child(|| crate::pod::teardown::release_all(paths, state)) {
                    Ok(()) => report.deleted.push(key),
                    Err(e) => {
                        tracing::error!(pod = %key, error = %e, "cannot finish the pod's delete");
                        report.failed.push(format!("{key}: {e}"));
                    }
                }
            }
            AfterBoot::Leave(Leave::SupervisorLostThisBoot) => {
                tracing::warn!(pod = %key, "the pod's supervisor is gone but the host did not reboot: not restarting it (its containers may run)");
                report.lost_this_boot.push(key);
            }
            AfterBoot::Leave(_) => {}
        }
    }
    sweep_leftovers(paths, &mut report)?;
    Ok(report)
}

/// Writes a settled CRI sandbox's record: state first (what a teardown reads), then status.
fn save_settled(paths: &Paths, uid: &str, settled: &Settled) -> Result<(), StoreError> {
    let dir = paths.pod_dir(uid);
    write_json_volatile(&dir.join(record::STATE_FILE), &settled.state)?;
    if let Some(status) = &settled.status {
        write_json_volatile(&dir.join(record::STATUS_FILE), status)?;
    }
    Ok(())
}

/// Runs a teardown in a child process and waits for it. The teardown talks netlink through a
/// tokio runtime, which leaves process-wide state behind (its signal pipe); a supervisor forked
/// from the agent afterwards would inherit that state with the pipe's descriptors closed, and
/// its own netlink runtime would then fail (EINVAL, EBADF). So the agent keeps that state out
/// of its own process. A caller with threads forks no supervisor (they are re-executed) and
/// may run it in place.
pub(super) fn in_child<E: std::fmt::Display>(
    f: impl FnOnce() -> Result<(), E>,
) -> Result<(), String> {
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};
    if crate::procfs::thread_count() != 1 {
        return f().map_err(|e| e.to_string());
    }
    // SAFETY: this process has a single thread (checked above), so the child may run ordinary
    // code; it leaves through _exit and never returns into the agent.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let code = match f() {
                Ok(()) => 0,
                Err(e) => {
                    tracing::error!(error = %e, "teardown failed");
                    1
                }
            };
            // SAFETY: leave without running the agent's destructors.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, 0)) => Ok(()),
            Ok(other) => Err(format!(
                "the teardown process ended with {other:?}; see the agent's log"
            )),
            Err(e) => Err(format!("wait for the teardown process: {e}")),
        },
        Err(e) => Err(format!("fork the teardown process: {e}")),
    }
}

/// IP allocations and runtime directories of pods no longer on record.
fn sweep_leftovers(paths: &Paths, report: &mut RecoveryReport) -> Result<(), NodeError> {
    let on_record: BTreeSet<String> = record::list_uids(paths)?.into_iter().collect();
    match crate::network::NetworkConfig::load(paths) {
        Ok(cfg) => match crate::network::Ipam::new(paths, &cfg)
            .release_unowned(|owner| on_record.contains(owner))
        {
            Ok(gone) => {
                for (owner, ip) in gone {
                    tracing::info!(%owner, %ip, "released the IP of a pod no longer on record");
                    report.released_ips.push(format!("{ip} ({owner})"));
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot sweep the IP allocations"),
        },
        Err(e) => tracing::warn!(error = %e, "cannot read the network config"),
    }
    let Ok(entries) = std::fs::read_dir(paths.run_pods()) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let uid = entry.file_name().to_string_lossy().into_owned();
        if on_record.contains(&uid) {
            continue;
        }
        let dir = entry.path();
        let failed = crate::pod::teardown::unmount_under(std::slice::from_ref(&dir));
        if !failed.is_empty() {
            tracing::warn!(dir = %dir.display(), errors = ?failed, "cannot unmount under a stale runtime directory");
            continue;
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {
                tracing::info!(dir = %dir.display(), "removed the runtime directory of a pod no longer on record")
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a stale runtime directory")
            }
        }
    }
    Ok(())
}
