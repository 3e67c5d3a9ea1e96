//! `peapod port-forward POD [LOCAL:]REMOTE... [--address ADDR,...]`: a listener on the host per
//! port and address, every accepted connection relayed to `localhost:REMOTE` dialed *inside the
//! pod's network namespace*, so the image needs no tools [kubectl pkg/cmd/portforward,
//! client-go tools/portforward; containerd's CRI PortForward dials 127.0.0.1, then ::1, in the
//! sandbox's namespace].
//!
//! The sockets to the pod are made by one dialer thread that has entered the sandbox's network
//! namespace with setns(2) (a socket belongs to the namespace it was created in); the relaying
//! runs on a tokio runtime on the host side. Ends when the pod's sandbox process exits (a pidfd):
//! `error: lost connection to pod`, as kubectl ends when the kubelet's stream closes.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream as StdTcpStream};
use std::os::fd::AsFd;
use std::sync::mpsc;

use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use super::kinds::Kind;
use crate::cri::streaming::backend::dial_localhost;
use crate::manifest::defaults::DEFAULT_NAMESPACE;
use crate::pod::record::PodRecord;
use crate::store::Paths;

/// kubectl's default `--address`: both loopback addresses, either may fail.
const LOCALHOST: &str = "localhost";
/// client-go's error when the pod's stream closes.
const LOST_CONNECTION: &str = "lost connection to pod";
const RUNNING: &str = "Running";
/// The relay's buffer per direction.
const RELAY_BUFFER: usize = 128 * 1024;

#[derive(Debug, Clone, clap::Args)]
pub struct PortForwardArgs {
    /// The pod: NAME or pod/NAME.
    pub pod: String,
    /// [LOCAL_PORT:]REMOTE_PORT, REMOTE_PORT a number or a container port's name.
    #[arg(required = true)]
    pub ports: Vec<String>,
    /// Addresses to listen on (comma separated): IP addresses or localhost (127.0.0.1 and ::1).
    #[arg(long, value_delimiter = ',', default_value = LOCALHOST)]
    pub address: Vec<String>,
    #[arg(short, long, default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
}

/// One `LOCAL:REMOTE` pair; LOCAL 0 picks a free port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardedPort {
    pub local: u16,
    pub remote: u16,
}

/// `[LOCAL:]REMOTE` with a named REMOTE resolved against the pod's container ports, as
/// kubectl's convertPodNamedPortToNumber then client-go's parsePorts read them.
pub fn parse_port(spec: &str, pod: &Pod) -> Result<ForwardedPort> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (local, remote) = match parts.as_slice() {
        [one] => (*one, *one),
        [local, remote] => (*local, *remote),
        _ => bail!("invalid port format '{spec}'"),
    };
    if remote.is_empty() {
        bail!("remote port cannot be empty");
    }
    let remote_number = match remote.parse::<u16>() {
        Ok(n) => n,
        Err(_) if remote.chars().all(|c| c.is_ascii_digit()) => {
            bail!("error parsing remote port '{remote}': strconv.ParseUint: parsing \"{remote}\": value out of range")
        }
        Err(_) => named_port(pod, remote)?,
    };
    // A named port alone (`http`) listens on its number.
    let local = if local == remote {
        remote_number.to_string()
    } else if local.is_empty() {
        "0".to_string()
    } else {
        local.to_string()
    };
    let local = local.parse::<u16>().map_err(|_| {
        anyhow!("error parsing local port '{local}': strconv.ParseUint: parsing \"{local}\": invalid syntax")
    })?;
    if remote_number == 0 {
        bail!("remote port must be > 0");
    }
    Ok(ForwardedPort {
        local,
        remote: remote_number,
    })
}

