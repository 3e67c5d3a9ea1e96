//! The privileged tests: everything that needs root, namespaces, cgroup v2, bridges and
//! overlay mounts, run inside the throwaway VM (`scripts/test`), never on the host. One test
//! binary with a module per subject (one binary per subject compiled and linked the shared
//! code ~25 times, and each copy made the VM's initramfs larger); `scripts/test` runs each
//! module's tests (`--ignored`, by their exact names) in the lane it is placed in. Outside the
//! VM the tests are ignored, and `require_vm` fails them under `--ignored` unless
//! `PEAPOD_VM_TESTS=1`.
//!
//! By hand, in the VM: `PEAPOD_VM_TESTS=1 /peapod/tests/vm --ignored vm_pods::`; from the host,
//! `scripts/test --vm-only --only vm_pods`.

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/cri_connect.rs"]
mod cri_connect;
#[path = "../common/stream_client.rs"]
mod stream_client;

mod runtime_smoke;
mod vm_adopt;
mod vm_cli;
mod vm_config;
mod vm_corpus;
mod vm_cpu;
mod vm_cri;
mod vm_cri_stream;
mod vm_env;
mod vm_faults;
mod vm_lifecycle;
mod vm_net;
mod vm_netlink;
mod vm_node;
mod vm_pods;
mod vm_probes;
mod vm_pull;
mod vm_recovery;
mod vm_restart_rules;
mod vm_seccomp;
mod vm_security;
mod vm_soak;
mod vm_storage;
mod vm_tty;
mod vm_volumes;
