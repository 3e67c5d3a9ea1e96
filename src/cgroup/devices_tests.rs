//! The device program is checked without root by running its encoded instructions in a small
//! interpreter of the instruction subset we emit (with the verifier's reachability and
//! initialized-register rules), against [`DeviceRules::allows`].

use super::*;
use crate::cgroup::bpf::{
    CLASS_ALU, CLASS_ALU64, CLASS_JMP, CLASS_LDX, MODE_MEM, OP_AND, OP_EXIT, OP_JNE, OP_JSET,
    OP_MOV, OP_OR, OP_RSH, OP_XOR, SIZE_W, SRC_K, SRC_X,
};
use oci_spec::runtime::LinuxDeviceCgroupBuilder;

struct Decoded {
    code: u8,
    dst: usize,
    src: usize,
    off: i16,
    imm: i32,
}

fn decode(word: u64) -> Decoded {
    let b = word.to_ne_bytes();
    let (dst, src) = if cfg!(target_endian = "little") {
        (b[1] & 0xf, b[1] >> 4)
    } else {
        (b[1] >> 4, b[1] & 0xf)
    };
    Decoded {
        code: b[0],
        dst: dst as usize,
        src: src as usize,
        off: i16::from_ne_bytes([b[2], b[3]]),
        imm: i32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
    }
}

fn jump_target(pc: usize, off: i16, len: usize) -> usize {
    let target = pc as i64 + 1 + i64::from(off);
    assert!(
        target > pc as i64 && (target as usize) < len,
        "jump at {pc} to {target} leaves the program or goes back"
    );
    target as usize
}

/// The verifier refuses a program with an instruction no path reaches ("unreachable insn").
fn assert_all_reachable(prog: &[u64]) {
    let mut seen = vec![false; prog.len()];
    let mut todo = vec![0usize];
    while let Some(pc) = todo.pop() {
        if pc >= prog.len() {
            panic!("control falls off the end of the program at {pc}");
        }
        if std::mem::replace(&mut seen[pc], true) {
            continue;
        }
        let i = decode(prog[pc]);
        match i.code {
            c if c == CLASS_JMP | OP_EXIT => {}
            c if c == CLASS_JMP | OP_JNE | SRC_K || c == CLASS_JMP | OP_JSET | SRC_K => {
                todo.push(jump_target(pc, i.off, prog.len()));
                todo.push(pc + 1);
            }
            _ => todo.push(pc + 1),
        }
    }
    if let Some(pc) = seen.iter().position(|s| !s) {
        panic!("instruction {pc} is unreachable");
    }
}

/// Runs the program on one `struct bpf_cgroup_dev_ctx`; returns R0.
fn run(prog: &[u64], kind: DeviceKind, major: u32, minor: u32, access: Access) -> u64 {
    let ctx = [(u32::from(access.bits()) << 16) | kind as u32, major, minor];
    // None = never written (the verifier refuses reads of those).
    let mut regs: [Option<u64>; 11] = [None; 11];
    const CTX: u64 = u64::MAX;
    regs[1] = Some(CTX);
    let mut pc = 0;
    loop {
        let i = decode(prog[pc]);
        let read = |regs: &[Option<u64>; 11], r: usize| {
            regs[r].unwrap_or_else(|| panic!("r{r} read before written at {pc}"))
        };
        let mut next = pc + 1;
        match i.code {
            c if c == CLASS_LDX | MODE_MEM | SIZE_W => {
                assert_eq!(read(&regs, i.src), CTX, "load from a non-context register");
                assert!(
                    i.off >= 0 && i.off % 4 == 0 && i.off < 12,
                    "context offset {}",
                    i.off
                );
                regs[i.dst] = Some(u64::from(ctx[i.off as usize / 4]));
            }
            c if c == CLASS_ALU | OP_AND | SRC_K => {
                regs[i.dst] = Some(u64::from(read(&regs, i.dst) as u32 & i.imm as u32));
            }
            c if c == CLASS_ALU | OP_RSH | SRC_K => {
                regs[i.dst] = Some(u64::from((read(&regs, i.dst) as u32) >> i.imm));
            }
            c if c == CLASS_ALU | OP_MOV | SRC_K => regs[i.dst] = Some(u64::from(i.imm as u32)),
            c if c == CLASS_ALU64 | OP_MOV | SRC_X => regs[i.dst] = Some(read(&regs, i.src)),
            c if c == CLASS_ALU64 | OP_XOR | SRC_K => {
                regs[i.dst] = Some(read(&regs, i.dst) ^ i64::from(i.imm) as u64);
            }
            c if c == CLASS_ALU64 | OP_OR | SRC_X => {
                regs[i.dst] = Some(read(&regs, i.dst) | read(&regs, i.src));
            }
            c if c == CLASS_JMP | OP_JNE | SRC_K => {
                if read(&regs, i.dst) != i64::from(i.imm) as u64 {
                    next = jump_target(pc, i.off, prog.len());
                }
            }
            c if c == CLASS_JMP | OP_JSET | SRC_K => {
                if read(&regs, i.dst) & i64::from(i.imm) as u64 != 0 {
                    next = jump_target(pc, i.off, prog.len());
                }
            }
            c if c == CLASS_JMP | OP_EXIT => return read(&regs, 0),
            other => panic!("opcode {other:#x} at {pc} is not in our subset"),
        }
        pc = next;
    }
}

