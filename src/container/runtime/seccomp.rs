//! The Spec's `linux.seccomp` profile, compiled to classic BPF and loaded into the container
//! process, as runc does (libcontainer/seccomp). Compiled with `seccompiler` (rust-vmm, the
//! compiler Firecracker uses), syscall names resolved with the `syscalls` crate's table for the
//! build target: pure Rust, no libseccomp needed on the host.
//!
//! seccompiler builds one filter per (match action, mismatch action) pair, while an OCI profile
//! gives each rule its own action. The profile is therefore compiled to a stack of filters, and
//! the kernel runs all of them and keeps the result of highest precedence (seccomp(2): KILL >
//! TRAP > ERRNO > TRACE > LOG > ALLOW):
//! - the main filter ALLOWs every syscall some rule names (under that rule's conditions) and
//!   returns the default action for everything else;
//! - one filter per other action returns that action where its rules match and ALLOW elsewhere.
//!
//! A syscall covered by a non-ALLOW rule thus gets that rule's action, one covered only by
//! ALLOW rules is allowed, and the rest get the default action: libseccomp's result for the
//! profiles runtimes use (containerd's default has two filters). Rules follow runc's reading:
//! a rule whose action is the default action is ignored, an unknown syscall name is skipped,
//! conditions on different arguments are ANDed, several conditions on one argument make one
//! rule each (ORed). Only the native ABI is filtered: a syscall through another ABI (32-bit x86
//! on x86_64) kills the process, which is stricter than libseccomp's per-architecture tables.

use std::collections::BTreeMap;
use std::str::FromStr;

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::error::InitError;

const STEP: &str = "seccomp";

/// A compiled profile: the filters in the order they are loaded, and the seccomp(2) flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Compiled {
    pub programs: Vec<BpfProgram>,
    pub flags: libc::c_ulong,
}

/// Per syscall number: matched unconditionally, or when one of the rules matches.
#[derive(Debug, Clone)]
enum Chain {
    Always,
    Rules(Vec<SeccompRule>),
}

type Table = BTreeMap<i64, Chain>;

fn add(table: &mut Table, nr: i64, rules: Option<Vec<SeccompRule>>) {
    let entry = table.entry(nr).or_insert(Chain::Rules(Vec::new()));
    match (entry, rules) {
        (Chain::Always, _) => {}
        (entry, None) => *entry = Chain::Always,
        (Chain::Rules(have), Some(mut more)) => have.append(&mut more),
    }
}

fn rules_map(table: &Table) -> BTreeMap<i64, Vec<SeccompRule>> {
    table
        .iter()
        .map(|(nr, chain)| match chain {
            Chain::Always => (*nr, Vec::new()),
            Chain::Rules(r) => (*nr, r.clone()),
        })
        .collect()
}

/// runc's errno when a rule or the default action gives none.
const DEFAULT_ERRNO: u32 = libc::EPERM as u32;

fn action(action: LinuxSeccompAction, errno: Option<u32>) -> Result<SeccompAction, InitError> {
    use LinuxSeccompAction as A;
    let ret = errno.unwrap_or(DEFAULT_ERRNO);
    Ok(match action {
        A::ScmpActAllow => SeccompAction::Allow,
        A::ScmpActErrno => SeccompAction::Errno(ret),
        A::ScmpActKill | A::ScmpActKillThread => SeccompAction::KillThread,
        A::ScmpActKillProcess => SeccompAction::KillProcess,
        A::ScmpActTrap => SeccompAction::Trap,
        A::ScmpActTrace => SeccompAction::Trace(ret),
        A::ScmpActLog => SeccompAction::Log,
        A::ScmpActNotify => {
            return Err(InitError::new(
                STEP,
                "SCMP_ACT_NOTIFY is not supported (no seccomp agent)",
            ))
        }
    })
}

