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

use std::path::Path;

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

    fn is_wildcard(&self) -> bool {
        self.kind.is_none() && self.major.is_none() && self.minor.is_none()
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
    /// Layout (registers after the prologue: R2 type, R3 access, R4 major, R5 minor):
    /// ```text
    /// for each access bit (mknod, read, write):
    ///     if !(R3 & bit) goto next_bit
    ///     for each rule naming the bit, LAST first:
    ///         if R2 != type || R4 != major || R5 != minor goto next_rule   (wildcards: no test)
    ///         allow: goto next_bit          deny: return 0
    ///     (no rule matched) goto next_bit, the v1 default
    /// next_bit ...
    /// return 1
    /// ```
    /// A rule without any test ends its bit's list: the rules before it can never decide, and
    /// the verifier refuses unreachable instructions.
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
        for bit in Access::EACH {
            let deciding = self.deciding_rules(bit);
            if deciding.iter().all(|r| r.allow) {
                // No rule can deny this access and the default allows it: no code for it.
                continue;
            }
            let next_bit = p.label();
            let check = p.label();
            p.push(Insn::JumpSet {
                dst: Reg::R3,
                imm: i32::from(bit.bits()),
                to: check,
            });
            p.push(Insn::Jump { to: next_bit });
            p.bind(check);
            for rule in &deciding {
                emit_rule(&mut p, rule, next_bit);
            }
            // Falling out of the last rule (it had tests) reaches next_bit: the default allows.
            // An instruction always follows: the next bit's test or the final return.
            p.bind(next_bit);
        }
        p.ret(1);
        tracing::trace!(instructions = p.len(), "device program generated");
        p.encode().map_err(CgroupError::from)
    }

    /// The rules that can decide `bit`, last listed first, up to and including the first one
    /// that matches every device (the rules listed before it can never be reached).
    fn deciding_rules(&self, bit: Access) -> Vec<DeviceRule> {
        let mut out = Vec::new();
        for rule in self.0.iter().rev().filter(|r| r.access.contains(bit)) {
            out.push(*rule);
            if rule.is_wildcard() {
                break;
            }
        }
        out
    }
}

/// One rule's tests and action; a mismatch falls through to the next rule.
fn emit_rule(p: &mut Program, rule: &DeviceRule, next_bit: Label) {
    let tests = [
        (Reg::R2, rule.kind.map(|k| k as i32)),
        (Reg::R4, rule.major.map(|m| m as i32)),
        (Reg::R5, rule.minor.map(|m| m as i32)),
    ];
    let next_rule = p.label();
    let mut tested = false;
    for (reg, value) in tests {
        if let Some(imm) = value {
            p.push(Insn::JumpNe {
                dst: reg,
                imm,
                to: next_rule,
            });
            tested = true;
        }
    }
    if rule.allow {
        // An allow without tests is the last rule of its bit and falls through to next_bit.
        if tested {
            p.push(Insn::Jump { to: next_bit });
        }
    } else {
        p.ret(0);
    }
    if tested {
        p.bind(next_rule);
    }
}

/// Loads the program for `rules` and attaches it to the cgroup v2 directory `path`.
pub(crate) fn attach(path: &Path, rules: &DeviceRules) -> Result<(), CgroupError> {
    let insns = rules.program()?;
    let err = |source| CgroupError::DeviceProgram {
        path: path.to_path_buf(),
        source,
    };
    let prog = bpf::load_device_program(&insns).map_err(err)?;
    bpf::attach_device_program(path, &prog).map_err(err)?;
    tracing::debug!(path = %path.display(), rules = rules.0.len(), instructions = insns.len(), "device allowlist attached");
    Ok(())
}

#[cfg(test)]
#[path = "devices_tests.rs"]
mod tests;