/// The number of a container port by name [kubectl util.LookupContainerPortNumberByName].
fn named_port(pod: &Pod, name: &str) -> Result<u16> {
    let spec = pod.spec.as_ref();
    let ports = spec
        .into_iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten());
    for p in ports {
        if p.name.as_deref() == Some(name) {
            return u16::try_from(p.container_port).context("container port out of range");
        }
    }
    bail!(
        "Pod '{}' does not have a named port '{name}'",
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// kubectl refuses ports that only UDP containers declare (checkUDPPortInPod).
fn check_udp(pod: &Pod, remote: u16, spec: &str) -> Result<()> {
    let ports: Vec<_> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| i32::from(remote) == p.container_port)
        .collect();
    let udp = ports.iter().any(|p| p.protocol.as_deref() == Some("UDP"));
    let tcp = ports
        .iter()
        .any(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP");
    if udp && !tcp {
        let named = spec.rsplit(':').next().unwrap_or(spec);
        bail!("UDP protocol is not supported for {named}");
    }
    Ok(())
}

/// A listen address and whether the forward fails only when all of its group fail
/// (localhost) or when any fails (an address given by IP) [client-go parseAddresses].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddress {
    pub ip: IpAddr,
    pub all_must_fail: bool,
}

/// `--address` values, deduplicated and sorted by their text as client-go sorts them.
pub fn parse_addresses(given: &[String]) -> Result<Vec<ListenAddress>> {
    let mut out: Vec<(String, ListenAddress)> = Vec::new();
    let mut add = |text: String, a: ListenAddress| {
        if !out.iter().any(|(t, _)| *t == text) {
            out.push((text, a));
        }
    };
    for a in given {
        if a == LOCALHOST {
            for ip in [
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ] {
                let listen = ListenAddress {
                    ip,
                    all_must_fail: true,
                };
                add(ip.to_string(), listen);
            }
        } else {
            let ip: IpAddr = a.parse().map_err(|_| anyhow!("{a} is not a valid IP"))?;
            let listen = ListenAddress {
                ip,
                all_must_fail: false,
            };
            add(ip.to_string(), listen);
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out.into_iter().map(|(_, a)| a).collect())
}

/// `host:port` as Go's net.JoinHostPort writes it (`[::1]:8080`).
fn join_host_port(ip: IpAddr, port: u16) -> String {
    SocketAddr::new(ip, port).to_string()
}

/// The pod's kind/name argument: NAME, pod/NAME, pods/NAME, po/NAME.
fn pod_name(arg: &str) -> Result<&str> {
    match arg.split_once('/') {
        None => Ok(arg),
        Some((kind, name)) => match Kind::resolve(kind)? {
            Kind::Pod => Ok(name),
            other => bail!(
                "cannot attach to {}: only pods can be forwarded",
                other.resource()
            ),
        },
    }
}

/// A request to the dialer thread: connect to this port inside the pod.
struct Dial {
    port: u16,
    reply: oneshot::Sender<std::result::Result<StdTcpStream, String>>,
}

/// Starts the thread that lives in the pod's network namespace and makes every connection to
/// it, 127.0.0.1 first and ::1 when that fails, as containerd does.
fn start_dialer(netns: File) -> Result<mpsc::Sender<Dial>> {
    let (tx, rx) = mpsc::channel::<Dial>();
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("pod-netns-dialer".into())
        .spawn(move || {
            // A thread's network namespace is its own: the rest of the process stays on the
            // host (setns(2): CLONE_NEWNET applies to the calling thread).
            let entered = nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET);
            let failed = entered.is_err();
            let _ = ready_tx.send(entered);
            if failed {
                return;
            }
            for dial in rx {
                let _ = dial.reply.send(dial_localhost(dial.port));
            }
        })
        .context("start the dialer thread")?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(tx),
        Ok(Err(e)) => Err(anyhow!("enter the pod's network namespace: {e}")),
        Err(_) => Err(anyhow!("the dialer thread stopped")),
    }
}

