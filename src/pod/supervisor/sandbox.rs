//! The supervisor's side of the sandbox: the pod cgroup, the shared files and /dev/shm, the
//! pause process and its network; re-creating it when it dies.

use std::fs;
use std::time::Instant;

use nix::mount::{mount, MsFlags};
use nix::sys::signal::{kill, Signal};

use super::{SandboxRun, Supervisor};
use crate::network;
use crate::pod::events;
use crate::pod::record::ProcessRef;
use crate::sandbox::{files, pause};
use crate::store::write_volatile;

/// Size of the pod-wide /dev/shm, as the kubelet's default.
pub const SHM_SIZE_BYTES: u64 = 64 * 1024 * 1024;
pub const HOSTS_FILE: &str = "hosts";
pub const RESOLV_FILE: &str = "resolv.conf";
pub const HOSTNAME_FILE: &str = "hostname";
pub const SHM_DIR: &str = "shm";
const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";

impl Supervisor {
    /// Creates the sandbox; on failure records an event, releases what it took and retries
    /// with back-off. The first containers are created (their init mounting their rootfs)
    /// while the network is wired, and started once it is.
    pub(super) fn start_sandbox(&mut self) {
        self.sandbox_next = None;
        let mut result = self.try_start_sandbox();
        if result.is_ok() {
            let first = self.first_wave();
            let mut created = Vec::new();
            for i in first {
                if let Some(p) = self.create_container(i) {
                    created.push((i, p));
                }
            }
            result = self.connect_network();
            match result {
                Ok(()) => {
                    for (i, p) in created {
                        self.start_created(i, p);
                    }
                }
                Err(_) => self.abandon_created(created),
            }
        }
        if let Err(message) = result {
            tracing::error!(%message, "sandbox creation failed");
            if let Some(s) = self.sandbox.take() {
                let _ = kill(s.pid, Signal::SIGKILL);
            }
            if let Some(veth) = &self.state.sandbox.veth {
                let _ = network::detach(veth);
            }
            let delay = self
                .sandbox_backoff
                .on_exit(std::time::Duration::ZERO)
                .max(std::time::Duration::from_secs(1));
            self.sandbox_next = Some(Instant::now() + delay);
            self.event(
                events::WARNING,
                events::REASON_FAILED_SANDBOX,
                "",
                format!("Failed to create pod sandbox: {message}"),
            );
        }
        self.mark_dirty();
    }

    /// The pod cgroup, /dev/shm, the pause process and its namespaces, the pod IP and the
    /// shared files. The pause process builds its namespaces while the IP is allocated.
    fn try_start_sandbox(&mut self) -> Result<(), String> {
        let uid = self.uid.clone();
        let run_dir = self.paths.pod_run_dir(&uid);
        fs::create_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;

        // The pod cgroup, recorded before it is made.
        let mut sandbox_cgroup = None;
        if let Some(cg) = &self.cgroups {
            let pod_path = cg.pod_path(&uid);
            if self.state.pod_cgroup.is_none() {
                self.state.pod_cgroup = Some(pod_path.clone());
                if let Err(e) = self.save_state() {
                    // Not recorded (a full disk): not made either, and recorded at the next try.
                    self.state.pod_cgroup = None;
                    return Err(e.to_string());
                }
            }
            // Made (idempotently) with every sandbox: a try that failed after recording it
            // must not leave the next one without it.
            let limits = super::containers::pod_limits(&self.pod)?;
            cg.create_pod(&uid, limits).map_err(|e| e.to_string())?;
            let sb = cg.sandbox_path(&uid);
            cg.create(&sb, &Default::default())
                .map_err(|e| e.to_string())?;
            sandbox_cgroup = Some(sb);
        }

        // The pod-wide /dev/shm: a 64 MiB tmpfs.
        let shm = run_dir.join(SHM_DIR);
        if !shm.exists() {
            fs::create_dir_all(&shm).map_err(|e| format!("{}: {e}", shm.display()))?;
            mount(
                Some("shm"),
                &shm,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some(format!("mode=1777,size={SHM_SIZE_BYTES}").as_str()),
            )
            .map_err(|e| format!("mount /dev/shm tmpfs at {}: {e}", shm.display()))?;
        }

        // The pause process.
        let hostname = files::pod_hostname(&self.pod);
        let pause = pause::spawn(&hostname, sandbox_cgroup.as_deref(), self.host_namespaces())
            .map_err(|e| format!("start sandbox process: {e}"))?;
        let pid = pause.pid.as_raw();
        tracing::debug!(%pid, "pause process forked");
        self.sandbox = Some(SandboxRun { pid: pause.pid });
        self.state.sandbox.process = ProcessRef::of(pid);
        self.state.sandbox.attempt = self.state.sandbox.attempt.saturating_add(1);

        // Its IP and veth, recorded before the veth exists.
        let ip = self.sandbox_address()?;
        tracing::debug!(%ip, "address allocated");

        // The files every container shares (bind-mounted: final before any container starts).
        let host_resolv = fs::read_to_string(HOST_RESOLV_CONF).unwrap_or_default();
        let resolv =
            files::resolv_conf(&self.pod, &host_resolv, None).map_err(|e| e.to_string())?;
        let (hosts, hostname) = self.hosts_and_hostname(ip);
        for (name, content) in [
            (HOSTS_FILE, hosts),
            (RESOLV_FILE, resolv),
            (HOSTNAME_FILE, hostname),
        ] {
            write_volatile(&run_dir.join(name), content.as_bytes()).map_err(|e| e.to_string())?;
        }
        pause
            .wait_ready()
            .map_err(|e| format!("sandbox process: {e}"))?;
        Ok(())
    }

