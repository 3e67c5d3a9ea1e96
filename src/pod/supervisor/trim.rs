//! Returning start-up code to the page cache once the supervisor is idle.
//!
//! Starting a pod runs a lot of peapod (YAML and JSON decoding, the image store, the Spec
//! builder, netlink): megabytes of code pages that the idle loop (poll, read, write a status
//! file) never touches again, but that stay mapped, and so counted, in every pod's
//! supervisor. `madvise(MADV_DONTNEED)` on peapod's own executable mapping drops those page
//! table entries; the pages stay in the page cache and fault back in on the next use (a restart,
//! a delete). Only the read+execute mapping is touched: text is never written, so nothing can
//! be lost, whereas writable or relocated mappings hold private copies that DONTNEED would
//! discard.

use std::fs;

/// Unmaps the resident pages of this process's executable code (see the module doc).
pub fn release_code_pages() {
    let Ok(exe) = fs::read_link("/proc/self/exe") else {
        return;
    };
    let Some(exe) = exe.to_str().map(str::to_owned) else {
        return;
    };
    let Ok(maps) = fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for (start, end) in code_ranges(&maps, &exe) {
        // SAFETY: the range is a read+execute file mapping of our own executable; DONTNEED on
        // such a mapping only drops page table entries, and the kernel refaults the same
        // file content on the next access.
        let rc =
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "madvise failed");
        }
    }
}

/// The `r-xp` mappings of `exe` in a /proc/self/maps text.
fn code_ranges(maps: &str, exe: &str) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let range = f.next()?;
            let perms = f.next()?;
            let path = f.nth(3)?;
            if perms != "r-xp" || path != exe {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            Some((
                usize::from_str_radix(a, 16).ok()?,
                usize::from_str_radix(b, 16).ok()?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_executables_code_mapping() {
        let maps = "\
00400000-00500000 r--p 00000000 fe:01 12 /usr/bin/peapod
00500000-00d00000 r-xp 00100000 fe:01 12 /usr/bin/peapod
00d00000-00e00000 rw-p 00900000 fe:01 12 /usr/bin/peapod
7f0000000000-7f0000100000 r-xp 00000000 fe:01 99 /usr/lib/libc.so.6
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
";
        assert_eq!(
            code_ranges(maps, "/usr/bin/peapod"),
            vec![(0x500000, 0xd00000)]
        );
    }

    #[test]
    fn releasing_our_own_code_keeps_running() {
        release_code_pages();
        assert_eq!(code_ranges("", "/x"), vec![]);
    }
}
