//! `peapod top pod [NAME] [--containers] [-A] [-l SEL]`: CPU and memory of the running
//! containers, as `kubectl top pod` prints the metrics API's (kubectl pkg/cmd/top/top_pod.go,
//! pkg/metricsutil/metrics_printer.go): CPU in millicores from two readings of each
//! container cgroup's `cpu.stat` [`SAMPLE_INTERVAL`] apart, memory as the kubelet's working
//! set (`memory.current` minus inactive file pages); a pod's values are the sum of its
//! containers', as metrics-server reports them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::format::tabwrite;
use super::selector::Selectors;
use crate::cgroup::stats::{millicores, read_usage, Usage};
use crate::manifest::defaults::DEFAULT_NAMESPACE;
use crate::pod::record::{load_all, PodRecord};
use crate::store::Paths;

/// How long CPU use is measured over.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(500);
const MIB: u64 = 1024 * 1024;
/// What kubectl says when the pods exist but have no metrics.
const NOT_AVAILABLE: &str = "metrics not available yet";

#[derive(Debug, Clone, clap::Subcommand)]
pub enum TopWhat {
    /// CPU and memory of pods (or, with --containers, of their containers).
    #[command(alias = "pods", alias = "po")]
    Pod(TopArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct TopArgs {
    pub name: Option<String>,
    #[arg(short, long, default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// A line per container.
    #[arg(long)]
    pub containers: bool,
    #[arg(long)]
    pub no_headers: bool,
    /// cpu or memory.
    #[arg(long, value_parser = ["cpu", "memory"])]
    pub sort_by: Option<String>,
    #[command(flatten)]
    pub selectors: Selectors,
}

/// One container's metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerMetrics {
    pub name: String,
    pub millicores: u64,
    pub bytes: u64,
}

/// One pod's metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodMetrics {
    pub namespace: String,
    pub name: String,
    pub containers: Vec<ContainerMetrics>,
}

impl PodMetrics {
    fn millicores(&self) -> u64 {
        self.containers.iter().map(|c| c.millicores).sum()
    }
    fn bytes(&self) -> u64 {
        self.containers.iter().map(|c| c.bytes).sum()
    }
}

/// The running containers' cgroups of a pod, by container name.
fn cgroups(rec: &PodRecord) -> BTreeMap<String, PathBuf> {
    rec.state
        .iter()
        .flat_map(|s| s.containers.iter())
        .filter(|(_, c)| c.process.as_ref().is_some_and(|p| p.is_alive()))
        .filter_map(|(name, c)| c.cgroup.clone().map(|g| (name.clone(), g)))
        .collect()
}

/// Measures every pod's running containers; pods without one are left out. Fails when the
/// host keeps no cgroup v2 CPU and memory statistics for them.
fn measure(records: &[PodRecord]) -> Result<Vec<PodMetrics>> {
    let targets: Vec<(usize, String, PathBuf)> = records
        .iter()
        .enumerate()
        .flat_map(|(i, r)| cgroups(r).into_iter().map(move |(n, g)| (i, n, g)))
        .collect();
    let read_all = || -> Result<Vec<Option<Usage>>> {
        let mut out = Vec::new();
        for (_, _, dir) in &targets {
            match read_usage(dir) {
                Ok(u) => out.push(Some(u)),
                // The container ended between the listing and the reading.
                Err(_) if !dir.exists() => out.push(None),
                Err(e) => bail!("{NOT_AVAILABLE}: this host keeps no cgroup v2 CPU and memory statistics for pods ({e})"),
            }
        }
        Ok(out)
    };
    let started = Instant::now();
    let before = read_all()?;
    std::thread::sleep(SAMPLE_INTERVAL);
    let after = read_all()?;
    let elapsed = started.elapsed().as_micros() as u64;
    let mut pods: BTreeMap<usize, PodMetrics> = BTreeMap::new();
    for ((i, name, _), (b, a)) in targets.iter().zip(before.iter().zip(&after)) {
        let (Some(b), Some(a)) = (b, a) else { continue };
        let rec = &records[*i];
        pods.entry(*i)
            .or_insert_with(|| PodMetrics {
                namespace: rec.namespace().to_string(),
                name: rec.name().to_string(),
                containers: Vec::new(),
            })
            .containers
            .push(ContainerMetrics {
                name: name.clone(),
                millicores: millicores(b, a, elapsed),
                bytes: a.working_set,
            });
    }
    Ok(pods.into_values().collect())
}

