//! Links the `peapod` binary as a position-independent executable (rustc's default), as runc
//! and crun are: a process that runs as root and parses what containers write keeps ASLR for
//! its own code and data.
//!
//! What PIE costs is its ~19,000 relative relocations: with classic RELA entries (24 bytes
//! each, ~450 kB read at every exec and kept resident) an idle supervisor measured 597 kB PSS
//! against 509 kB linked non-PIE. Packed as DT_RELR (binutils 2.38+, glibc 2.36+: Debian 12)
//! the table is ~9 kB and the same supervisor measures 520 kB (`scripts/supervisor-pss BIN 10`,
//! release builds, 10 idle pods).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
