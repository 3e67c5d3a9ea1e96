//! The compiled filters, run by a small classic-BPF interpreter the way the kernel runs a
//! filter stack: every filter sees the syscall, the result of highest precedence wins.

use super::*;
use crate::container::seccomp::{runtime_default, CLONE_NAMESPACE_FLAGS};
use oci_spec::runtime::{Capabilities, Capability};

const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const RET_ERRNO: u32 = libc::SECCOMP_RET_ERRNO;

fn arch() -> u32 {
    // AUDIT_ARCH_X86_64 / AUDIT_ARCH_AARCH64, as seccompiler checks it.
    if cfg!(target_arch = "x86_64") {
        0xc000_003e
    } else {
        0xc000_00b7
    }
}

/// Runs one filter on (arch, nr, args) and returns its SECCOMP_RET_* value.
fn run(prog: &[seccompiler::sock_filter], arch: u32, nr: i64, args: [u64; 6]) -> u32 {
    // struct seccomp_data: nr (0), arch (4), instruction_pointer (8), args (16..64).
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&(nr as u32).to_ne_bytes());
    data[4..8].copy_from_slice(&arch.to_ne_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
    }
    let (mut acc, mut pc) = (0u32, 0usize);
    loop {
        let ins = &prog[pc];
        let k = ins.k;
        pc += 1;
        match ins.code {
            0x20 => {
                let o = k as usize;
                acc = u32::from_ne_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
            }
            0x54 => acc &= k,
            0x05 => pc += k as usize,
            0x15 | 0x25 | 0x35 => {
                let taken = match ins.code {
                    0x15 => acc == k,
                    0x25 => acc > k,
                    _ => acc >= k,
                };
                pc += usize::from(if taken { ins.jt } else { ins.jf });
            }
            0x06 => return k,
            other => panic!("unexpected BPF opcode {other:#x}"),
        }
    }
}

/// seccomp(2)'s precedence of the action part of a return value.
fn precedence(ret: u32) -> u32 {
    match ret & libc::SECCOMP_RET_ACTION_FULL {
        libc::SECCOMP_RET_KILL_PROCESS => 7,
        libc::SECCOMP_RET_KILL_THREAD => 6,
        libc::SECCOMP_RET_TRAP => 5,
        libc::SECCOMP_RET_ERRNO => 4,
        libc::SECCOMP_RET_TRACE => 2,
        libc::SECCOMP_RET_LOG => 1,
        _ => 0,
    }
}

/// The kernel's verdict over the whole stack (the last loaded filter runs first, and the
/// first-seen result of the highest precedence wins).
fn verdict(c: &Compiled, name: &str, args: [u64; 6]) -> u32 {
    let nr = i64::from(syscalls::Sysno::from_str(name).unwrap().id());
    c.programs
        .iter()
        .rev()
        .map(|p| run(p, arch(), nr, args))
        .fold(RET_ALLOW, |best, r| {
            if precedence(r) > precedence(best) {
                r
            } else {
                best
            }
        })
}

fn caps(names: &[Capability]) -> Capabilities {
    names.iter().copied().collect()
}

fn default_caps() -> Capabilities {
    crate::container::spec::DEFAULT_CAPABILITIES
        .iter()
        .filter_map(|c| c.parse().ok())
        .collect()
}

fn compiled(bounding: &Capabilities) -> Compiled {
    compile(&runtime_default(bounding).unwrap()).unwrap()
}

const EPERM: u32 = RET_ERRNO | libc::EPERM as u32;
const ENOSYS: u32 = RET_ERRNO | libc::ENOSYS as u32;

