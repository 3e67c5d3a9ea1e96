//! Giving memory back once the supervisor is idle.
//!
//! Starting a pod runs a lot of peapod (YAML and JSON decoding, the image store, the Spec
//! builder, netlink) that the idle loop (poll, read, write a status file) never touches again.
//! What that leaves resident, and what is released:
//! - the executable's code and read-only data (`.text`, `.rodata`, `.eh_frame`): file pages
//!   that stay mapped, and so counted, in every pod's supervisor. `madvise(MADV_DONTNEED)`
//!   drops the page table entries; the pages stay in the page cache and fault back in on the
//!   next use (a restart, a delete). Only mappings with no private copy are touched (smaps'
//!   `Anonymous: 0`): the relocated `.data.rel.ro` is read-only too, but its pages are the
//!   process's own copies, which DONTNEED would replace with the file's unrelocated bytes;
//! - the stack below the current frame, which start-up grew deep (Spec building, decoding)
//!   and the loop never reaches again: dead pages, handed back and refaulted as zeroes if a
//!   later call goes that deep;
//! - the heap's free pages (`malloc_trim`), left by start-up's short-lived allocations.
//!
//! A pause process that could not execute the pause program (`sandbox::pause`) goes further
//! ([`release_for_good`]): forked from the supervisor, it holds the original of every heap page
//! the supervisor wrote since (copy-on-write leaves the copy with the writer), yet it never
//! allocates after its setup: its whole heap is handed back.
//!
//! What to release is learned from /proc/self/smaps once per process, not at every trim: a pod
//! whose probe runs every second trims after each round, and reading smaps (the kernel walks
//! every mapping's page tables) and parsing it each time took its supervisor 2.3-2.5 ms of CPU
//! per second against 1.0-1.2 ms with what was learned (release build, `/proc/PID/schedstat`
//! over 30 s of an exec probe `true` with periodSeconds 1; the idle memory is the same).

use std::fs;

/// Pages kept below the current stack pointer: poll's own frames, made right after the trim. A
/// wake's handlers go deeper and fault a few zeroed pages in, which the next trim (after the
/// next quiet wait, `dispatch::Idle`) gives back: keeping 16 kB instead cost each keeper and
/// supervisor about 8-12 kB of private stack for the pod's life.
const STACK_KEPT_BELOW: usize = 4096;

/// Releases the memory the idle loop does not need (see the module doc).
///
/// Reads /proc/self/smaps once per process (`Learned`): what it finds does not move while
/// the process lives. The executable's mappings are fixed once the dynamic loader is done, and
/// a clean one stays clean (nothing writes to code or read-only data); the stack's mapping only
/// grows down, so its start when learned stays inside it. A pod whose probes run every second
/// trims after each round: reading and parsing smaps each time cost its supervisor more CPU
/// than the probe's own fork and exec (figures in the module doc).
pub fn release_idle_memory() {
    let pid = std::process::id();
    let here = 0u8;
    let sp = std::ptr::addr_of!(here) as usize;
    LEARNED.with(|l| {
        let mut l = l.borrow_mut();
        let learned = match l.take() {
            Some(known) if known.pid == pid => l.insert(known),
            _ => l.insert(Learned::read(pid)),
        };
        for (start, end) in learned.ranges(sp) {
            // SAFETY: each range is either a mapping of our own executable that holds no
            // private page (DONTNEED only drops page table entries and the kernel refaults the
            // same file content), or the part of our stack below the live frames (dead memory,
            // refaulted as zero pages on the next use).
            let rc = unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED)
            };
            if rc != 0 {
                tracing::debug!(error = %std::io::Error::last_os_error(), "madvise failed");
            }
        }
    });
    // SAFETY: malloc_trim only returns free heap memory to the kernel; single-threaded caller.
    unsafe { libc::malloc_trim(0) };
}

/// What a process's smaps says there is to release: the executable's clean mappings, the
/// stack's mapping and the heap's. [`release_idle_memory`] keeps what it learned the first time
/// it ran in a process (not the heap: the idle loop's is live); a forked child shares the
/// addresses, not the knowledge: `pid` tells whose it is (the keeper forks supervisors).
struct Learned {
    pid: u32,
    code: Vec<(usize, usize)>,
    stack: Option<(usize, usize)>,
    heap: Option<(usize, usize)>,
}

impl Learned {
    /// This process's smaps, read now; nothing to release if /proc cannot tell.
    fn read(pid: u32) -> Learned {
        let exe = fs::read_link("/proc/self/exe");
        match (
            exe.as_deref().map(|e| e.to_str()),
            fs::read_to_string("/proc/self/smaps"),
        ) {
            (Ok(Some(exe)), Ok(smaps)) => Learned::parse(pid, &smaps, exe),
            _ => Learned::parse(pid, "", ""),
        }
    }

    /// What the smaps text of process `pid`, whose executable is `exe`, says.
    fn parse(pid: u32, smaps: &str, exe: &str) -> Learned {
        let mut learned = Learned {
            pid,
            code: Vec::new(),
            stack: None,
            heap: None,
        };
        for m in mappings(smaps) {
            if m.path == exe && (m.perms == "r--p" || m.perms == "r-xp") && m.anonymous_kb == 0 {
                learned.code.push((m.start, m.end));
            } else if m.path == "[stack]" {
                learned.stack = Some((m.start, m.end));
            } else if m.path == "[heap]" {
                learned.heap = Some((m.start, m.end));
            }
        }
        learned
    }

