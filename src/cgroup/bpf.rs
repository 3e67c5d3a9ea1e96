//! A tiny eBPF assembler for the dozen instructions a cgroup device program needs, and the
//! bpf(2) calls that load such a program and attach it to a cgroup v2 directory.
//!
//! Why our own and not a crate: the program (see `devices.rs`) is a straight list of compares
//! and returns; aya would bring a large dependency tree and libbpf-rs a C library for that.
//! runc and crun generate the same kind of program by hand (runc's `devicefilter`, crun's
//! `ebpf.c`). Encoding: include/uapi/linux/bpf.h, Documentation/bpf/standardization/
//! instruction-set.rst; the syscall: bpf(2).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

/// The registers the device program uses. R1 holds the context pointer on entry, R0 the
/// return value on exit (bpf.h: "R0: return value, R1-R5: arguments").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reg {
    R0 = 0,
    R1 = 1,
    R2 = 2,
    R3 = 3,
    R4 = 4,
    R5 = 5,
    R6 = 6,
}

/// A jump target inside a [`Program`], bound to an instruction index with [`Program::bind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Label(usize);

/// The instructions we emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Insn {
    /// `dst = *(u32 *)(src + off)`
    LoadWord { dst: Reg, src: Reg, off: i16 },
    /// `dst = (u32)dst & imm`
    And32 { dst: Reg, imm: i32 },
    /// `dst = (u32)dst >> imm`
    Rsh32 { dst: Reg, imm: i32 },
    /// `dst = (u32)imm`
    Mov32 { dst: Reg, imm: i32 },
    /// `dst = src`
    Mov64Reg { dst: Reg, src: Reg },
    /// `dst ^= imm` (imm sign-extended)
    Xor64 { dst: Reg, imm: i32 },
    /// `dst |= src`
    Or64Reg { dst: Reg, src: Reg },
    /// `if dst != imm goto to` (64-bit compare; imm is sign-extended, so callers keep it >= 0)
    JumpNe { dst: Reg, imm: i32, to: Label },
    /// `if dst & imm goto to`
    JumpSet { dst: Reg, imm: i32, to: Label },
    /// return R0
    Exit,
}

// Opcode parts (bpf.h, bpf_common.h): class | operation | source.
pub(crate) const CLASS_LDX: u8 = 0x01;
pub(crate) const CLASS_JMP: u8 = 0x05;
pub(crate) const CLASS_ALU: u8 = 0x04;
pub(crate) const CLASS_ALU64: u8 = 0x07;
pub(crate) const SIZE_W: u8 = 0x00;
pub(crate) const MODE_MEM: u8 = 0x60;
pub(crate) const OP_AND: u8 = 0x50;
pub(crate) const OP_RSH: u8 = 0x70;
pub(crate) const OP_MOV: u8 = 0xb0;
pub(crate) const OP_XOR: u8 = 0xa0;
pub(crate) const OP_OR: u8 = 0x40;
pub(crate) const OP_JNE: u8 = 0x50;
pub(crate) const OP_JSET: u8 = 0x40;
pub(crate) const OP_EXIT: u8 = 0x90;
/// Source operand: the immediate (`BPF_K`).
pub(crate) const SRC_K: u8 = 0x00;
pub(crate) const SRC_X: u8 = 0x08;

/// Errors of the assembler and of the bpf(2) calls.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// A bug in the program generator: a label never bound, or a jump the encoding cannot hold.
    #[error("device program: {0}")]
    Assemble(String),
    #[error("{op}: {errno}{}", verifier_suffix(.log))]
    Sys {
        op: &'static str,
        errno: Errno,
        /// The kernel verifier's log, when it rejected the program.
        log: String,
    },
}

fn verifier_suffix(log: &str) -> String {
    if log.trim().is_empty() {
        String::new()
    } else {
        format!(" (verifier: {})", log.trim().replace('\n', "; "))
    }
}

/// A program under construction: instructions plus labels resolved at [`Program::encode`].
#[derive(Debug, Default)]
pub(crate) struct Program {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
}

impl Program {
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Binds `label` to the next instruction pushed.
    pub fn bind(&mut self, label: Label) {
        self.labels[label.0] = Some(self.insns.len());
    }

    pub fn push(&mut self, insn: Insn) {
        self.insns.push(insn);
    }

    /// `r0 = value; exit`
    pub fn ret(&mut self, value: i32) {
        self.push(Insn::Mov32 {
            dst: Reg::R0,
            imm: value,
        });
        self.push(Insn::Exit);
    }

    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// The program as the kernel's `struct bpf_insn` array (8 bytes each, native byte order).
    pub fn encode(&self) -> Result<Vec<u64>, BpfError> {
        self.insns
            .iter()
            .enumerate()
            .map(|(pc, insn)| self.encode_one(pc, insn))
            .collect()
    }