#[test]
fn runtime_default_allows_the_usual_and_denies_the_rest_with_eperm() {
    let c = compiled(&default_caps());
    assert_eq!(c.programs.len(), 2, "allow list + the clone3 ENOSYS filter");
    for ok in [
        "read",
        "write",
        "openat",
        "execve",
        "mkdir",
        "setresuid",
        "capset",
        "chroot",
    ] {
        assert_eq!(verdict(&c, ok, [0; 6]), RET_ALLOW, "{ok}");
    }
    for denied in [
        "unshare", "mount", "keyctl", "add_key", "setns", "bpf", "reboot",
    ] {
        assert_eq!(verdict(&c, denied, [0; 6]), EPERM, "{denied}");
    }
    // personality: only the values containerd lists.
    assert_eq!(verdict(&c, "personality", [0; 6]), RET_ALLOW);
    assert_eq!(
        verdict(&c, "personality", [0xffff_ffff, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
    assert_eq!(
        verdict(&c, "personality", [0x0040_0000, 0, 0, 0, 0, 0]),
        EPERM
    );
}

#[test]
fn without_sys_admin_clone_may_not_make_namespaces_and_clone3_is_enosys() {
    let c = compiled(&default_caps());
    let sigchld = libc::SIGCHLD as u64;
    assert_eq!(verdict(&c, "clone", [sigchld, 0, 0, 0, 0, 0]), RET_ALLOW);
    let newuser = libc::CLONE_NEWUSER as u64 | sigchld;
    assert_eq!(verdict(&c, "clone", [newuser, 0, 0, 0, 0, 0]), EPERM);
    assert_eq!(
        verdict(&c, "clone", [CLONE_NAMESPACE_FLAGS, 0, 0, 0, 0, 0]),
        EPERM
    );
    assert_eq!(verdict(&c, "clone3", [0; 6]), ENOSYS);
}

#[test]
fn capabilities_open_their_syscalls() {
    let c = compiled(&caps(&[Capability::SysAdmin, Capability::SysPtrace]));
    for ok in [
        "unshare",
        "mount",
        "setns",
        "clone3",
        "kcmp",
        "process_vm_readv",
    ] {
        assert_eq!(verdict(&c, ok, [0; 6]), RET_ALLOW, "{ok}");
    }
    let newuser = libc::CLONE_NEWUSER as u64;
    assert_eq!(verdict(&c, "clone", [newuser, 0, 0, 0, 0, 0]), RET_ALLOW);
    // Not in this bounding set.
    assert_eq!(verdict(&c, "chroot", [0; 6]), EPERM);
    assert_eq!(verdict(&c, "reboot", [0; 6]), EPERM);
}

#[test]
fn another_abi_is_killed() {
    let c = compiled(&default_caps());
    let ret = run(&c.programs[0], 0x4000_0003, 0, [0; 6]);
    assert_eq!(ret, libc::SECCOMP_RET_KILL_PROCESS);
}

fn profile(json: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(json).unwrap()
}

#[test]
fn a_deny_list_profile_and_rule_actions() {
    let p = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir", "mkdirat", "no_such_syscall"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["socket"], "action": "SCMP_ACT_KILL_PROCESS",
             "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_EQ"}]}
        ]
    }));
    let c = compile(&p).unwrap();
    assert_eq!(verdict(&c, "mkdirat", [0; 6]), EPERM);
    assert_eq!(verdict(&c, "chmod", [0; 6]), RET_ERRNO | 13);
    assert_eq!(verdict(&c, "getpid", [0; 6]), RET_ALLOW);
    assert_eq!(verdict(&c, "read", [0; 6]), RET_ALLOW);
    assert_eq!(
        verdict(&c, "socket", [40, 0, 0, 0, 0, 0]),
        libc::SECCOMP_RET_KILL_PROCESS
    );
    assert_eq!(verdict(&c, "socket", [2, 0, 0, 0, 0, 0]), RET_ALLOW);
}

