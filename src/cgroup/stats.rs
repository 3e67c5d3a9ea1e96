//! What `top` reads from a cgroup v2 directory: the CPU time used so far (`cpu.stat`
//! usage_usec) and the memory working set as the kubelet's cadvisor computes it
//! (`memory.current` minus `inactive_file` of `memory.stat`, never below zero). Read-only.

use std::path::Path;

use super::CgroupError;

pub const FILE_CPU_STAT: &str = "cpu.stat";
pub const FILE_MEMORY_CURRENT: &str = "memory.current";
pub const FILE_MEMORY_STAT: &str = "memory.stat";
const CPU_USAGE_KEY: &str = "usage_usec";
const INACTIVE_FILE_KEY: &str = "inactive_file";

/// One reading of a cgroup's usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// CPU time used since the cgroup was made, in microseconds.
    pub cpu_usec: u64,
    /// Bytes of memory in use that cannot be reclaimed at once.
    pub working_set: u64,
}

/// A `key value` line's value in a flat-keyed cgroup file.
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
}

fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(super::io_err(path))
}

/// Reads the usage of the cgroup at `dir`. A cgroup without the cpu and memory controllers
/// (a hybrid host) has no such files: the error names the one missing.
pub fn read_usage(dir: &Path) -> Result<Usage, CgroupError> {
    let cpu = read(&dir.join(FILE_CPU_STAT))?;
    let current = read(&dir.join(FILE_MEMORY_CURRENT))?;
    let stat = read(&dir.join(FILE_MEMORY_STAT))?;
    let invalid = |file: &str| CgroupError::Parse {
        path: dir.join(file),
        reason: "no usage in it".to_string(),
    };
    let cpu_usec = keyed(&cpu, CPU_USAGE_KEY).ok_or_else(|| invalid(FILE_CPU_STAT))?;
    let usage: u64 = current
        .trim()
        .parse()
        .map_err(|_| invalid(FILE_MEMORY_CURRENT))?;
    let inactive = keyed(&stat, INACTIVE_FILE_KEY).unwrap_or(0);
    Ok(Usage {
        cpu_usec,
        working_set: usage.saturating_sub(inactive),
    })
}

/// Millicores used between two readings `elapsed_usec` apart.
pub fn millicores(before: &Usage, after: &Usage, elapsed_usec: u64) -> u64 {
    if elapsed_usec == 0 {
        return 0;
    }
    after.cpu_usec.saturating_sub(before.cpu_usec) * 1000 / elapsed_usec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_set_and_cpu_rate() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE_CPU_STAT),
            "usage_usec 1500\nuser_usec 1000\n",
        )
        .unwrap();
        std::fs::write(dir.path().join(FILE_MEMORY_CURRENT), "10485760\n").unwrap();
        std::fs::write(
            dir.path().join(FILE_MEMORY_STAT),
            "anon 1\ninactive_file 2097152\nactive_file 3\n",
        )
        .unwrap();
        let u = read_usage(dir.path()).unwrap();
        assert_eq!(
            u,
            Usage {
                cpu_usec: 1500,
                working_set: 8 * 1024 * 1024
            }
        );
        let later = Usage {
            cpu_usec: 1500 + 250_000,
            ..u
        };
        assert_eq!(millicores(&u, &later, 500_000), 500);
        std::fs::remove_file(dir.path().join(FILE_CPU_STAT)).unwrap();
        assert!(read_usage(dir.path())
            .unwrap_err()
            .to_string()
            .contains("cpu.stat"));
    }
}
