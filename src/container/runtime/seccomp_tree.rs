//! One seccomp filter as a binary search over the syscall number, where seccompiler emits a
//! linear chain (one JEQ and three more instructions per syscall named).
//!
//! Why: the kernel's cost of loading a filter grows with its length (the classic-to-eBPF
//! conversion, the JIT, and the per-syscall-number emulation that builds the filter's
//! action cache, which walks the chain once per syscall number). containerd's default
//! profile compiled as a chain is about 1,600 instructions, whose load took 0.6-0.9 ms of the
//! container init's time; as a search over ranges of numbers with the same outcome it is
//! a few hundred, and each syscall of the container walks O(log n) jumps instead of O(n).
//!
//! The verdict for every (arch, nr, args) is the chain's: numbers in no rule get the
//! mismatch action, unconditional ones the match action, and those with argument rules run
//! seccompiler's own rule code (`BpfProgram::from(SeccompRule)`), followed by the match
//! action, each rule jumping to the next when it does not match, then the mismatch action.
//! `seccomp_tests.rs` checks the equivalence instruction by instruction against seccompiler's
//! chain for every syscall number.

use std::collections::BTreeMap;

use seccompiler::{sock_filter, BpfProgram, SeccompAction, SeccompRule};

// <linux/bpf_common.h>: BPF_LD (0x00) | BPF_W (0x00) | BPF_ABS (0x20); BPF_JMP (0x05) with
// BPF_JA (0x00), BPF_JEQ (0x10) or BPF_JGE (0x30), | BPF_K (0x00); BPF_RET (0x06) | BPF_K.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;
/// Offsets in `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
/// The kernel's limit on a filter's length (BPF_MAXINSNS).
pub(crate) const MAX_LEN: usize = 4096;

/// AUDIT_ARCH_* of <linux/audit.h> for the build target: EM_* | __AUDIT_ARCH_64BIT |
/// __AUDIT_ARCH_LE, as seccompiler checks it.
const fn audit_arch() -> u32 {
    const AUDIT_64_LE: u32 = 0x8000_0000 | 0x4000_0000;
    if cfg!(target_arch = "aarch64") {
        183 | AUDIT_64_LE
    } else if cfg!(target_arch = "riscv64") {
        243 | AUDIT_64_LE
    } else {
        62 | AUDIT_64_LE
    }
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// What a range of syscall numbers leads to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Leaf {
    Return(u32),
    /// The rule block of the syscall with this index among the conditional ones.
    Block(usize),
}

/// Before the block offsets are known: an instruction, or a jump to a rule block.
enum Ins {
    Raw(sock_filter),
    ToBlock(usize),
}

/// The filter: `rules` per syscall number (empty: unconditional), `matched` where a rule
/// matches, `mismatch` elsewhere. Err(len) when it would exceed the kernel's limit.
pub(crate) fn program(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram, usize> {
    let (on_match, on_mismatch) = (u32::from(matched), u32::from(mismatch));
    // Ranges [lo, next lo) of numbers with one outcome, from 0 to u32::MAX.
    let mut ranges: Vec<(u32, Leaf)> = vec![(0, Leaf::Return(on_mismatch))];
    let mut blocks: Vec<BpfProgram> = Vec::new();
    for (nr, chain) in rules {
        // Syscall numbers are small and non-negative; any other never matches a u32 load.
        let Ok(nr) = u32::try_from(nr) else {
            continue;
        };
        if chain.is_empty() {
            push(&mut ranges, nr, Leaf::Return(on_match));
        } else {
            let mut block = Vec::new();
            for rule in chain {
                block.extend(BpfProgram::from(rule));
                block.push(stmt(BPF_RET_K, on_match));
            }
            block.push(stmt(BPF_RET_K, on_mismatch));
            push(&mut ranges, nr, Leaf::Block(blocks.len()));
            blocks.push(block);
        }
        if let Some(next) = nr.checked_add(1) {
            push(&mut ranges, next, Leaf::Return(on_mismatch));
        }
    }
    let tree = search(&ranges);
    let mut out = vec![
        stmt(BPF_LD_W_ABS, DATA_ARCH),
        jump(BPF_JMP_JEQ_K, audit_arch(), 1, 0),
        stmt(BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, DATA_NR),
    ];
    let mut starts = Vec::with_capacity(blocks.len());
    let mut at = out.len() + tree.len();
    for b in &blocks {
        starts.push(at);
        at += b.len();
    }
    if at + 1 > MAX_LEN {
        return Err(at + 1);
    }
    for ins in tree {
        out.push(match ins {
            Ins::Raw(i) => i,
            // A forward jump: the blocks come after the whole tree.
            Ins::ToBlock(b) => stmt(BPF_JMP_JA, (starts[b] - out.len() - 1) as u32),
        });
    }
    let conditional = !blocks.is_empty();
    for b in blocks {
        out.extend(b);
    }
    if conditional {
        // Never reached here, but the kernel checks every jump's target: seccompiler's rule code
        // has an exit jump (taken when its syscall number did not match, which the search
        // never lets happen) to the instruction after the syscall's block, so the last block
        // needs one after it.
        out.push(stmt(BPF_RET_K, on_mismatch));
    }
    Ok(out)
}

/// Starts a range at `lo` (replacing one that starts there), or extends the last one when it
/// has the same outcome.
fn push(ranges: &mut Vec<(u32, Leaf)>, lo: u32, leaf: Leaf) {
    if ranges.last().is_some_and(|(start, _)| *start == lo) {
        ranges.pop();
    }
    if ranges.last().is_some_and(|(_, last)| *last == leaf) {
        return;
    }
    ranges.push((lo, leaf));
}

/// The search over `ranges` (sorted by their first number, the first starting at 0): each
/// node sends numbers at or above the middle range's start to the right half.
fn search(ranges: &[(u32, Leaf)]) -> Vec<Ins> {
    if let [(_, leaf)] = ranges {
        return vec![match *leaf {
            Leaf::Return(ret) => Ins::Raw(stmt(BPF_RET_K, ret)),
            Leaf::Block(b) => Ins::ToBlock(b),
        }];
    }
    let mid = ranges.len() / 2;
    let (left, right) = (search(&ranges[..mid]), search(&ranges[mid..]));
    let pivot = ranges[mid].0;
    let mut out = Vec::with_capacity(left.len() + right.len() + 2);
    match u8::try_from(left.len()) {
        Ok(skip) => out.push(Ins::Raw(jump(BPF_JMP_JGE_K, pivot, skip, 0))),
        // A conditional jump reaches 255 instructions; past the left half, through a JA.
        Err(_) => {
            out.push(Ins::Raw(jump(BPF_JMP_JGE_K, pivot, 0, 1)));
            out.push(Ins::Raw(stmt(BPF_JMP_JA, left.len() as u32)));
        }
    }
    out.extend(left);
    out.extend(right);
    out
}