#[test]
fn conditions_on_one_argument_are_ored_as_runc_does() {
    let p = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [
            {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
            {"index": 0, "value": 7, "op": "SCMP_CMP_EQ"}]},
            {"names": ["write"], "action": "SCMP_ACT_ALLOW", "args": [
            {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
            {"index": 2, "value": 10, "op": "SCMP_CMP_LT"}]}]
    }));
    let c = compile(&p).unwrap();
    assert_eq!(verdict(&c, "read", [7, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(verdict(&c, "read", [3, 0, 0, 0, 0, 0]), RET_ERRNO | 38);
    assert_eq!(verdict(&c, "write", [1, 0, 5, 0, 0, 0]), RET_ALLOW);
    assert_eq!(verdict(&c, "write", [1, 0, 50, 0, 0, 0]), RET_ERRNO | 38);
    assert_eq!(verdict(&c, "getpid", [0; 6]), RET_ERRNO | 38);
}

#[test]
fn notify_is_refused() {
    let p = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    let err = compile(&p).unwrap_err();
    assert!(err.to_string().contains("SCMP_ACT_NOTIFY"), "{err}");
}

/// Every filter of `p`, as seccompiler's linear chain and as the search `compile` loads, gives
/// the same verdict for every syscall number (and some beyond the table, another ABI's and
/// x32's), under argument values the profiles test for.
fn assert_tree_matches_chain(p: &LinuxSeccomp) {
    let arch_ok = arch();
    let args: Vec<[u64; 6]> = vec![
        [0; 6],
        [u64::MAX; 6],
        [0x8, 0x20008, 0xffff_ffff, 0, 1, 2],
        [libc::CLONE_NEWUSER as u64, 40, 10, 0, 0, 0],
        [CLONE_NAMESPACE_FLAGS, 1, 50, 7, 0, 0],
        [libc::SIGCHLD as u64, 2, 5, 0x0040_0000, 0, 0],
        [7, 0, 1, 1 << 40, 0, 0],
        [0x0040_0008, 0x1_0000_0000, 3, 0, 0, 0],
    ];
    let mut nrs: Vec<i64> = (0..=1100).collect();
    nrs.extend([0x4000_0000, 0x4000_0001, 0x4000_0200, i64::from(u32::MAX)]);
    for (rules, mismatch, matched) in filter_rules(p).unwrap() {
        let chain = BpfProgram::try_from(
            SeccompFilter::new(
                rules.clone(),
                mismatch.clone(),
                matched.clone(),
                target_arch().unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        let tree = tree::program(rules, mismatch, matched).unwrap();
        assert_kernel_accepts(&tree);
        for arch in [arch_ok, 0x4000_0003] {
            for &nr in &nrs {
                for a in &args {
                    assert_eq!(
                        run(&tree, arch, nr, *a),
                        run(&chain, arch, nr, *a),
                        "arch {arch:#x} nr {nr} args {a:?}"
                    );
                }
            }
        }
    }
}

/// The checks of the kernel's bpf_check_classic and seccomp_check_filter that a program of
/// these instructions must pass: every jump inside the program (reached or not), loads of
/// aligned `struct seccomp_data` words, a return last.
fn assert_kernel_accepts(prog: &[seccompiler::sock_filter]) {
    let n = prog.len();
    assert!(n > 0 && n <= 4096, "{n} instructions");
    for (pc, ins) in prog.iter().enumerate() {
        match ins.code {
            0x05 => assert!(
                (ins.k as usize) < n - pc - 1,
                "JA out of the program at {pc}"
            ),
            0x15 | 0x25 | 0x35 | 0x45 => assert!(
                pc + usize::from(ins.jt.max(ins.jf)) + 1 < n,
                "jump out of the program at {pc}"
            ),
            0x20 => assert!(ins.k < 64 && ins.k % 4 == 0, "load at {pc}"),
            0x06 | 0x54 => {}
            other => panic!("opcode {other:#x} at {pc}"),
        }
    }
    assert_eq!(prog[n - 1].code, 0x06, "the last instruction returns");
}

#[test]
fn the_search_gives_the_chains_verdicts() {
    assert_tree_matches_chain(&runtime_default(&default_caps()).unwrap());
    assert_tree_matches_chain(
        &runtime_default(&caps(&[Capability::SysAdmin, Capability::SysPtrace])).unwrap(),
    );
    assert_tree_matches_chain(&profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["read", "write", "mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["socket"], "action": "SCMP_ACT_KILL_PROCESS",
             "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_EQ"}]}
        ]
    })));
    assert_tree_matches_chain(&profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [
            {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
            {"index": 0, "value": 7, "op": "SCMP_CMP_EQ"}]},
            {"names": ["write", "openat", "close"], "action": "SCMP_ACT_ALLOW", "args": [
            {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
            {"index": 2, "value": 10, "op": "SCMP_CMP_LT"},
            {"index": 3, "value": 1, "op": "SCMP_CMP_MASKED_EQ", "valueTwo": 0}]},
            {"names": ["getpid", "getppid", "gettid"], "action": "SCMP_ACT_ALLOW"}]
    })));
}

#[test]
fn runtime_default_is_a_few_hundred_instructions() {
    let c = compiled(&default_caps());
    let total: usize = c.programs.iter().map(Vec::len).sum();
    // 178 on x86_64 (seccompiler's chain: 1,603).
    assert!(total < 300, "{total} instructions");
}

#[test]
fn the_kernel_loads_the_default_profile() {
    let c = compiled(&default_caps());
    let progs: Vec<SockFprog> = c
        .programs
        .iter()
        .map(|p| SockFprog {
            len: p.len() as libc::c_ushort,
            filter: p.as_ptr(),
        })
        .collect();
    // SAFETY: fork from the test's threads; the child only makes system calls on memory
    // prepared before the fork (no allocation), then _exits; the parent reaps it.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: prctl and seccomp(2) read the fprogs above, alive in this copy of the memory.
        unsafe {
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            for p in &progs {
                let f = p as *const SockFprog;
                if libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, f) != 0 {
                    libc::_exit(1);
                }
            }
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: waitpid on the child forked above, into a status we own.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{status:#x}"
    );
}

#[test]
fn the_program_compiled_ahead_serves_only_its_own_profile() {
    compile_ahead();
    let usual = runtime_default(&default_caps()).unwrap();
    let mut more = default_caps();
    more.insert(Capability::SysAdmin);
    let admin = runtime_default(&more).unwrap();
    assert_ne!(compile(&usual).unwrap(), compile(&admin).unwrap());
    assert!(AHEAD.lock().unwrap().is_some(), "nothing compiled ahead");
    assert_eq!(
        compile_or_take_ahead(&usual).unwrap(),
        compile(&usual).unwrap()
    );
    assert_eq!(
        compile_or_take_ahead(&admin).unwrap(),
        compile(&admin).unwrap()
    );
    forget_ahead();
    assert!(AHEAD.lock().unwrap().is_none());
}
