//! The device allowlist of a container cgroup: the OCI rules of `linux.resources.devices`, the
//! decision they describe, and the eBPF program (`BPF_PROG_TYPE_CGROUP_DEVICE`) through which
//! the kernel enforces that decision for every process in the cgroup and its descendants.
//!
//! The kernel runs the program on mknod(2) of a char/block device and on every open of one
//! (devcgroup_check_permission in security/device_cgroup.c), with the device type, major, minor
//! and the access asked for; a return of 0 fails the call with EPERM. cgroup v2 has no devices
//! controller: the program is the only mechanism, and it can be attached to any cgroup2
//! directory, even where no controller is enabled (a hybrid host's unified hierarchy).
//!
//! Semantics: the rules apply in the listed order (OCI runtime spec, config-linux.md "Allowed
//! Device Access"), as they would be written to a v1 `devices.allow`/`devices.deny`: for each
//! access asked for (read, write, mknod), the LAST rule that matches the device and names that
//! access decides; with no such rule the access is allowed (a new v1 cgroup allows everything;
//! runtimes start the list with a deny-all rule). The request is allowed only if every access
//! in it is. [`DeviceRules::allows`] is that decision in plain Rust; [`DeviceRules::program`]
//! compiles it, and the tests check the two agree.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Mutex;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::bpf::{self, Insn, Label, Program, Reg};
use super::CgroupError;

/// The device type as the kernel passes it (`BPF_DEVCG_DEV_*` in bpf.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Block = 1,
    Char = 2,
}

/// A set of accesses, with the kernel's bits (`BPF_DEVCG_ACC_*` in bpf.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Access(u8);

impl Access {
    pub const MKNOD: Access = Access(1);
    pub const READ: Access = Access(2);
    pub const WRITE: Access = Access(4);
    pub const ALL: Access = Access(7);
    /// Each single access, in the order the program checks them.
    const EACH: [Access; 3] = [Access::MKNOD, Access::READ, Access::WRITE];

    pub fn contains(self, other: Access) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn union(self, other: Access) -> Access {
        Access(self.0 | other.0)
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    /// `"rwm"`-style text as in OCI and v1 `devices.allow`.
    pub fn parse(text: &str) -> Option<Access> {
        text.chars().try_fold(Access::default(), |acc, c| match c {
            'r' => Some(acc.union(Access::READ)),
            'w' => Some(acc.union(Access::WRITE)),
            'm' => Some(acc.union(Access::MKNOD)),
            _ => None,
        })
    }
}

/// One rule; `None` fields are wildcards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    pub kind: Option<DeviceKind>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: Access,
}

impl DeviceRule {
    fn matches(&self, kind: DeviceKind, major: u32, minor: u32) -> bool {
        self.kind.is_none_or(|k| k == kind)
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
    }
}

/// The rule list of one container, in the Spec's order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceRules(pub Vec<DeviceRule>);

/// A Spec's major/minor: absent or negative (runc's -1) is a wildcard. Larger than i32::MAX
/// cannot be a Linux device number (12-bit major, 20-bit minor) and would not survive the
/// sign-extended compare of the program, so it is refused.
fn device_number(
    value: Option<i64>,
    field: &str,
    index: usize,
) -> Result<Option<u32>, CgroupError> {
    match value {
        None => Ok(None),
        Some(n) if n < 0 => Ok(None),
        Some(n) => match i32::try_from(n) {
            Ok(n) => Ok(Some(n as u32)),
            Err(_) => Err(CgroupError::InvalidDeviceRule {
                index,
                reason: format!("{field} {n} is not a device number"),
            }),
        },
    }
}