    /// Jump offsets count from the instruction after the jump; only forward jumps are emitted
    /// (the verifier rejects loops anyway), and every target must be an instruction.
    fn offset(&self, pc: usize, to: Label) -> Result<i16, BpfError> {
        let target = self.labels[to.0]
            .ok_or_else(|| BpfError::Assemble(format!("label {} is never bound", to.0)))?;
        if target <= pc || target >= self.insns.len() {
            return Err(BpfError::Assemble(format!(
                "jump from {pc} to {target} is not a forward jump inside the program"
            )));
        }
        i16::try_from(target - pc - 1)
            .map_err(|_| BpfError::Assemble(format!("jump from {pc} to {target} is too long")))
    }

    fn encode_one(&self, pc: usize, insn: &Insn) -> Result<u64, BpfError> {
        let r0 = Reg::R0;
        Ok(match *insn {
            Insn::LoadWord { dst, src, off } => {
                raw(CLASS_LDX | MODE_MEM | SIZE_W, dst, src, off, 0)
            }
            Insn::And32 { dst, imm } => raw(CLASS_ALU | OP_AND | SRC_K, dst, r0, 0, imm),
            Insn::Rsh32 { dst, imm } => raw(CLASS_ALU | OP_RSH | SRC_K, dst, r0, 0, imm),
            Insn::Mov32 { dst, imm } => raw(CLASS_ALU | OP_MOV | SRC_K, dst, r0, 0, imm),
            Insn::Mov64Reg { dst, src } => raw(CLASS_ALU64 | OP_MOV | SRC_X, dst, src, 0, 0),
            Insn::Xor64 { dst, imm } => raw(CLASS_ALU64 | OP_XOR | SRC_K, dst, r0, 0, imm),
            Insn::Or64Reg { dst, src } => raw(CLASS_ALU64 | OP_OR | SRC_X, dst, src, 0, 0),
            Insn::JumpNe { dst, imm, to } => raw(
                CLASS_JMP | OP_JNE | SRC_K,
                dst,
                r0,
                self.offset(pc, to)?,
                imm,
            ),
            Insn::JumpSet { dst, imm, to } => raw(
                CLASS_JMP | OP_JSET | SRC_K,
                dst,
                r0,
                self.offset(pc, to)?,
                imm,
            ),
            Insn::Exit => raw(CLASS_JMP | OP_EXIT, r0, r0, 0, 0),
        })
    }
}

/// `struct bpf_insn { u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm; }` as one word in
/// memory order. The register nibbles are bitfields, so their order follows the byte order.
fn raw(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> u64 {
    let regs = if cfg!(target_endian = "little") {
        (dst as u8) | (src as u8) << 4
    } else {
        (dst as u8) << 4 | (src as u8)
    };
    let mut bytes = [0u8; 8];
    bytes[0] = code;
    bytes[1] = regs;
    bytes[2..4].copy_from_slice(&off.to_ne_bytes());
    bytes[4..8].copy_from_slice(&imm.to_ne_bytes());
    u64::from_ne_bytes(bytes)
}

// bpf(2) commands, program and attach types, flags (include/uapi/linux/bpf.h).
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Lets descendants attach programs of their own, which then run too (all must allow), as
/// runc attaches: a nested runtime in a privileged pod can still restrict its containers.
const BPF_F_ALLOW_MULTI: u32 = 1 << 1;
/// Verifier log size when a load is retried to explain a rejection.
const LOG_SIZE: usize = 64 * 1024;
/// The program's name in `bpftool prog` (at most 15 characters).
const PROG_NAME: &[u8] = b"peapod_devices";
/// Our license (Cargo.toml); the program calls no GPL-only helper.
const LICENSE: &str = "Apache-2.0";

/// The `BPF_PROG_LOAD` part of `union bpf_attr`, up to `expected_attach_type` (Linux 4.17);
/// the kernel zero-fills what we do not pass.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The `BPF_PROG_ATTACH` part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// bpf(2) with one command and its part of `union bpf_attr`.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> Result<libc::c_long, Errno> {
    // SAFETY: bpf(2) reads (and for some commands writes) `size_of::<T>()` bytes at `attr`,
    // a repr(C) prefix of `union bpf_attr` that outlives the call; the pointers stored in it
    // point to buffers the caller keeps alive until we return.
    let ret =
        unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

/// Loads a `BPF_PROG_TYPE_CGROUP_DEVICE` program. A rejected program is loaded once more with
/// a verifier log so the error says why.
pub(crate) fn load_device_program(insns: &[u64]) -> Result<OwnedFd, BpfError> {
    let load = |log: Option<&mut Vec<u8>>| -> Result<OwnedFd, Errno> {
        let license = CString::new(LICENSE).map_err(|_| Errno::EINVAL)?;
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: u32::try_from(insns.len()).map_err(|_| Errno::E2BIG)?,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            ..Default::default()
        };
        attr.prog_name[..PROG_NAME.len()].copy_from_slice(PROG_NAME);
        if let Some(buf) = log {
            attr.log_level = 1;
            attr.log_size = buf.len() as u32;
            attr.log_buf = buf.as_mut_ptr() as u64;
        }
        let fd = with_memlock_retry(|| bpf(BPF_PROG_LOAD, &mut attr))?;
        // SAFETY: BPF_PROG_LOAD returned a new file descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    };
    match load(None) {
        Ok(fd) => Ok(fd),
        Err(errno @ (Errno::EACCES | Errno::EINVAL)) => {
            let mut buf = vec![0u8; LOG_SIZE];
            let _ = load(Some(&mut buf));
            let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
            Err(BpfError::Sys {
                op: "bpf(BPF_PROG_LOAD) of the device program",
                errno,
                log: String::from_utf8_lossy(&buf[..end]).into_owned(),
            })
        }
        Err(errno) => Err(BpfError::Sys {
            op: "bpf(BPF_PROG_LOAD) of the device program",
            errno,
            log: String::new(),
        }),
    }
}

/// Kernels before 5.11 charge BPF programs to RLIMIT_MEMLOCK, whose default (64 KiB on older
/// distributions) a few dozen containers exhaust: EPERM. Retry once with the limit raised, as
/// runc raises it, then put it back: the containers inherit our limits.
fn with_memlock_retry(
    mut call: impl FnMut() -> Result<libc::c_long, Errno>,
) -> Result<libc::c_long, Errno> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
    match call() {
        Err(Errno::EPERM) => {
            let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_MEMLOCK) else {
                return Err(Errno::EPERM);
            };
            if setrlimit(Resource::RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY).is_err() {
                return Err(Errno::EPERM);
            }
            let result = call();
            if let Err(e) = setrlimit(Resource::RLIMIT_MEMLOCK, soft, hard) {
                tracing::warn!(error = %e, "restoring RLIMIT_MEMLOCK failed");
            }
            result
        }
        other => other,
    }
}