fn condition(arg: &LinuxSeccompArg) -> Result<SeccompCondition, InitError> {
    use LinuxSeccompOperator as O;
    let op = match arg.op() {
        O::ScmpCmpNe => SeccompCmpOp::Ne,
        O::ScmpCmpLt => SeccompCmpOp::Lt,
        O::ScmpCmpLe => SeccompCmpOp::Le,
        O::ScmpCmpEq => SeccompCmpOp::Eq,
        O::ScmpCmpGe => SeccompCmpOp::Ge,
        O::ScmpCmpGt => SeccompCmpOp::Gt,
        // libseccomp: (arg & value) == valueTwo.
        O::ScmpCmpMaskedEq => SeccompCmpOp::MaskedEq(arg.value()),
    };
    let value = match arg.op() {
        O::ScmpCmpMaskedEq => arg.value_two().unwrap_or(0),
        _ => arg.value(),
    };
    let index = u8::try_from(arg.index())
        .map_err(|_| InitError::new(STEP, format!("argument index {}", arg.index())))?;
    SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value)
        .map_err(|e| InitError::new(STEP, format!("argument {}: {e}", arg.index())))
}

/// The rules of one OCI syscall entry, as runc adds them: None = unconditional.
fn entry_rules(args: &[LinuxSeccompArg]) -> Result<Option<Vec<SeccompRule>>, InitError> {
    if args.is_empty() {
        return Ok(None);
    }
    let conditions = args.iter().map(condition).collect::<Result<Vec<_>, _>>()?;
    let mut counts = [0usize; 6];
    for a in args {
        if let Some(c) = counts.get_mut(a.index()) {
            *c += 1;
        }
    }
    let rule = |c: Vec<SeccompCondition>| {
        SeccompRule::new(c).map_err(|e| InitError::new(STEP, e.to_string()))
    };
    if counts.iter().any(|c| *c > 1) {
        conditions
            .into_iter()
            .map(|c| rule(vec![c]))
            .collect::<Result<_, _>>()
            .map(Some)
    } else {
        Ok(Some(vec![rule(conditions)?]))
    }
}

fn target_arch() -> Result<TargetArch, InitError> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|_| InitError::new(STEP, format!("architecture {}", std::env::consts::ARCH)))
}

fn flags(profile: &LinuxSeccomp) -> libc::c_ulong {
    let mut out = 0;
    for f in profile.flags().iter().flatten() {
        out |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            // The init is single-threaded; a killable wait only matters for notify.
            _ => 0,
        };
    }
    out
}

/// One filter of the stack: its rules per syscall number, the action where none matches and
/// the action where one does.
type FilterRules = (
    BTreeMap<i64, Vec<SeccompRule>>,
    SeccompAction,
    SeccompAction,
);

/// The filters of the profile's stack, in load order.
fn filter_rules(profile: &LinuxSeccomp) -> Result<Vec<FilterRules>, InitError> {
    let default = action(profile.default_action(), profile.default_errno_ret())?;
    // Every syscall some rule names (for the main filter), and the rules per other action.
    let mut named = Table::new();
    let mut by_action: Vec<(SeccompAction, Table)> = Vec::new();
    for entry in profile.syscalls().iter().flatten() {
        let act = action(entry.action(), entry.errno_ret())?;
        if act == default {
            continue;
        }
        let rules = entry_rules(entry.args().as_deref().unwrap_or_default())?;
        for name in entry.names() {
            let Ok(nr) = syscalls::Sysno::from_str(name) else {
                continue;
            };
            let nr = i64::from(nr.id());
            add(&mut named, nr, rules.clone());
            if act != SeccompAction::Allow {
                let i = match by_action.iter().position(|(a, _)| *a == act) {
                    Some(i) => i,
                    None => {
                        by_action.push((act.clone(), Table::new()));
                        by_action.len() - 1
                    }
                };
                add(&mut by_action[i].1, nr, rules.clone());
            }
        }
    }
    let mut filters = Vec::new();
    if default != SeccompAction::Allow {
        filters.push((rules_map(&named), default, SeccompAction::Allow));
    }
    for (act, table) in &by_action {
        filters.push((rules_map(table), SeccompAction::Allow, act.clone()));
    }
    Ok(filters)
}