impl DeviceRules {
    /// The rules of `linux.resources.devices`, validated.
    pub fn from_spec(list: &[LinuxDeviceCgroup]) -> Result<DeviceRules, CgroupError> {
        let mut rules = Vec::with_capacity(list.len());
        for (index, r) in list.iter().enumerate() {
            let kind = match r.typ() {
                None | Some(LinuxDeviceType::A) => None,
                Some(LinuxDeviceType::C | LinuxDeviceType::U) => Some(DeviceKind::Char),
                Some(LinuxDeviceType::B) => Some(DeviceKind::Block),
                Some(LinuxDeviceType::P) => {
                    return Err(CgroupError::InvalidDeviceRule {
                        index,
                        reason: "type \"p\" (fifo) is not a device the cgroup controls".into(),
                    })
                }
            };
            let text = r.access().clone().unwrap_or_else(|| "rwm".to_string());
            let access = Access::parse(&text).ok_or_else(|| CgroupError::InvalidDeviceRule {
                index,
                reason: format!("access {text:?} has letters other than r, w and m"),
            })?;
            rules.push(DeviceRule {
                allow: r.allow(),
                kind,
                major: device_number(r.major(), "major", index)?,
                minor: device_number(r.minor(), "minor", index)?,
                access,
            });
        }
        Ok(DeviceRules(rules))
    }

    /// Whether the rules allow `access` to the device (every access bit in it); the reference
    /// the compiled program must agree with.
    pub fn allows(&self, kind: DeviceKind, major: u32, minor: u32, access: Access) -> bool {
        Access::EACH
            .iter()
            .filter(|bit| access.contains(**bit))
            .all(|bit| {
                self.0
                    .iter()
                    .rev()
                    .find(|r| r.access.contains(*bit) && r.matches(kind, major, minor))
                    .is_none_or(|r| r.allow)
            })
    }

    /// The eBPF program that decides like [`DeviceRules::allows`].
    ///
    /// One walk over the rules, LAST first (registers after the prologue: R2 type, R3 the
    /// access bits asked for and not decided yet, R4 major, R5 minor):
    /// ```text
    /// for each rule that can still decide a bit:
    ///     R0 = (R2 ^ type) | (R4 ^ major) | (R5 ^ minor)        (wildcards: no term)
    ///     if R0 != 0 goto next_rule                               (no term: no test)
    ///     allow: R3 &= ~bits, or return 1 when it decides every bit left
    ///     deny:  if R3 & bits goto return_0
    /// next_rule ...
    /// return 1                                  (bits no rule decided: the v1 default allows)
    /// ```
    /// A bit is decided by the first matching rule of the walk that names it (the last listed),
    /// as in [`DeviceRules::allows`]: an allow clears it from R3, so that no rule before can
    /// deny it. A rule without terms matches every device: the bits it names are decided on
    /// every path after it, and rules that name only decided bits emit nothing (the verifier
    /// refuses unreachable instructions).
    ///
    /// The terms are combined in R0 rather than tested one by one so that the verifier learns
    /// nothing about R2, R4 and R5 on a match: with one `!=` test per field, each path that
    /// matched carries its own constants into the rest of the program, the states no longer
    /// prune each other, and the load of containerd's default list took ~0.75 ms of verifier
    /// time on the bench host instead of ~0.15 ms.
    pub fn program(&self) -> Result<Vec<u64>, CgroupError> {
        let mut p = Program::default();
        // struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }, where
        // access_type = (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*.
        let ctx_word = |dst, off| Insn::LoadWord {
            dst,
            src: Reg::R1,
            off,
        };
        p.push(ctx_word(Reg::R2, 0));
        p.push(Insn::And32 {
            dst: Reg::R2,
            imm: 0xffff,
        });
        p.push(ctx_word(Reg::R3, 0));
        p.push(Insn::Rsh32 {
            dst: Reg::R3,
            imm: 16,
        });
        p.push(ctx_word(Reg::R4, 4));
        p.push(ctx_word(Reg::R5, 8));
        let deny = p.label();
        let mut denies = false;
        // The bits some path may not have decided yet; whether every path has returned.
        let mut open = Access::ALL;
        let mut ended = false;
        for rule in self.0.iter().rev() {
            let bits = Access(rule.access.0 & open.0);
            if bits == Access::default() {
                continue;
            }
            let next_rule = p.label();
            let tested = emit_match(&mut p, rule, next_rule);
            if rule.allow && bits == open {
                p.ret(1);
            } else if rule.allow {
                p.push(Insn::And32 {
                    dst: Reg::R3,
                    imm: i32::from(Access::ALL.0 & !bits.0),
                });
            } else {
                denies = true;
                p.push(Insn::JumpSet {
                    dst: Reg::R3,
                    imm: i32::from(bits.0),
                    to: deny,
                });
            }
            if tested {
                p.bind(next_rule);
            } else {
                // Every device matches: its bits are decided from here on.
                open = Access(open.0 & !bits.0);
                ended = rule.allow && open == Access::default();
                if open == Access::default() {
                    break;
                }
            }
        }
        if !ended {
            // Bits no rule decided, or none asked for: the default allows.
            p.ret(1);
        }
        if denies {
            p.bind(deny);
            p.ret(0);
        }
        tracing::trace!(instructions = p.len(), "device program generated");
        p.encode().map_err(CgroupError::from)
    }
}