/// The running pod's sandbox process, or kubectl's refusal.
fn sandbox_of(rec: &PodRecord) -> Result<i32> {
    let status = super::get::effective_status(rec);
    let phase = status.phase.unwrap_or_default();
    let sandbox = rec
        .state
        .as_ref()
        .and_then(|s| s.sandbox.process.clone())
        .filter(|p| p.is_alive());
    match sandbox {
        Some(p) if phase == RUNNING && rec.deleting.is_none() => Ok(p.pid),
        _ => bail!("unable to forward port because pod is not running. Current status={phase}"),
    }
}

/// `peapod port-forward`: runs until interrupted (0) or until the pod goes away (1).
pub fn run(paths: &Paths, args: &PortForwardArgs) -> Result<i32> {
    let name = pod_name(&args.pod)?;
    let rec = super::find_pod(paths, &args.namespace, name)?;
    let mut ports = Vec::new();
    for spec in &args.ports {
        let port = parse_port(spec, &rec.pod)?;
        check_udp(&rec.pod, port.remote, spec)?;
        ports.push(port);
    }
    let addresses = parse_addresses(&args.address)?;
    let sandbox = sandbox_of(&rec)?;
    let netns = File::open(format!("/proc/{sandbox}/ns/net"))
        .with_context(|| format!("open the network namespace of the pod's sandbox {sandbox}"))?;
    let dialer = start_dialer(netns)?;
    let pidfd = crate::procfs::pidfd_open(sandbox)
        .ok_or_else(|| anyhow!("unable to forward port because pod is not running"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the relay runtime")?;
    let code = runtime.block_on(serve(ports, addresses, dialer, pidfd));
    // Connections still open are dropped with the process.
    runtime.shutdown_background();
    code
}

async fn serve(
    mut ports: Vec<ForwardedPort>,
    addresses: Vec<ListenAddress>,
    dialer: mpsc::Sender<Dial>,
    pidfd: std::os::fd::OwnedFd,
) -> Result<i32> {
    let mut listening = false;
    for port in ports.iter_mut() {
        let mut errors = Vec::new();
        let (mut ok_all, mut failed_all, mut failed_any) = (0, 0, 0);
        for address in &addresses {
            match TcpListener::bind(SocketAddr::new(address.ip, port.local)).await {
                Ok(listener) => {
                    let local = listener
                        .local_addr()
                        .map(|a| a.port())
                        .unwrap_or(port.local);
                    port.local = local;
                    println!(
                        "Forwarding from {} -> {}",
                        join_host_port(address.ip, local),
                        port.remote
                    );
                    ok_all += usize::from(address.all_must_fail);
                    tokio::spawn(accept_loop(listener, *port, dialer.clone()));
                }
                Err(e) => {
                    let net = if address.ip.is_ipv4() { "tcp4" } else { "tcp6" };
                    errors.push(format!(
                        "unable to create listener: Error listen {net} {}: {}",
                        join_host_port(address.ip, port.local),
                        go_socket_error(&e)
                    ));
                    if address.all_must_fail {
                        failed_all += 1;
                    } else {
                        failed_any += 1;
                    }
                }
            }
        }
        if (ok_all == 0 && failed_all > 0) || failed_any > 0 {
            eprintln!(
                "Unable to listen on port {}: Listeners failed to create with the following errors: [{}]",
                port.local,
                errors.join(" ")
            );
        } else {
            listening = true;
        }
    }
    if !listening {
        let list: Vec<String> = ports
            .iter()
            .map(|p| format!("{{{} {}}}", p.local, p.remote))
            .collect();
        bail!(
            "unable to listen on any of the requested ports: [{}]",
            list.join(" ")
        );
    }
    // A thread of its own waits for the sandbox to exit (poll on its pidfd).
    let (gone_tx, sandbox_gone) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("pod-sandbox-watch".into())
        .spawn(move || {
            let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
            while let Err(nix::errno::Errno::EINTR) = poll(&mut fds, PollTimeout::NONE) {}
            let _ = gone_tx.send(());
        })
        .context("watch the pod's sandbox")?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("handle SIGINT")?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("handle SIGTERM")?;
    tokio::select! {
        _ = sandbox_gone => {
            eprintln!("error: {LOST_CONNECTION}");
            Ok(1)
        }
        _ = interrupt.recv() => Ok(0),
        _ = terminate.recv() => Ok(0),
    }
}

/// Go's text for the usual bind errors (`bind: address already in use`).
fn go_socket_error(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EADDRINUSE) => "bind: address already in use".into(),
        Some(libc::EADDRNOTAVAIL) => "bind: cannot assign requested address".into(),
        Some(libc::EAFNOSUPPORT) => "socket: address family not supported by protocol".into(),
        _ => e.to_string(),
    }
}

