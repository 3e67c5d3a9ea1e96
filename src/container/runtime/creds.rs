//! The process attributes set right before exec: rlimits, oom_score_adj, user and groups,
//! capabilities, no_new_privs. Shared by the container init and `exec_in`.

use std::collections::HashSet;

use caps::{CapSet, CapsHashSet};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{Capabilities, LinuxCapabilities, PosixRlimitType, Process};

use super::error::InitError;

/// Applies `process.rlimits` with setrlimit(2).
pub(crate) fn set_rlimits(process: &Process) -> Result<(), InitError> {
    for rl in process.rlimits().iter().flatten() {
        let resource = rlimit_resource(rl.typ());
        let limit = libc::rlimit {
            rlim_cur: rl.soft(),
            rlim_max: rl.hard(),
        };
        // SAFETY: setrlimit reads the rlimit struct we own; `resource` is a valid constant.
        let ret = unsafe { libc::setrlimit(resource, &limit) };
        if ret < 0 {
            return Err(InitError::sys(
                format!("setrlimit {:?}", rl.typ()),
                nix::errno::Errno::last(),
            ));
        }
    }
    Ok(())
}

fn rlimit_resource(typ: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType as T;
    match typ {
        T::RlimitCpu => libc::RLIMIT_CPU,
        T::RlimitFsize => libc::RLIMIT_FSIZE,
        T::RlimitData => libc::RLIMIT_DATA,
        T::RlimitStack => libc::RLIMIT_STACK,
        T::RlimitCore => libc::RLIMIT_CORE,
        T::RlimitRss => libc::RLIMIT_RSS,
        T::RlimitNproc => libc::RLIMIT_NPROC,
        T::RlimitNofile => libc::RLIMIT_NOFILE,
        T::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        T::RlimitAs => libc::RLIMIT_AS,
        T::RlimitLocks => libc::RLIMIT_LOCKS,
        T::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        T::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        T::RlimitNice => libc::RLIMIT_NICE,
        T::RlimitRtprio => libc::RLIMIT_RTPRIO,
        T::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// Writes `process.oomScoreAdj`. Lowering the score needs CAP_SYS_RESOURCE (proc(5)); hosts
/// without it (and the test host) refuse a negative value with EPERM/EACCES: warn and go on,
/// the container still runs, only with the default OOM priority.
pub(crate) fn set_oom_score_adj(process: &Process) -> Result<(), InitError> {
    let Some(adj) = process.oom_score_adj() else {
        return Ok(());
    };
    match std::fs::write("/proc/self/oom_score_adj", adj.to_string()) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) => {
            tracing::warn!(adj, error = %e, "cannot set oom_score_adj, keeping the inherited one");
            Ok(())
        }
        Err(e) => Err(InitError::io("write /proc/self/oom_score_adj", &e)),
    }
}

/// Converts an OCI capability set (`CAP_CHOWN`...) to the `caps` crate's set.
fn to_caps(set: &Option<Capabilities>) -> Result<CapsHashSet, InitError> {
    let mut out = HashSet::new();
    for cap in set.iter().flatten() {
        let name = format!("CAP_{cap}");
        let parsed = name
            .parse::<caps::Capability>()
            .map_err(|_| InitError::new("capabilities", format!("unknown capability {name}")))?;
        out.insert(parsed);
    }
    Ok(out)
}

/// Drops from the bounding set every capability the Spec does not list. Must run while the
/// process still has CAP_SETPCAP in its effective set, i.e. before switching user.
pub(crate) fn drop_bounding(caps_spec: Option<&LinuxCapabilities>) -> Result<(), InitError> {
    let keep = to_caps(&caps_spec.and_then(|c| c.bounding().clone()))?;
    for cap in caps::runtime::thread_all_supported() {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).map_err(|e| {
                InitError::new(format!("drop {cap} from bounding set"), e.to_string())
            })?;
        }
    }
    Ok(())
}