/// Attaches a loaded device program to the cgroup v2 directory `cgroup`. The cgroup keeps the
/// program alive: the caller may close `prog`, and removing the cgroup releases it.
pub(crate) fn attach_device_program(cgroup: &Path, prog: &OwnedFd) -> Result<(), BpfError> {
    let sys = |op, errno| BpfError::Sys {
        op,
        errno,
        log: String::new(),
    };
    let dir = open(
        cgroup,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| sys("open the cgroup directory", e))?;
    let mut attr = ProgAttachAttr {
        target_fd: dir.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attr)
        .map_err(|e| sys("bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE)", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each instruction's bytes in memory order.
    fn bytes(p: &Program) -> Vec<[u8; 8]> {
        p.encode()
            .unwrap()
            .iter()
            .map(|w| w.to_ne_bytes())
            .collect()
    }

    /// Known encodings (as `llvm-objdump -d` prints them for clang's BPF target).
    #[test]
    fn encodes_like_the_kernel_expects() {
        let mut p = Program::default();
        let skip = p.label();
        p.push(Insn::LoadWord {
            dst: Reg::R2,
            src: Reg::R1,
            off: 4,
        });
        p.push(Insn::JumpNe {
            dst: Reg::R2,
            imm: 136,
            to: skip,
        });
        p.ret(1);
        p.bind(skip);
        p.ret(0);
        let words = bytes(&p);
        assert_eq!(words[0], [0x61, 0x12, 0x04, 0x00, 0, 0, 0, 0]);
        assert_eq!(words[1], [0x55, 0x02, 0x02, 0x00, 0x88, 0, 0, 0]);
        assert_eq!(words[2], [0xb4, 0x00, 0x00, 0x00, 0x01, 0, 0, 0]);
        assert_eq!(words[3], [0x95, 0, 0, 0, 0, 0, 0, 0]);

        let mut p = Program::default();
        p.push(Insn::Mov64Reg {
            dst: Reg::R6,
            src: Reg::R4,
        });
        p.push(Insn::Xor64 {
            dst: Reg::R6,
            imm: 136,
        });
        p.push(Insn::Or64Reg {
            dst: Reg::R0,
            src: Reg::R6,
        });
        let words = bytes(&p);
        assert_eq!(words[0], [0xbf, 0x46, 0, 0, 0, 0, 0, 0]);
        assert_eq!(words[1], [0xa7, 0x06, 0, 0, 0x88, 0, 0, 0]);
        assert_eq!(words[2], [0x4f, 0x60, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn unbound_and_backward_labels_are_refused() {
        let mut p = Program::default();
        let never = p.label();
        p.push(Insn::JumpNe {
            dst: Reg::R0,
            imm: 0,
            to: never,
        });
        p.push(Insn::Exit);
        assert!(p.encode().unwrap_err().to_string().contains("never bound"));

        let mut p = Program::default();
        let back = p.label();
        p.bind(back);
        p.push(Insn::JumpNe {
            dst: Reg::R0,
            imm: 0,
            to: back,
        });
        assert!(p.encode().unwrap_err().to_string().contains("forward"));
    }

    #[test]
    fn attr_layouts_match_the_kernel() {
        // offsetof(union bpf_attr, expected_attach_type) == 68 for BPF_PROG_LOAD.
        assert_eq!(std::mem::size_of::<ProgLoadAttr>(), 72);
        assert_eq!(std::mem::size_of::<ProgAttachAttr>(), 20);
    }
}