/// A rule's match: R0 = the OR of (field ^ value) over its fields, a mismatch jumping to
/// `next_rule`; false (and no code) when it has no field, matching every device.
fn emit_match(p: &mut Program, rule: &DeviceRule, next_rule: Label) -> bool {
    let fields = [
        (Reg::R2, rule.kind.map(|k| k as i32)),
        (Reg::R4, rule.major.map(|m| m as i32)),
        (Reg::R5, rule.minor.map(|m| m as i32)),
    ];
    let mut tested = false;
    for (reg, value) in fields {
        let Some(imm) = value else { continue };
        let dst = if tested { Reg::R6 } else { Reg::R0 };
        p.push(Insn::Mov64Reg { dst, src: reg });
        p.push(Insn::Xor64 { dst, imm });
        if tested {
            p.push(Insn::Or64Reg {
                dst: Reg::R0,
                src: Reg::R6,
            });
        }
        tested = true;
    }
    if tested {
        p.push(Insn::JumpNe {
            dst: Reg::R0,
            imm: 0,
            to: next_rule,
        });
    }
    tested
}

/// A program loaded ahead, with the instructions it was loaded from: see [`load_ahead`].
static AHEAD: Mutex<Option<(Vec<u64>, OwnedFd)>> = Mutex::new(None);

/// Loads the program for `list` (the usual container's rules) now, off a pod's start path: the
/// keeper that waits for its pod does it (`supervisor::prepare`), and [`attach`] takes it for
/// the same rules instead of loading them again (the verifier and the JIT: ~0.2 ms, while the
/// container's init waits for the CPU). A failure here is left to `attach` to report.
pub(crate) fn load_ahead(list: &[LinuxDeviceCgroup]) {
    let Ok(insns) = DeviceRules::from_spec(list).and_then(|r| r.program()) else {
        return;
    };
    if let (Ok(fd), Ok(mut slot)) = (bpf::load_device_program(&insns), AHEAD.lock()) {
        *slot = Some((insns, fd));
    }
}

/// Drops what [`load_ahead`] loaded (the kernel frees a program once no descriptor or cgroup
/// holds it).
pub(crate) fn forget_ahead() {
    if let Ok(mut slot) = AHEAD.lock() {
        slot.take();
    }
}

/// A copy of the descriptor of the program loaded ahead, if it was loaded from `insns`.
fn take_ahead(insns: &[u64]) -> Option<OwnedFd> {
    let slot = AHEAD.lock().ok()?;
    let (loaded, fd) = slot.as_ref()?;
    if loaded.as_slice() != insns {
        return None;
    }
    fd.try_clone().ok()
}

/// Loads the program for `rules` (or takes the one loaded ahead for them) and attaches it to
/// the cgroup v2 directory `path`.
pub(crate) fn attach(path: &Path, rules: &DeviceRules) -> Result<(), CgroupError> {
    let insns = rules.program()?;
    let err = |source| CgroupError::DeviceProgram {
        path: path.to_path_buf(),
        source,
    };
    let prog = match take_ahead(&insns) {
        Some(fd) => fd,
        None => bpf::load_device_program(&insns).map_err(err)?,
    };
    bpf::attach_device_program(path, &prog).map_err(err)?;
    tracing::debug!(path = %path.display(), rules = rules.0.len(), instructions = insns.len(), "device allowlist attached");
    Ok(())
}

#[cfg(test)]
#[path = "devices_tests.rs"]
mod tests;