    /// The bridge and the pod's veth, eth0, address and route.
    fn connect_network(&mut self) -> Result<(), String> {
        let (Some(sandbox), Some(ip)) = (self.sandbox.as_ref(), self.state.sandbox.ip) else {
            return Err("the sandbox is gone".into());
        };
        let pid = sandbox.pid.as_raw();
        self.wire_network(pid, ip)?;
        tracing::info!(%pid, %ip, "sandbox ready");
        Ok(())
    }

    /// The containers to create with a new sandbox: the first init container (init containers
    /// run again in a new sandbox, as the kubelet does), else every app container that has not
    /// finished for good.
    fn first_wave(&mut self) -> Vec<usize> {
        let has_init = self.runs.iter().any(|r| r.init);
        if has_init {
            for r in self.runs.iter_mut().filter(|r| r.init) {
                r.view.done = false;
                r.next_start = None;
            }
            return self.runs.iter().position(|r| r.init).into_iter().collect();
        }
        self.runs
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.init && r.instance.is_none() && !r.view.done)
            .map(|(i, _)| i)
            .collect()
    }

    /// The sandbox process exited.
    pub(super) fn on_sandbox_exit(&mut self) {
        self.sandbox = None;
        self.state.sandbox.process = None;
        self.mark_dirty();
        if self.stopping.is_some() || self.evicted.is_some() {
            return;
        }
        tracing::warn!("sandbox died; re-creating the pod sandbox");
        self.event(
            events::NORMAL,
            events::REASON_SANDBOX_CHANGED,
            "",
            "Pod sandbox changed, it will be killed and re-created.".into(),
        );
        self.sandbox_lost = true;
        for r in self.runs.iter_mut() {
            r.next_start = None;
            if r.instance.is_some() {
                r.killed_by_sandbox = true;
            }
        }
        self.kill_all_containers();
        self.sandbox_lost_check();
    }

    /// Once every container of a lost sandbox is gone, make a new sandbox.
    pub(super) fn sandbox_lost_check(&mut self) {
        if self.sandbox_lost && !self.runs.iter().any(|r| r.instance.is_some()) {
            if let Some(veth) = self.state.sandbox.veth.clone() {
                let _ = network::detach(&veth);
            }
            self.sandbox_lost = false;
            self.sandbox_next = Some(Instant::now());
        }
    }

    /// Kills the sandbox at the end of a stop.
    pub(super) fn stop_sandbox(&mut self) {
        if let Some(s) = &self.sandbox {
            let _ = kill(s.pid, Signal::SIGKILL);
        }
    }
}
