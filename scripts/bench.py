"""The measuring half of scripts/bench (run by it inside private net+mount namespaces)."""
import atexit, ctypes, glob, json, os, select, statistics, subprocess, sys, time

peapod, work, runs, idle = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
density = [int(n) for n in sys.argv[5].split(",")] if len(sys.argv) > 5 and sys.argv[5] else []
profile = len(sys.argv) > 6 and sys.argv[6] == "1"
node = len(sys.argv) > 7 and sys.argv[7] == "1"
lib = os.environ["PEAPOD_LIB_DIR"]

# Whatever this run leaves (an exception half-way, an interrupt), no pod of it outlives it:
# scripts/bench removes the state directories afterwards, and the private mount namespace
# (its run directory) ends with this process.
atexit.register(lambda: subprocess.run(
    [peapod, "delete", "pods", "--all", "-A", "--grace-period=0", "--force"],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

def sh(*args, **kw):
    return subprocess.run(args, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)

def pod_yaml(name, command):
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent", "command": command}]}})

def all_running(names):
    """Whether every pod named has all its containers running."""
    want = set(names)
    for path in glob.glob(f"{lib}/pods/*/status.json"):
        try:
            st = json.load(open(path))
            pod = json.load(open(os.path.join(os.path.dirname(path), "pod.json")))
        except (OSError, ValueError):
            continue
        cs = st.get("containerStatuses") or []
        if cs and all("running" in (c.get("state") or {}) for c in cs):
            want.discard(pod["metadata"]["name"])
    return not want

def running(name):
    return all_running([name])

def dir_running(d):
    """Whether the pod whose record directory is d has all its containers running."""
    try:
        cs = json.load(open(os.path.join(d, "status.json"))).get("containerStatuses") or []
    except (OSError, ValueError):
        return False
    return bool(cs) and all("running" in (c.get("state") or {}) for c in cs)

def pss_of(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("Pss:"))

def idle_pss():
    """PSS (kB) of each pod's keeper, supervisor and sandbox processes: (total, keeper,
    supervisor, sandbox) per pod."""
    out = []
    for path in glob.glob(f"{lib}/pods/*/state.json"):
        st = json.load(open(path))
        procs = (st.get("keeper"), st.get("supervisor"), (st.get("sandbox") or {}).get("process"))
        parts = [pss_of(p["pid"]) if p else 0 for p in procs]
        out.append((sum(parts), *parts))
    return out

def mean_parts(pss):
    """'keeper K + supervisor S + pause P' (means, kB)."""
    k, s, p = (statistics.mean(x[i] for x in pss) for i in (1, 2, 3))
    return f"keeper {k:.0f} + supervisor {s:.0f} + pause {p:.0f}"

def children(pid):
    try:
        return [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError:
        return []

def cli_zygotes():
    """The CLIs' zygote of this bench's state directory (pod::zygote::linger)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if open(f"/proc/{d}/comm").read().strip() != "peapod-zygote":
                continue
            env = open(f"/proc/{d}/environ", "rb").read().split(b"\0")
        except OSError:
            continue
        if f"PEAPOD_LIB_DIR={lib}".encode() in env:
            out.append(int(d))
    return out

libc = ctypes.CDLL(None, use_errno=True)
IN_CLOSE_WRITE, IN_MOVED_TO = 0x8, 0x80

def pod_dir(name):
    for path in glob.glob(f"{lib}/pods/*/pod.json"):
        try:
            if json.load(open(path))["metadata"]["name"] == name:
                return os.path.dirname(path)
        except (OSError, ValueError, KeyError):
            pass
    return None

# One inotify instance for the whole run: closing one waits for an SRCU grace period in the
# kernel (~13 ms measured here), which would be counted in the start it follows.
inotify = libc.inotify_init1(os.O_CLOEXEC)

def wait_running(name):
    """Blocks until the pod runs, woken by inotify when a file of its directory is written
    (a busy poll would take one of the machine's two CPUs from the pod being started)."""
    watch, d = -1, None
    try:
        # Once the pod's directory is known, only its status is read (not every pod's).
        while not (dir_running(d) if d else running(name)):
            if d is None:
                d = pod_dir(name)
                if d is not None:
                    watch = libc.inotify_add_watch(inotify, d.encode(), IN_CLOSE_WRITE | IN_MOVED_TO)
                    continue
            # the timeout covers a directory not listed yet (apply has returned: rare)
            if select.select([inotify], [], [], 0.05 if d else 0.001)[0]:
                os.read(inotify, 65536)
    finally:
        if watch >= 0:
            libc.inotify_rm_watch(inotify, watch)
        # events of the removed watch left in the queue are read by the next wait

# PEAPOD_BENCH_PERF=CTL,ACK (scripts/bench --perf): perf record's control and ack fifos; the
# recording is enabled around each timed start only (not the deletes, crun or the set-up).
perf_fifos = os.environ.get("PEAPOD_BENCH_PERF", "").split(",")
perf_ctl = open(perf_fifos[0], "w") if len(perf_fifos) == 2 else None
perf_ack = open(perf_fifos[1]) if perf_ctl else None

def perf(command):
    if perf_ctl:
        perf_ctl.write(command + "\n")
        perf_ctl.flush()
        perf_ack.readline()

def apply_until_running(name, command, binary=None):
    perf("enable")
    t0 = time.perf_counter()
    sh(binary or peapod, "apply", "-f", "-", input=pod_yaml(name, command).encode())
    wait_running(name)
    elapsed = time.perf_counter() - t0
    perf("disable")
    return elapsed

def traced_start(name, command, trace):
    """One apply -> Running with PEAPOD_TRACE_START: {step: ms after the apply began}, each
    step's first mark (src/starttrace.rs), "Running seen" being when this script saw it."""
    open(trace, "w").close()
    env = dict(os.environ, PEAPOD_TRACE_START=trace)
    t0 = time.monotonic_ns()
    sh(peapod, "apply", "-f", "-", input=pod_yaml(name, command).encode(), env=env)
    wait_running(name)
    seen = time.monotonic_ns()
    steps = {}
    for line in open(trace):
        ns, _pid, step = line.rstrip("\n").split(" ", 2)
        steps.setdefault(step, (int(ns) - t0) / 1e6)
    steps["Running seen (bench)"] = (seen - t0) / 1e6
    return steps

def print_profile(traces):
    """Median ms after the apply began, for each step, in the order reached."""
    names = {s for t in traces for s in t}
    rows = sorted((statistics.median(t[s] for t in traces if s in t), s) for s in names)
    print(f"\nstart breakdown (PEAPOD_TRACE_START, {len(traces)} traced runs): median ms after `apply` began")
    prev = 0.0
    for at, step in rows:
        print(f"  {at:7.2f}  (+{at - prev:5.2f})  {step}")
        prev = at

def cpu_fields():
    """The machine's CPU time so far by kind (/proc/stat's first line), in clock ticks."""
    return [int(x) for x in open("/proc/stat").readline().split()[1:]]

def busy_ms():
    """CPU time spent by the whole machine so far, all CPUs (ms): user, nice, system, irq and
    softirq; not idle, iowait, nor the time the hypervisor gave the vCPUs to other guests
    (steal; guest time is already in user). On two cores, what a start costs in CPU bounds how
    fast starts can be."""
    f = cpu_fields()
    return (f[0] + f[1] + f[2] + f[5] + f[6]) * 1000 / os.sysconf("SC_CLK_TCK")

STEAL_AT_START = cpu_fields()

def print_steal():
    """The share of the vCPUs' time the hypervisor took for other guests since the bench began:
    on a virtual machine every elapsed figure of a run with much of it is slower than the
    machine, so figures compare only within a run."""
    now = cpu_fields()
    d = [b - a for a, b in zip(STEAL_AT_START, now)]
    total = sum(d[:8])
    if len(d) > 7 and total > 0:
        print(f"hypervisor steal during the run: {100 * d[7] / total:.1f}% of the CPUs' time")

cpu = {}  # label -> CPU ms spent during the timed operations

def counted(label, f, *args):
    """f(*args), its CPU time (machine-wide) added to cpu[label]."""
    c0 = busy_ms()
    out = f(*args)
    cpu.setdefault(label, []).append(busy_ms() - c0)
    return out

def timed(*args):
    t0 = time.perf_counter()
    sh(*args)
    return time.perf_counter() - t0

def summary(label, xs):
    xs = sorted(x * 1000 for x in xs)
    p90 = xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]
    print(f"{label:<44} {xs[0]:8.1f} {statistics.median(xs):8.1f} {p90:8.1f}   (n={len(xs)})")

sh("ip", "link", "set", "lo", "up")
# Runtime state on a tmpfs, as /run is on a usual host (this machine's /run is on its disk):
# peapod's run directory (sandbox files, the supervisor's log and sockets) and crun's and runc's state
# (--root). A private mount namespace: gone with it.
run = os.environ["PEAPOD_RUN_DIR"]
os.makedirs(run, exist_ok=True)
sh("mount", "-t", "tmpfs", "-o", "mode=0755", "bench-run", run)
crun_root, runc_root = os.path.join(run, "crun"), os.path.join(run, "runc")
sh(peapod, "load", os.path.join(os.getcwd(), "out/images/busybox"))

# --node: the node agent, whose zygote forks every pod's keeper (the same directories and
# namespaces as the CLIs below, so that it serves them).
agent = None
if node:
    manifests = os.path.join(work, "manifests")
    os.makedirs(manifests, exist_ok=True)
    agent = subprocess.Popen([peapod, "node", "--no-cri", "--manifests", manifests],
                             stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "node.log"), "w"))
    sock = os.path.join(os.environ["PEAPOD_RUN_DIR"], "spawner.sock")
    deadline = time.monotonic() + 30
    while not os.path.exists(sock):
        if time.monotonic() > deadline or agent.poll() is not None:
            sys.exit("scripts/bench: the node agent's zygote socket never appeared; see node.log")
        time.sleep(0.01)

sleeper = ["sleep", "3600"]

# crun and runc: one bare container running `true` from the same unpacked rootfs, no network
# (runc makes a cgroup of its own; crun none). crun refuses this host's hybrid cgroup layout
# unless the unified mount is hidden, which peapod's device allowlist needs: a second mount
# namespace without it, which this (single-threaded) process enters around each crun or runc
# command only, before its clock starts and after it stops. So the peers run in turns with
# peapod's starts, each round under the same load (this host's load swings within minutes).
CLONE_NEWNS = 0x20000
main_ns = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
if libc.unshare(CLONE_NEWNS) != 0:
    sys.exit(f"scripts/bench: unshare(CLONE_NEWNS): {os.strerror(ctypes.get_errno())}")
subprocess.run(["umount", "/sys/fs/cgroup/unified"], stderr=subprocess.DEVNULL)
peer_ns = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
if libc.setns(main_ns, CLONE_NEWNS) != 0:
    sys.exit(f"scripts/bench: setns back: {os.strerror(ctypes.get_errno())}")

def in_peer_ns(f, *args):
    """f(*args) inside the peers' mount namespace."""
    if libc.setns(peer_ns, CLONE_NEWNS) != 0:
        sys.exit(f"scripts/bench: setns: {os.strerror(ctypes.get_errno())}")
    try:
        return f(*args)
    finally:
        libc.setns(main_ns, CLONE_NEWNS)

layer = sorted(glob.glob(f"{lib}/l/*/"))[0]
bundle = os.path.join(work, "crun-bundle")
os.makedirs(bundle)
sh("crun", "spec", cwd=bundle)
cfg = json.load(open(os.path.join(bundle, "config.json")))
cfg["root"] = {"path": layer, "readonly": True}
cfg["process"]["args"] = ["true"]
cfg["process"]["terminal"] = False
json.dump(cfg, open(os.path.join(bundle, "config.json"), "w"))
crun_cmd = ["crun", "--root", crun_root, "--cgroup-manager=disabled"]

# --ab OTHER: two builds, one start and delete of each per round, the order swapped every
# round, in one record directory: the host's swings and the disk's recent deletions weigh on
# both alike. Prints both side by side and ends.
other = os.environ.get("PEAPOD_BENCH_AB")
if other:
    binaries = [peapod, other]
    ab = {b: {"start": [], "delete": [], "start cpu": [], "delete cpu": []} for b in binaries}
    apply_until_running("warmup", sleeper)
    sh(peapod, "delete", "pod", "warmup", "--grace-period=0", "--force")
    witness = bool(os.environ.get("PEAPOD_BENCH_WITNESS"))
    if witness:
        # A pod running through all rounds, applied by A, as on a host that has pods: A's
        # CLIs then find the CLIs' zygote of its first apply (pod::zygote::linger).
        apply_until_running("witness", sleeper)
    for i in range(runs):
        for k, b in enumerate(binaries if i % 2 == 0 else binaries[::-1]):
            name, r = f"ab{i}-{k}", ab[b]
            c0 = busy_ms()
            r["start"].append(apply_until_running(name, sleeper, b))
            c1 = busy_ms()
            r["delete"].append(timed(b, "delete", "pod", name, "--grace-period=0", "--force"))
            r["start cpu"].append(c1 - c0)
            r["delete cpu"].append(busy_ms() - c1)
    print(f"\nA/B, {runs} rounds, interleaved ({os.cpu_count()} cores)")
    print(f"{'':<44} {'min ms':>8} {'median':>8} {'p90':>8}")
    for tag, b in zip("AB", binaries):
        print(f"{tag}: {b}")
        summary(f"  {tag} apply -> Running", ab[b]["start"])
        summary(f"  {tag} delete --grace-period=0 --force", ab[b]["delete"])
        print(f"  {tag} CPU per start {statistics.mean(ab[b]['start cpu']):.1f} ms, per delete "
              f"{statistics.mean(ab[b]['delete cpu']):.1f} ms (machine-wide, a mean)")
    print_steal()
    if witness:
        sh(peapod, "delete", "pod", "witness", "--grace-period=0", "--force")
    sys.exit(0)

# peapod: a whole pod (sandbox, network, container), then its delete.
graceful = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait; done"]
start, delete_force, start_g, delete_grace, crun, runc = [], [], [], [], [], []
apply_until_running("warmup", sleeper)
sh(peapod, "delete", "pod", "warmup", "--grace-period=0", "--force")
for i in range(runs):
    start.append(counted("start", apply_until_running, f"b{i}", sleeper))
    delete_force.append(timed(peapod, "delete", "pod", f"b{i}", "--grace-period=0", "--force"))
    crun.append(in_peer_ns(counted, "crun", timed, *crun_cmd, "run", "-b", bundle, f"bench{i}"))
    start_g.append(apply_until_running(f"g{i}", graceful))
    delete_grace.append(timed(peapod, "delete", "pod", f"g{i}"))
    runc.append(in_peer_ns(timed, "runc", "--root", runc_root, "run", "-b", bundle, f"runc{i}"))

# Breakdown: the same start traced step by step (separate runs: the untraced figures above
# carry no tracing cost).
traces = []
if profile:
    trace = os.path.join(work, "start-trace")
    for i in range(runs):
        traces.append(traced_start(f"t{i}", sleeper, trace))
        sh(peapod, "delete", "pod", f"t{i}", "--grace-period=0", "--force")

# Memory: PSS of each idle pod's keeper, supervisor and sandbox processes, one apply per pod
# (each relocates its own copy of the binary's data).
for i in range(idle):
    apply_until_running(f"idle{i}", sleeper)
time.sleep(10)  # past the supervisors' code-page trim, even on a loaded machine
pss = idle_pss()
if agent:
    zygotes = [c for c in children(agent.pid) if open(f"/proc/{c}/comm").read().strip() == "peapod-zygote"]
    host_pss = (pss_of(agent.pid), sum(pss_of(z) for z in zygotes))
else:
    # Without an agent, the first apply's spawner stays on as the CLIs' zygote.
    host_pss = (None, sum(pss_of(z) for z in cli_zygotes()))
for i in range(idle):
    sh(peapod, "delete", "pod", f"idle{i}", "--grace-period=0", "--force")

# Density: N pods applied in one file, until every one is Running, then `delete pods --all`
# until none is listed; with the PSS per pod once they idle.
dense = []
for n in density:
    names = [f"d{n}-{i}" for i in range(n)]
    # YAML documents (a stream that starts with `{` is read as JSON only, as kubectl reads it).
    manifest = "".join(f"---\n{pod_yaml(name, sleeper)}\n" for name in names)
    t0 = time.perf_counter()
    sh(peapod, "apply", "-f", "-", input=manifest.encode())
    while not all_running(names):
        time.sleep(0.002)
    up = time.perf_counter() - t0
    time.sleep(10)
    mem = idle_pss()
    t0 = time.perf_counter()
    sh(peapod, "delete", "pods", "--all", "--grace-period=0", "--force")
    while glob.glob(f"{lib}/pods/*/pod.json"):
        time.sleep(0.002)
    dense.append((n, up, time.perf_counter() - t0, statistics.mean(m[0] for m in mem) if mem else 0))

if agent:
    agent.terminate()
    agent.wait()


# crun's density peer: N bare `sleep` containers started one after another (crun has no pod
# or network), then killed and deleted.
cfg["process"]["args"] = ["sleep", "3600"]
json.dump(cfg, open(os.path.join(bundle, "config.json"), "w"))

def crun_density():
    out = []
    for n in density:
        ids = [f"cd{n}-{i}" for i in range(n)]
        t0 = time.perf_counter()
        for cid in ids:
            # Detached: the container would hold a pipe given as its stdio open for an hour.
            subprocess.run([*crun_cmd, "run", "-d", "-b", bundle, cid],
                           check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        up = time.perf_counter() - t0
        t0 = time.perf_counter()
        for cid in ids:
            sh(*crun_cmd, "delete", "-f", cid)
        out.append((n, up, time.perf_counter() - t0))
    return out

crun_dense = in_peer_ns(crun_density)

print(f"\npeapod benchmark, {runs} runs ({os.cpu_count()} cores)")
print(f"{'':<44} {'min ms':>8} {'median':>8} {'p90':>8}")
summary("peapod apply -> Running (sandbox+net+1 ctr)", start)
summary("peapod apply -> Running (graceful ctr)", start_g)
summary("crun run (bare container, `true`)", crun)
summary("runc run (bare container, `true`)", runc)
print(f"CPU time per start (all processes, both cores; the clock ticks every "
      f"{1000 / os.sysconf('SC_CLK_TCK'):.0f} ms, so a mean): peapod {statistics.mean(cpu['start']):.1f} ms, "
      f"crun {statistics.mean(cpu['crun']):.1f} ms")
summary("peapod delete --grace-period=0 --force", delete_force)
summary("peapod delete (container exits on SIGTERM)", delete_grace)
print_steal()
if traces:
    print_profile(traces)
if node:
    print("\nwith the node agent running (its zygote forks every pod's keeper)")
if pss:
    print(f"\nmemory per idle pod (PSS of keeper + supervisor + sandbox, {idle} pods, one apply each): "
          f"mean {statistics.mean(p[0] for p in pss):.0f} kB, max {max(p[0] for p in pss)} kB  "
          f"(podman conmon + infra measured on this kind of machine: 851 kB)")
    print(f"  of which (mean kB): {mean_parts(pss)}; supervisor + sandbox "
          f"{statistics.mean(p[2] + p[3] for p in pss):.0f} kB")
if pss and host_pss and host_pss[0] is not None:
    print(f"  per host, beside these pods: node agent {host_pss[0]} kB, zygote {host_pss[1]} kB")
elif pss and host_pss:
    print(f"  per host, beside these pods: the CLIs' zygote {host_pss[1]} kB")
if dense:
    print(f"\ndensity: N pods in one apply until all Running, then `delete pods --all` until none")
    print(f"{'N':>5} {'peapod up s':>12} {'peapod del s':>13} {'PSS/pod kB':>11} {'crun up s':>10} {'crun del s':>11}")
    for (n, up, down, mem), (_, cup, cdown) in zip(dense, crun_dense):
        print(f"{n:>5} {up:12.2f} {down:13.2f} {mem:11.0f} {cup:10.2f} {cdown:11.2f}")