fn rule(
    allow: bool,
    typ: Option<LinuxDeviceType>,
    major: i64,
    minor: i64,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .access(access.to_string());
    if let Some(t) = typ {
        b = b.typ(t);
    }
    if major >= 0 {
        b = b.major(major);
    }
    if minor >= 0 {
        b = b.minor(minor);
    }
    b.build().unwrap()
}

const C: Option<LinuxDeviceType> = Some(LinuxDeviceType::C);
const B: Option<LinuxDeviceType> = Some(LinuxDeviceType::B);
const ANY: i64 = -1;

/// containerd's list for a non-privileged container (pkg/oci: deny all, then the standard
/// devices), without runc's `c *:* m` / `b *:* m`.
fn container_default() -> DeviceRules {
    let mut list = vec![rule(false, None, ANY, ANY, "rwm")];
    for (major, minor) in [
        (1, 3),
        (1, 8),
        (1, 7),
        (5, 0),
        (1, 5),
        (1, 9),
        (5, 1),
        (136, ANY),
        (5, 2),
        (10, 200),
    ] {
        list.push(rule(true, C, major, minor, "rwm"));
    }
    DeviceRules::from_spec(&list).unwrap()
}

const KINDS: [DeviceKind; 2] = [DeviceKind::Char, DeviceKind::Block];
const MAJORS: [u32; 8] = [0, 1, 4, 5, 7, 10, 136, 259];
const MINORS: [u32; 10] = [0, 1, 2, 3, 5, 7, 8, 9, 11, 200];