async fn accept_loop(listener: TcpListener, port: ForwardedPort, dialer: mpsc::Sender<Dial>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        println!("Handling connection for {}", port.local);
        tokio::spawn(relay(client, port, dialer.clone()));
    }
}

/// One connection: dial inside the pod, then copy both ways until both sides are done.
async fn relay(mut client: TcpStream, port: ForwardedPort, dialer: mpsc::Sender<Dial>) {
    let (reply, answer) = oneshot::channel();
    if dialer
        .send(Dial {
            port: port.remote,
            reply,
        })
        .is_err()
    {
        return;
    }
    let upstream = match answer.await {
        Ok(Ok(stream)) => stream,
        Ok(Err(why)) => {
            eprintln!(
                "an error occurred forwarding {} -> {}: error forwarding port {} to pod: {why}",
                port.local, port.remote, port.remote
            );
            return;
        }
        Err(_) => return,
    };
    let upstream = match upstream
        .set_nonblocking(true)
        .and_then(|()| TcpStream::from_std(upstream))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error forwarding port {}: {e}", port.remote);
            return;
        }
    };
    let mut upstream = upstream;
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional_with_sizes(
        &mut client,
        &mut upstream,
        RELAY_BUFFER,
        RELAY_BUFFER,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "a", "ports": [
                {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                {"name": "dns", "containerPort": 53, "protocol": "UDP"}]}]}
        }))
        .unwrap()
    }

    fn port(spec: &str) -> Result<ForwardedPort> {
        parse_port(spec, &pod())
    }

    #[test]
    fn ports_as_kubectl_reads_them() {
        let fp = |local, remote| ForwardedPort { local, remote };
        assert_eq!(port("8161").unwrap(), fp(8161, 8161));
        assert_eq!(port("9000:80").unwrap(), fp(9000, 80));
        assert_eq!(port(":80").unwrap(), fp(0, 80));
        assert_eq!(port("0:80").unwrap(), fp(0, 80));
        assert_eq!(port("http").unwrap(), fp(8080, 8080));
        assert_eq!(port("9000:http").unwrap(), fp(9000, 8080));
        assert_eq!(
            port("ftp").unwrap_err().to_string(),
            "Pod 'web' does not have a named port 'ftp'"
        );
        assert_eq!(
            port("1:2:3").unwrap_err().to_string(),
            "invalid port format '1:2:3'"
        );
        assert_eq!(
            port("x:80").unwrap_err().to_string(),
            "error parsing local port 'x': strconv.ParseUint: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            port("0").unwrap_err().to_string(),
            "remote port must be > 0"
        );
        assert_eq!(
            check_udp(&pod(), 53, "dns").unwrap_err().to_string(),
            "UDP protocol is not supported for dns"
        );
        assert!(check_udp(&pod(), 8080, "8080").is_ok());
    }

    #[test]
    fn localhost_is_both_loopbacks_sorted_as_text() {
        let a = parse_addresses(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        let ips: Vec<String> = a.iter().map(|a| a.ip.to_string()).collect();
        assert_eq!(ips, ["127.0.0.1", "::1"]);
        assert!(a.iter().all(|a| a.all_must_fail));
        assert_eq!(
            join_host_port(a[1].ip, 8161),
            "[::1]:8161",
            "IPv6 in brackets, as Go's JoinHostPort"
        );
        assert_eq!(
            parse_addresses(&["nope".into()]).unwrap_err().to_string(),
            "nope is not a valid IP"
        );
    }
}
