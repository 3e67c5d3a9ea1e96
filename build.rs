//! Links the `peapod` binary as a position-dependent executable.
//!
//! A PIE of this size carries ~19,000 dynamic relocations: every exec of peapod spends time
//! applying them, and the relocated pages (~370 kB) become private memory in every process —
//! in each pod's supervisor, for the pod's whole life. Linked non-PIE, those pages stay shared
//! with the page cache. The cost is that the main binary's own code and data are not
//! address-randomized (libraries, heap and stacks still are); see ARCHITECTURE.md.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
