//! Links the `peapod` binary as a position-independent executable (rustc's default), as runc
//! and crun are: a process that runs as root and parses what containers write keeps ASLR for
//! its own code and data.
//!
//! What PIE costs is its ~19,000 relative relocations: with classic RELA entries (24 bytes
//! each, ~450 kB read at every exec and kept resident) an idle supervisor measured 597 kB PSS
//! against 509 kB linked non-PIE. Packed as DT_RELR (binutils 2.38+, glibc 2.36+: Debian 12)
//! the table is ~9 kB and the same supervisor measures 520 kB (`scripts/supervisor-pss BIN 10`,
//! release builds, 10 idle pods).
//!
//! It also compiles the pause program (`src/sandbox/pause_exe.rs`) that `sandbox::pause`
//! embeds: with the same `$RUSTC`, for the same target, `no_std`, static and
//! position-independent with no dynamic relocation (so no loader: the kernel maps it at a
//! random address and jumps in), under 2 kB. Targets it has no system calls for (other than
//! x86_64 and aarch64 Linux) keep the forked pause process (`cfg(peapod_pause_exe)` unset).
use std::path::PathBuf;
use std::process::Command;

const PAUSE_SOURCE: &str = "src/sandbox/pause_exe.rs";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={PAUSE_SOURCE}");
    println!("cargo:rustc-check-cfg=cfg(peapod_pause_exe)");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if os == "linux" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
        if arch == "x86_64" || arch == "aarch64" {
            build_pause();
            println!("cargo:rustc-cfg=peapod_pause_exe");
        }
    }
}

/// Compiles the pause program into `$OUT_DIR/peapod-pause`; panics (failing the build) with
/// rustc's output if it does not compile or links with relocations.
fn build_pause() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let exe = out.join("peapod-pause");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    let mut cmd = Command::new(rustc);
    cmd.args([
        "--edition=2021",
        "--crate-type=bin",
        "--crate-name=peapod_pause",
    ])
    .args(["--target", &target])
    .args([
        "-C",
        "opt-level=s",
        "-C",
        "panic=abort",
        "-C",
        "strip=symbols",
    ])
    .args(["-C", "relocation-model=pie"])
    // No C runtime, no libc: `_start` is ours. One read-only page with the code
    // (noseparate-code) and no RELRO segment to protect.
    .args(["-C", "link-arg=-nostartfiles", "-C", "link-arg=-nostdlib"])
    .args([
        "-C",
        "link-arg=-static-pie",
        "-C",
        "link-arg=-Wl,--build-id=none",
    ])
    .args([
        "-C",
        "link-arg=-Wl,-z,noseparate-code",
        "-C",
        "link-arg=-Wl,-z,norelro",
    ]);
    if let Some(linker) = std::env::var_os("RUSTC_LINKER") {
        cmd.arg("-C")
            .arg(format!("linker={}", linker.to_string_lossy()));
    }
    cmd.arg("-o").arg(&exe).arg(PAUSE_SOURCE);
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("running rustc for {PAUSE_SOURCE}: {e}"));
    if !output.status.success() {
        panic!(
            "compiling {PAUSE_SOURCE} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let image = std::fs::read(&exe).unwrap_or_else(|e| panic!("reading {}: {e}", exe.display()));
    assert!(
        !has_dynamic_relocations(&image),
        "{PAUSE_SOURCE} linked with dynamic relocations: there is no loader to apply them"
    );
}

/// Whether an ELF64 little-endian image has a section of type SHT_RELA, SHT_REL or SHT_RELR.
fn has_dynamic_relocations(image: &[u8]) -> bool {
    let u64_at = |i: usize| {
        image
            .get(i..i + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    let u16_at = |i: usize| {
        image
            .get(i..i + 2)
            .map(|b| u16::from_le_bytes(b.try_into().unwrap()))
    };
    let u32_at = |i: usize| {
        image
            .get(i..i + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    let (Some(shoff), Some(shentsize), Some(shnum)) = (u64_at(0x28), u16_at(0x3a), u16_at(0x3c))
    else {
        return true;
    };
    (0..usize::from(shnum)).any(|i| {
        let kind = u32_at(shoff as usize + i * usize::from(shentsize) + 4);
        // SHT_RELA 4, SHT_REL 9, SHT_RELR 19; an unreadable header counts as one.
        !matches!(kind, Some(k) if k != 4 && k != 9 && k != 19)
    })
}