/// Compiles the profile into the filters to load, in load order.
pub(crate) fn compile(profile: &LinuxSeccomp) -> Result<Compiled, InitError> {
    let arch = target_arch()?;
    let mut programs = Vec::new();
    for (rules, mismatch, matched) in filter_rules(profile)? {
        // seccompiler's checks (the actions) on the same rules; the program is a search over
        // the syscall number (`tree`) rather than seccompiler's linear chain.
        SeccompFilter::new(BTreeMap::new(), mismatch.clone(), matched.clone(), arch)
            .map_err(|e| InitError::new(STEP, e.to_string()))?;
        programs.push(tree::program(rules, mismatch, matched).map_err(|len| {
            InitError::new(STEP, format!("filter too large ({len} instructions)"))
        })?);
    }
    Ok(Compiled {
        programs,
        flags: flags(profile),
    })
}

/// The RuntimeDefault profile of a container with the default capabilities (most pods'), and
/// its program, compiled ahead by a process whose containers' inits are cloned later (a keeper
/// waiting for its pod): an init whose Spec asks for exactly that profile takes the program
/// instead of compiling it (0.1-0.25 ms of its start). Dropped once the first containers are
/// made, so that the pod's processes do not keep it.
static AHEAD: std::sync::Mutex<Option<(LinuxSeccomp, Compiled)>> = std::sync::Mutex::new(None);

/// Compiles the usual profile for the inits to come ([`compile_or_take_ahead`]).
pub(crate) fn compile_ahead() {
    let Ok(profile) =
        crate::container::seccomp::runtime_default(&crate::container::spec::default_capabilities())
    else {
        return;
    };
    if let (Ok(program), Ok(mut slot)) = (compile(&profile), AHEAD.lock()) {
        *slot = Some((profile, program));
    }
}

/// Drops what [`compile_ahead`] made.
pub(crate) fn forget_ahead() {
    if let Ok(mut slot) = AHEAD.lock() {
        slot.take();
    }
}

/// `profile` compiled: the program [`compile_ahead`] made when it is that profile's.
pub(crate) fn compile_or_take_ahead(profile: &LinuxSeccomp) -> Result<Compiled, InitError> {
    let ahead = AHEAD.lock().ok().and_then(|slot| {
        slot.as_ref()
            .filter(|(p, _)| p == profile)
            .map(|(_, c)| c.clone())
    });
    match ahead {
        Some(program) => Ok(program),
        None => compile(profile),
    }
}

/// The kernel's `struct sock_fprog`.
#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const seccompiler::sock_filter,
}

/// Loads the compiled filters into the calling thread with seccomp(2). Without no_new_privs the
/// kernel requires CAP_SYS_ADMIN, so the init calls this before it drops privileges.
pub(crate) fn load(compiled: &Compiled) -> Result<(), InitError> {
    for program in &compiled.programs {
        let len = libc::c_ushort::try_from(program.len())
            .map_err(|_| InitError::new(STEP, "filter too large"))?;
        let prog = SockFprog {
            len,
            filter: program.as_ptr(),
        };
        // SAFETY: seccomp(2) copies the program the fprog points to (owned by `program`, alive
        // for the call) and keeps no pointer to it.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                compiled.flags,
                &prog as *const SockFprog,
            )
        };
        if ret != 0 {
            return Err(InitError::sys(
                "load seccomp filter",
                nix::errno::Errno::last(),
            ));
        }
    }
    Ok(())
}

#[path = "seccomp_tree.rs"]
mod tree;

#[cfg(test)]
#[path = "seccomp_tests.rs"]
mod tests;