/// Every request over a grid of devices agrees between the program and the reference.
fn assert_program_agrees(rules: &DeviceRules) {
    let prog = rules.program().unwrap();
    assert_all_reachable(&prog);
    for kind in KINDS {
        for major in MAJORS {
            for minor in MINORS {
                for bits in 1..=7 {
                    let access = Access(bits);
                    let want = rules.allows(kind, major, minor, access);
                    let got = run(&prog, kind, major, minor, access);
                    assert_eq!(
                        got,
                        u64::from(want),
                        "{kind:?} {major}:{minor} access {bits:#b} with {rules:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn default_rules_allow_the_standard_devices_only() {
    let rules = container_default();
    let rwm = Access::ALL;
    for (major, minor) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
        (136, 0),
        (136, 7),
        (10, 200),
    ] {
        assert!(
            rules.allows(DeviceKind::Char, major, minor, rwm),
            "c {major}:{minor}"
        );
    }
    // /dev/mem, /dev/kmsg, tty0, a loop disk and a virtio disk: no read, no write, no mknod.
    for (kind, major, minor) in [
        (DeviceKind::Char, 1, 1),
        (DeviceKind::Char, 1, 11),
        (DeviceKind::Char, 4, 0),
        (DeviceKind::Block, 7, 0),
        (DeviceKind::Block, 254, 0),
        (DeviceKind::Block, 1, 3),
    ] {
        for access in [Access::READ, Access::WRITE, Access::MKNOD] {
            assert!(
                !rules.allows(kind, major, minor, access),
                "{kind:?} {major}:{minor}"
            );
        }
    }
    assert_program_agrees(&rules);
}

#[test]
fn allow_all_program_is_one_return() {
    let rules = DeviceRules::from_spec(&[rule(true, None, ANY, ANY, "rwm")]).unwrap();
    assert!(rules.allows(DeviceKind::Block, 8, 0, Access::ALL));
    let prog = rules.program().unwrap();
    // The context loads, then `r0 = 1; exit`.
    assert_eq!(prog.len(), 8);
    assert_program_agrees(&rules);
    assert_program_agrees(&DeviceRules::default());
}

#[test]
fn later_rules_override_earlier_ones_per_access() {
    let rules = DeviceRules::from_spec(&[
        rule(false, None, ANY, ANY, "rwm"),
        rule(true, C, 1, ANY, "rwm"),
        rule(false, C, 1, 3, "w"),
        rule(true, B, ANY, ANY, "m"),
    ])
    .unwrap();
    assert!(rules.allows(DeviceKind::Char, 1, 3, Access::READ));
    assert!(!rules.allows(DeviceKind::Char, 1, 3, Access::WRITE));
    assert!(!rules.allows(DeviceKind::Char, 1, 3, Access::READ.union(Access::WRITE)));
    assert!(rules.allows(DeviceKind::Char, 1, 5, Access::ALL));
    assert!(rules.allows(DeviceKind::Block, 8, 0, Access::MKNOD));
    assert!(!rules.allows(DeviceKind::Block, 8, 0, Access::READ));
    assert_program_agrees(&rules);
}

/// `count` deterministic pseudo-random rule lists of up to `max_len - 1` rules (an LCG: no
/// dev-dependency for this).
fn random_rule_lists(seed: u64, count: usize, max_len: u64) -> Vec<DeviceRules> {
    let mut state = seed;
    let mut next = |n: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % n
    };
    let accesses = ["r", "w", "m", "rw", "rm", "wm", "rwm"];
    (0..count)
        .map(|_| {
            let mut list = Vec::new();
            for _ in 0..next(max_len) {
                let typ = [None, C, B][next(3) as usize];
                let major = [ANY, 1, 5, 7, 136][next(5) as usize];
                let minor = [ANY, 0, 3, 11][next(4) as usize];
                let access = accesses[next(7) as usize];
                list.push(rule(next(2) == 0, typ, major, minor, access));
            }
            DeviceRules::from_spec(&list).unwrap()
        })
        .collect()
}

#[test]
fn random_rule_lists_agree_with_the_reference() {
    for rules in random_rule_lists(0x5eed_1234_abcd_0001, 300, 7) {
        assert_program_agrees(&rules);
    }
}

/// The kernel's verifier accepts what the generator emits (the interpreter above checks only
/// what the generator's authors knew of its rules). Needs root (CAP_BPF or CAP_SYS_ADMIN):
/// skipped, and said so, without it.
#[test]
fn the_kernel_verifier_accepts_generated_programs() {
    let mut lists = vec![container_default(), DeviceRules::default()];
    lists.extend(random_rule_lists(0x0dd_c0de_5eed_0002, 100, 12));
    for (i, rules) in lists.iter().enumerate() {
        let prog = rules.program().unwrap();
        match crate::cgroup::bpf::load_device_program(&prog) {
            Ok(_) => {}
            Err(crate::cgroup::bpf::BpfError::Sys {
                errno: nix::errno::Errno::EPERM,
                ..
            }) if i == 0 => {
                eprintln!("skipped: no privilege to load BPF programs");
                return;
            }
            Err(e) => panic!("{rules:?}: {e}"),
        }
    }
}

#[test]
fn spec_rules_are_validated() {
    let fifo = rule(true, Some(LinuxDeviceType::P), 1, 1, "r");
    let err = DeviceRules::from_spec(&[rule(true, None, ANY, ANY, "r"), fifo]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "linux.resources.devices[1]: type \"p\" (fifo) is not a device the cgroup controls"
    );
    let err = DeviceRules::from_spec(&[rule(true, C, 1, 3, "rwx")]).unwrap_err();
    assert!(err.to_string().contains("\"rwx\""), "{err}");
    let err = DeviceRules::from_spec(&[rule(true, C, 1 << 40, 3, "r")]).unwrap_err();
    assert!(err.to_string().contains("major 1099511627776"), "{err}");

    // Absent type and access mean "a" and "rwm"; a negative number is runc's wildcard.
    let bare = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .major(-1i64)
        .build()
        .unwrap();
    let rules = DeviceRules::from_spec(&[bare]).unwrap();
    assert_eq!(
        rules.0,
        [DeviceRule {
            allow: false,
            kind: None,
            major: None,
            minor: None,
            access: Access::ALL
        }]
    );
}

/// The program loaded ahead serves the rules it was loaded from, and no other. Needs root, as
/// the verifier test above: skipped, and said so, without it.
#[test]
fn a_program_loaded_ahead_serves_its_own_rules_only() {
    let list = crate::container::devices::device_cgroup_rules(false).unwrap();
    let usual = DeviceRules::from_spec(&list).unwrap().program().unwrap();
    let other = DeviceRules::default().program().unwrap();
    super::load_ahead(&list);
    if super::take_ahead(&usual).is_none() {
        eprintln!("skipped: no privilege to load BPF programs");
        return;
    }
    assert!(super::take_ahead(&other).is_none());
    // Taken twice: each container's cgroup gets its own copy of the descriptor.
    assert!(super::take_ahead(&usual).is_some());
    super::forget_ahead();
    assert!(super::take_ahead(&usual).is_none());
}