/// Sets supplementary groups, gid and uid. PR_SET_KEEPCAPS keeps the permitted set across a
/// switch away from uid 0 (capabilities(7), "Effect of user ID changes on capabilities"), so
/// that [`apply_capabilities`] can still set what the Spec asks for.
pub(crate) fn set_user(process: &Process) -> Result<(), InitError> {
    let user = process.user();
    let groups: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&groups).map_err(|e| InitError::sys("setgroups", e))?;
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } < 0 {
        return Err(InitError::sys("prctl keepcaps", nix::errno::Errno::last()));
    }
    let gid = Gid::from_raw(user.gid());
    nix::unistd::setresgid(gid, gid, gid)
        .map_err(|e| InitError::sys(format!("setgid {}", user.gid()), e))?;
    let uid = Uid::from_raw(user.uid());
    nix::unistd::setresuid(uid, uid, uid)
        .map_err(|e| InitError::sys(format!("setuid {}", user.uid()), e))?;
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    Ok(())
}

/// Sets the inheritable, effective, permitted and ambient sets from the Spec.
///
/// Order matters because capset(2) checks every call against the sets as they are: the
/// inheritable set first (it may only grow within the still full permitted set), then effective
/// (it must stay a subset of permitted), then shrink permitted, and raise the ambient ones last
/// (a cap must be permitted and inheritable to enter the ambient set, capabilities(7)).
pub(crate) fn apply_capabilities(caps_spec: Option<&LinuxCapabilities>) -> Result<(), InitError> {
    let get = |f: fn(&LinuxCapabilities) -> &Option<Capabilities>| {
        to_caps(&caps_spec.and_then(|c| f(c).clone()))
    };
    let permitted = get(LinuxCapabilities::permitted)?;
    let effective = get(LinuxCapabilities::effective)?;
    let inheritable = get(LinuxCapabilities::inheritable)?;
    let ambient = get(LinuxCapabilities::ambient)?;
    let err =
        |what: &'static str| move |e: caps::errors::CapsError| InitError::new(what, e.to_string());
    caps::set(None, CapSet::Inheritable, &inheritable)
        .map_err(err("set inheritable capabilities"))?;
    caps::set(None, CapSet::Effective, &effective).map_err(err("set effective capabilities"))?;
    caps::set(None, CapSet::Permitted, &permitted).map_err(err("set permitted capabilities"))?;
    if caps::runtime::ambient_set_supported().is_ok() {
        caps::clear(None, CapSet::Ambient).map_err(err("clear ambient capabilities"))?;
        for cap in ambient {
            caps::raise(None, CapSet::Ambient, cap)
                .map_err(|e| InitError::new(format!("raise ambient {cap}"), e.to_string()))?;
        }
    }
    Ok(())
}

/// Sets PR_SET_NO_NEW_PRIVS when the Spec asks for it: execve will not grant privileges
/// (setuid bits, file capabilities) from then on.
pub(crate) fn set_no_new_privs(process: &Process) -> Result<(), InitError> {
    if process.no_new_privileges() == Some(true) {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } < 0 {
            return Err(InitError::sys(
                "prctl no_new_privs",
                nix::errno::Errno::last(),
            ));
        }
    }
    Ok(())
}

/// Everything after the mounts, in the order that works: rlimits and oom first (they may need
/// privileges the user switch drops), bounding set while still root, user, then the sets.
pub(crate) fn apply_all(process: &Process) -> Result<(), InitError> {
    set_rlimits(process)?;
    set_oom_score_adj(process)?;
    drop_bounding(process.capabilities().as_ref())?;
    set_user(process)?;
    apply_capabilities(process.capabilities().as_ref())?;
    set_no_new_privs(process)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::Capability;

    #[test]
    fn converts_capability_names() {
        let set: Capabilities = [Capability::Chown, Capability::NetBindService].into();
        let out = to_caps(&Some(set)).unwrap();
        assert!(out.contains(&caps::Capability::CAP_CHOWN));
        assert!(out.contains(&caps::Capability::CAP_NET_BIND_SERVICE));
        assert!(to_caps(&None).unwrap().is_empty());
    }
}