/// kubectl's table: a NAMESPACE column with `-A`, a POD column with `--containers`; every
/// cell tab-terminated, as metrics_printer.go writes them.
pub fn table(mut pods: Vec<PodMetrics>, args: &TopArgs) -> String {
    let sort_by = args.sort_by.as_deref().unwrap_or_default();
    pods.sort_by(|a, b| match sort_by {
        "cpu" => b.millicores().cmp(&a.millicores()),
        "memory" => b.bytes().cmp(&a.bytes()),
        _ => (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)),
    });
    let mut lines = Vec::new();
    if !args.no_headers {
        let mut h = Vec::new();
        if args.all_namespaces {
            h.push("NAMESPACE");
        }
        if args.containers {
            h.push("POD");
        }
        h.extend(["NAME", "CPU(cores)", "MEMORY(bytes)"]);
        lines.push(h.join("\t") + "\t");
    }
    let cells = |m: u64, b: u64| format!("{m}m\t{}Mi\t", b / MIB);
    for p in &pods {
        let ns = if args.all_namespaces {
            format!("{}\t", p.namespace)
        } else {
            String::new()
        };
        if args.containers {
            let mut containers = p.containers.clone();
            containers.sort_by(|a, b| match sort_by {
                "cpu" => b.millicores.cmp(&a.millicores),
                "memory" => b.bytes.cmp(&a.bytes),
                _ => a.name.cmp(&b.name),
            });
            for c in containers {
                lines.push(format!(
                    "{ns}{}\t{}\t{}",
                    p.name,
                    c.name,
                    cells(c.millicores, c.bytes)
                ));
            }
        } else {
            lines.push(format!(
                "{ns}{}\t{}",
                p.name,
                cells(p.millicores(), p.bytes())
            ));
        }
    }
    tabwrite(&lines.join("\n"), 6, 3) + "\n"
}

/// `peapod top pod`.
pub fn run(paths: &Paths, what: &TopWhat) -> Result<i32> {
    let TopWhat::Pod(args) = what;
    if args.name.is_some() && !args.selectors.is_empty() {
        bail!("only one of NAME or selector can be provided");
    }
    let ns = (!args.all_namespaces).then_some(args.namespace.as_str());
    let chosen = match args
        .selectors
        .for_kind(super::kinds::Kind::Pod, &super::hostname())
    {
        Ok(c) => c,
        Err(line) => {
            eprintln!("{line}");
            return Ok(1);
        }
    };
    let mut records = Vec::new();
    for rec in load_all(paths)? {
        let object = serde_json::to_value(super::get::pod_object(&rec))?;
        let in_ns = ns.is_none_or(|n| rec.namespace() == n);
        let named = args.name.as_deref().is_none_or(|n| rec.name() == n);
        if in_ns && named && chosen.matches(&object) {
            records.push(rec);
        }
    }
    let metrics = measure(&records)?;
    if let Some(name) = &args.name {
        if metrics.is_empty() {
            eprintln!(
                "Error from server (NotFound): podmetrics.metrics.k8s.io \"{}/{name}\" not found",
                args.namespace
            );
            return Ok(1);
        }
    }
    if metrics.is_empty() {
        if !records.is_empty() {
            bail!(NOT_AVAILABLE);
        }
        eprintln!("{}", super::format::no_resources(ns));
        return Ok(0);
    }
    print!("{}", table(metrics, args));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(subcommand)]
        what: TopWhat,
    }

    fn args(line: &[&str]) -> TopArgs {
        let mut argv = vec!["top", "pod"];
        argv.extend_from_slice(line);
        let Cmd {
            what: TopWhat::Pod(a),
        } = Cmd::try_parse_from(argv).unwrap();
        a
    }

    fn metrics() -> Vec<PodMetrics> {
        let c = |name: &str, m, mib: u64| ContainerMetrics {
            name: name.into(),
            millicores: m,
            bytes: mib * MIB + 12345,
        };
        vec![
            PodMetrics {
                namespace: "default".into(),
                name: "web".into(),
                containers: vec![c("nginx", 3, 5), c("side", 1, 2)],
            },
            PodMetrics {
                namespace: "default".into(),
                name: "db".into(),
                containers: vec![c("pg", 250, 120)],
            },
        ]
    }

    #[test]
    fn kubectls_columns() {
        assert_eq!(
            table(metrics(), &args(&[])),
            "NAME   CPU(cores)   MEMORY(bytes)   \ndb     250m         120Mi           \nweb    4m           7Mi             \n"
        );
        assert_eq!(
            table(metrics(), &args(&["--containers", "-A"])),
            "NAMESPACE   POD   NAME    CPU(cores)   MEMORY(bytes)   \n\
             default     db    pg      250m         120Mi           \n\
             default     web   nginx   3m           5Mi             \n\
             default     web   side    1m           2Mi             \n"
        );
        let sorted = table(metrics(), &args(&["--sort-by=memory", "--no-headers"]));
        assert!(sorted.starts_with("db "), "{sorted}");
    }
}
