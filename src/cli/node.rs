//! `peapod node`: the node agent in the foreground (static pods from a manifest directory, the
//! CRI socket), and
//! `peapod node install`, which writes its systemd unit.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::node::{self, NodeOptions, DEFAULT_MANIFEST_DIR, SYSTEMD_UNIT};
use crate::store::Paths;

/// Where `node install` puts the unit unless told otherwise.
const UNIT_PATH: &str = "/etc/systemd/system/peapod-node.service";

#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    #[command(subcommand)]
    pub action: Option<NodeAction>,
    /// The static pod manifest directory, as the kubelet's staticPodPath (it may be pointed
    /// at /etc/kubernetes/manifests).
    #[arg(long, default_value = DEFAULT_MANIFEST_DIR, global = true)]
    pub manifests: PathBuf,
    /// Reconcile the static pods once and exit.
    #[arg(long)]
    pub once: bool,
    /// Where the CRI server listens for the kubelet and crictl (default
    /// <run dir>/peapod.sock, i.e. /run/peapod/peapod.sock).
    #[arg(long, value_name = "PATH", conflicts_with = "no_cri")]
    pub cri_socket: Option<PathBuf>,
    /// Do not serve the CRI.
    #[arg(long)]
    pub no_cri: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum NodeAction {
    /// Write the systemd unit that runs `peapod node` at boot (then: systemctl daemon-reload;
    /// systemctl enable --now peapod-node).
    Install {
        /// Where to write the unit.
        #[arg(long, default_value = UNIT_PATH)]
        unit: PathBuf,
    },
}

pub fn run(paths: &Paths, args: &NodeArgs) -> Result<i32> {
    if let Some(NodeAction::Install { unit }) = &args.action {
        let text =
            SYSTEMD_UNIT.replace(DEFAULT_MANIFEST_DIR, &args.manifests.display().to_string());
        if let Some(dir) = unit.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(unit, text).with_context(|| format!("writing {}", unit.display()))?;
        println!("wrote {}", unit.display());
        println!("enable it with: systemctl daemon-reload && systemctl enable --now peapod-node");
        return Ok(0);
    }
    crate::pod::supervisor::init_logging();
    let opts = NodeOptions {
        manifests: args.manifests.clone(),
        node_name: super::hostname(),
        once: args.once,
        cri_socket: (!args.no_cri && !args.once).then(|| {
            args.cri_socket
                .clone()
                .unwrap_or_else(|| paths.run.join(crate::cri::SOCKET_NAME))
        }),
    };
    let report = node::run(paths, &opts)?;
    if args.once {
        for p in &report.recovery.recovered {
            println!("pod {p} recovered after a reboot");
        }
        for p in &report.recovery.kept_down {
            println!("CRI sandbox {p} left NOTREADY after a reboot (its client re-creates it)");
        }
        for p in &report.recovery.deleted {
            println!("pod {p} deleted (its delete was cut short by a reboot)");
        }
        for p in &report.recovery.lost_this_boot {
            eprintln!("warning: pod {p}: its supervisor is gone and the host did not reboot; left Unknown");
        }
        for bad in &report.recovery.failed {
            eprintln!("error: {bad}");
        }
        for p in &report.deleted {
            println!("static pod {p} deleted");
        }
        for p in &report.created {
            println!("static pod {p} created");
        }
        for bad in &report.invalid {
            eprintln!("error: {bad}");
        }
        let ok = report.invalid.is_empty() && report.recovery.failed.is_empty();
        return Ok(if ok { 0 } else { 1 });
    }
    Ok(0)
}
