//! Small facts about processes read from /proc [proc(5)], shared by the modules that fork,
//! clone and track processes.

use std::fs;
use std::path::{Path, PathBuf};

/// The fields of `/proc/<pid>/stat` peapod needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Field 3: `R`, `S`, `Z`, ...
    pub state: char,
    /// Field 22: start time in clock ticks since boot; with the pid it names a process uniquely
    /// across pid reuse.
    pub start_time: u64,
}

/// `/proc/<pid>/stat` of a live (or zombie) process, None if there is none.
pub fn stat(pid: i32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Parses a stat line. The comm field (2) may itself hold spaces and ')', so counting starts
/// after the LAST ')': the next field is 3 (state), and field 22 is 19 further on.
pub fn parse_stat(line: &str) -> Option<Stat> {
    let mut rest = line[line.rfind(')')? + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let start_time = rest.nth(18)?.parse().ok()?;
    Some(Stat { state, start_time })
}

/// The kernel's id of the current boot [random(4): `/proc/sys/kernel/random/boot_id`, a UUID
/// made anew at each boot]. Recorded with a pod's runtime state, it tells a pod whose
/// supervisor is gone because the host rebooted from one whose supervisor was killed.
pub const BOOT_ID_FILE: &str = "/proc/sys/kernel/random/boot_id";
/// For tests only: stands in for [`BOOT_ID_FILE`], so that a test can simulate a reboot
/// without one.
pub const ENV_BOOT_ID: &str = "PEAPOD_BOOT_ID";

/// This boot's id ([`BOOT_ID_FILE`], or [`ENV_BOOT_ID`] when set); empty when neither can be
/// read, which no recorded boot ever equals but an empty one.
pub fn boot_id() -> String {
    if let Some(id) = std::env::var_os(ENV_BOOT_ID).filter(|v| !v.is_empty()) {
        return id.to_string_lossy().into_owned();
    }
    fs::read_to_string(BOOT_ID_FILE)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The number of threads of this process. Code that forks and then keeps running (instead of
/// exec'ing at once) is only sound when this is 1.
pub fn thread_count() -> usize {
    fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The node's memory (`MemTotal` of /proc/meminfo) in bytes; 0 when it cannot be read.
pub fn mem_total_bytes() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// True when process `pid` blocks signal number `signo` (`SigBlk:` of `/proc/<pid>/status`): a
/// process that reads the signal from a signalfd blocks it, one that does not would die of a
/// signal whose default action is to terminate.
pub fn blocks_signal(pid: i32, signo: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| parse_sig_blocked(&s, signo))
        .unwrap_or(false)
}

fn parse_sig_blocked(status: &str, signo: i32) -> Option<bool> {
    let mask = status.lines().find_map(|l| l.strip_prefix("SigBlk:"))?;
    let mask = u64::from_str_radix(mask.trim(), 16).ok()?;
    let bit = u32::try_from(signo).ok()?.checked_sub(1)?;
    Some(mask.checked_shr(bit).is_some_and(|m| m & 1 == 1))
}

/// This process's open descriptors above stdio, from /proc/self/fd (the directory's own
/// descriptor, closed by the time this returns, among them).
pub fn open_fds() -> Vec<std::os::fd::RawFd> {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect()
}

/// pidfd_open(2): a descriptor that polls readable once the process has exited (Linux 5.3).
/// None when the process is gone or the kernel is older.
pub fn pidfd_open(pid: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as std::os::fd::RawFd) })
}

/// Waits at most `timeout` (to the millisecond, up to 65 s) for one of the processes of
/// `pidfds` ([`pidfd_open`]) to exit.
pub fn await_any_pidfd(pidfds: &[std::os::fd::OwnedFd], timeout: std::time::Duration) {
    use std::os::fd::AsFd;
    let mut polled: Vec<nix::poll::PollFd> = pidfds
        .iter()
        .map(|fd| nix::poll::PollFd::new(fd.as_fd(), nix::poll::PollFlags::POLLIN))
        .collect();
    let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    let _ = nix::poll::poll(&mut polled, nix::poll::PollTimeout::from(ms));
}

/// Decodes the octal escapes (`\040` for space) of a /proc/self/mountinfo path field.
pub fn unescape_mount_path(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&field[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(std::ffi::OsString::from(
        String::from_utf8_lossy(&out).into_owned(),
    ))
}

/// The mountinfo file of this process's mount namespace [proc(5)].
pub const MOUNTINFO: &str = "/proc/self/mountinfo";

/// One line of a mountinfo file, the fields peapod reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mountpoint: PathBuf,
    /// The optional fields (`shared:N`, `master:N`, `propagate_from:N`, `unbindable`): the
    /// mount's propagation [mount_namespaces(7)]; none for a private mount.
    pub optional: Vec<String>,
}

impl MountEntry {
    /// In a peer group: mounts and unmounts under it propagate to (and from) its peers.
    pub fn is_shared(&self) -> bool {
        self.optional.iter().any(|o| o.starts_with("shared:"))
    }

    /// A slave of a peer group: receives its mounts and unmounts.
    pub fn is_slave(&self) -> bool {
        self.optional.iter().any(|o| o.starts_with("master:"))
    }
}

/// Parses a mountinfo line: "id parent maj:min root mountpoint options [optional...] -
/// fstype source superoptions".
fn parse_mount_line(line: &str) -> Option<MountEntry> {
    let (left, _) = line.split_once(" - ")?;
    let mut fields = left.split(' ');
    let mountpoint = unescape_mount_path(fields.nth(4)?);
    let optional = fields.skip(1).map(str::to_string).collect();
    Some(MountEntry {
        mountpoint,
        optional,
    })
}

/// The mount `path` is on: the one with the longest mount point containing it, the last
/// (topmost) of those stacked there, as containerd's mount.Lookup finds it.
pub fn mount_containing(mountinfo: &str, path: &Path) -> Option<MountEntry> {
    let mut found: Option<MountEntry> = None;
    for entry in mountinfo.lines().filter_map(parse_mount_line) {
        if !path.starts_with(&entry.mountpoint) {
            continue;
        }
        let deeper = found.as_ref().is_none_or(|f| {
            entry.mountpoint.components().count() >= f.mountpoint.components().count()
        });
        if deeper {
            found = Some(entry);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_after_the_last_parenthesis() {
        let line = "42 (a) b) c) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: 'S',
                start_time: 98765
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn blocked_signals_from_the_status_mask() {
        let status = "Name:\tx\nSigBlk:\t0000000000014203\nSigIgn:\t0\n";
        assert_eq!(parse_sig_blocked(status, 1), Some(true)); // SIGHUP
        assert_eq!(parse_sig_blocked(status, 10), Some(true)); // SIGUSR1
        assert_eq!(parse_sig_blocked(status, 12), Some(false)); // SIGUSR2
        assert_eq!(parse_sig_blocked("Name:\tx\n", 10), None);
    }

    #[test]
    fn own_process() {
        let me = stat(std::process::id() as i32).unwrap();
        assert_ne!(me.state, 'Z');
        assert!(me.start_time > 0);
        assert!(thread_count() >= 1);
        assert!(mem_total_bytes() > 0);
    }

    #[test]
    fn the_mount_a_path_is_on_with_its_propagation() {
        let info = "\
22 1 0:21 / / rw shared:1 - ext4 /dev/vda rw
30 22 0:30 / /mnt rw - tmpfs t rw
31 30 0:31 / /mnt/sh\\040ared rw shared:7 master:1 - tmpfs t rw
32 30 0:32 / /mnt/slave rw master:7 - tmpfs t rw
33 30 0:33 / /mnt/slave rw - tmpfs t rw
";
        let at = |p: &str| mount_containing(info, Path::new(p)).unwrap();
        assert_eq!(at("/etc/x").mountpoint, Path::new("/"));
        assert!(at("/etc/x").is_shared());
        assert!(!at("/mnt/a").is_shared() && !at("/mnt/a").is_slave());
        let shared = at("/mnt/sh ared/d");
        assert_eq!(shared.mountpoint, Path::new("/mnt/sh ared"));
        assert!(shared.is_shared() && shared.is_slave());
        // A component-wise prefix only.
        assert_eq!(at("/mnt/slavery").mountpoint, Path::new("/mnt"));
        // The topmost of two mounts stacked at one point.
        assert!(!at("/mnt/slave/x").is_slave());
        assert_eq!(mount_containing("", Path::new("/x")), None);
    }
}