    /// The ranges an idle trim hands back: the executable's read-only or code mappings that
    /// hold no private page, and the stack below `sp` (less [`STACK_KEPT_BELOW`]), if the
    /// stack holds `sp`. The stack's mapping only grows down: its start when learned stays in it.
    fn ranges(&self, sp: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let dead_stack = self.stack.and_then(|(start, end)| {
            let top = (sp & !4095).saturating_sub(STACK_KEPT_BELOW);
            ((start..end).contains(&sp) && top > start).then_some((start, top))
        });
        self.code.iter().copied().chain(dead_stack)
    }
}

thread_local! {
    static LEARNED: std::cell::RefCell<Option<Learned>> = const { std::cell::RefCell::new(None) };
}

/// At most this many ranges are released by [`release_for_good`] (in practice: the code, the
/// read-only data, the heap and the stack).
const RANGES_MAX: usize = 16;

/// [`release_idle_memory`] and the whole heap (`[heap]`), for a process that never allocates
/// again, nor touches what it allocated: the pause process once its setup is done. Its
/// allocator's own records are in those pages too: a later allocation would crash.
pub fn release_for_good() {
    let here = 0u8;
    let sp = std::ptr::addr_of!(here) as usize;
    // The ranges are copied to the stack and every heap value dropped before the heap goes.
    let mut ranges = [(0usize, 0usize); RANGES_MAX];
    let mut count = 0;
    let learned = Learned::read(std::process::id());
    for range in learned.ranges(sp).chain(learned.heap) {
        if count < RANGES_MAX {
            ranges[count] = range;
            count += 1;
        }
    }
    drop(learned);
    for &(start, end) in &ranges[..count] {
        // SAFETY: as in `release_idle_memory`, plus the heap, which the caller never uses
        // again (refaulted as zero pages if it did).
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
}

/// One mapping of a /proc/<pid>/smaps text: its range, permissions, path and how much of it
/// is private anonymous memory (a copy-on-write copy for a file mapping).
struct Mapping<'a> {
    start: usize,
    end: usize,
    perms: &'a str,
    path: &'a str,
    anonymous_kb: u64,
}

fn mappings(smaps: &str) -> Vec<Mapping<'_>> {
    let mut out: Vec<Mapping<'_>> = Vec::new();
    for line in smaps.lines() {
        if let Some(kb) = line.strip_prefix("Anonymous:") {
            if let Some(m) = out.last_mut() {
                m.anonymous_kb = kb.trim().trim_end_matches("kB").trim().parse().unwrap_or(1);
            }
            continue;
        }
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        else {
            continue;
        };
        out.push(Mapping {
            start,
            end,
            perms,
            path: f.nth(3).unwrap_or(""),
            // Unknown until the mapping's Anonymous line: never released without it.
            anonymous_kb: u64::MAX,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
00400000-00500000 r--p 00000000 fe:01 12 /usr/bin/peapod
Rss:                 776 kB
Anonymous:             0 kB
00500000-00d00000 r-xp 00100000 fe:01 12 /usr/bin/peapod
Anonymous:             0 kB
00d00000-00e00000 r--p 00900000 fe:01 12 /usr/bin/peapod
Anonymous:           560 kB
00e00000-00e03000 rw-p 00a00000 fe:01 12 /usr/bin/peapod
Anonymous:            12 kB
7f0000000000-7f0000100000 r-xp 00000000 fe:01 99 /usr/lib/libc.so.6
Anonymous:             0 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
Anonymous:           116 kB
";

    #[test]
    fn clean_executable_mappings_and_the_dead_stack() {
        let sp = 0x7ffd00018123;
        let learned = Learned::parse(1, SMAPS, "/usr/bin/peapod");
        assert_eq!(
            learned.ranges(sp).collect::<Vec<_>>(),
            vec![
                (0x400000, 0x500000),
                (0x500000, 0xd00000),
                (0x7ffd00000000, 0x7ffd00018000 - STACK_KEPT_BELOW)
            ]
        );
    }

    #[test]
    fn relocated_or_unknown_mappings_are_kept() {
        // The relocated .data.rel.ro (Anonymous > 0) is never in the list, nor a mapping whose
        // Anonymous line is missing, nor a stack that does not hold sp.
        let no_anon_line = "00400000-00500000 r--p 00000000 fe:01 12 /usr/bin/peapod\n";
        let learned = Learned::parse(1, no_anon_line, "/usr/bin/peapod");
        assert_eq!(learned.ranges(0).collect::<Vec<_>>(), vec![]);
        let learned = Learned::parse(1, SMAPS, "/usr/bin/peapod");
        assert!(!learned
            .ranges(0x1000)
            .any(|(a, _)| a == 0xd00000 || a == 0x7ffd00000000));
    }

    #[test]
    fn what_is_learned_is_the_executables_clean_code_and_the_stack() {
        let learned = Learned::read(std::process::id());
        assert!(!learned.code.is_empty(), "no clean code mapping found");
        let (start, end) = learned.stack.expect("no [stack] mapping found");
        assert!(start < end);
        // The relocated .data.rel.ro holds private copies: never among the ranges.
        let smaps = fs::read_to_string("/proc/self/smaps").unwrap();
        let exe = fs::read_link("/proc/self/exe").unwrap();
        let dirty: Vec<_> = mappings(&smaps)
            .into_iter()
            .filter(|m| m.path == exe.to_str().unwrap() && m.anonymous_kb > 0)
            .map(|m| (m.start, m.end))
            .collect();
        assert!(learned.code.iter().all(|r| !dirty.contains(r)));
    }

    #[test]
    fn releasing_keeps_the_process_running() {
        let v: Vec<u64> = (0..100_000).collect();
        release_idle_memory();
        assert_eq!(v.iter().sum::<u64>(), 4_999_950_000);
        release_idle_memory();
    }
}
