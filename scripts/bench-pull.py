"""The measuring half of scripts/bench-pull: starts the registry, pushes the image, times
`peapod pull` against `skopeo copy` + `umoci unpack`, compares the unpacked trees, prints the report.

Usage: bench-pull.py PEAPOD IMAGE_DIR WORK RUNS  (IMAGE_DIR from bench-pull-image.py)
"""
import json, os, shutil, socket, statistics, subprocess, sys, time, urllib.request

peapod, image, work, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
facts = json.load(open(os.path.join(image, "facts.json")))
MIB = 1 << 20


def sh(*args, env=None, log=None):
    with open(log or os.devnull, "ab") as err:
        r = subprocess.run(args, stdout=subprocess.PIPE, stderr=err, env=env)
    if r.returncode != 0:
        tail = open(log, errors="replace").read()[-2000:] if log else ""
        sys.exit(f"bench-pull: {' '.join(args)} failed with exit code {r.returncode}\n{tail}")
    return r.stdout.decode()


def timed(name, *args, env=None):
    """Runs under /usr/bin/time: (wall seconds, max RSS in KiB, CPU seconds, stdout)."""
    tf = os.path.join(work, "time.out")
    log = os.path.join(work, f"{name}.log")
    t0 = time.perf_counter()
    out = sh("/usr/bin/time", "-f", "%e %M %U %S", "-o", tf, *args, env=env, log=log)
    wall = time.perf_counter() - t0
    _, rss, user, system = open(tf).read().split()[-4:]
    return wall, int(rss), float(user) + float(system), out


def start_registry():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = os.path.join(work, "registry.yml")
    with open(cfg, "w") as f:
        f.write(f"""version: 0.1
log: {{level: error, accesslog: {{disabled: true}}}}
storage: {{filesystem: {{rootdirectory: {work}/registry}}, delete: {{enabled: true}}}}
http: {{addr: 127.0.0.1:{port}}}
""")
    log = open(os.path.join(work, "registry.log"), "wb")
    proc = subprocess.Popen(["docker-registry", "serve", cfg], stdout=log, stderr=log)
    with open(os.path.join(work, "registry.pid"), "w") as f:
        f.write(str(proc.pid))
    deadline = time.time() + 20
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            return proc, f"127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                sys.exit("bench-pull: the registry did not start; see " + log.name)
            time.sleep(0.05)


def walk(root):
    """relpath -> (type, size, mode, uid, gid) for everything below root, symlinks not followed."""
    out = {}
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(os.path.join(root, rel)) as it:
            for e in it:
                p = os.path.join(rel, e.name)
                st = e.stat(follow_symlinks=False)
                kind = "d" if e.is_dir(follow_symlinks=False) else "l" if e.is_symlink() else \
                    "f" if e.is_file(follow_symlinks=False) else "c" if st.st_rdev == 0 else "o"
                out[p] = (kind, st.st_size if kind == "f" else 0, st.st_mode & 0o7777, st.st_uid, st.st_gid)
                if kind == "d":
                    stack.append(p)
    return out


def drop_below(tree, path):
    for k in [k for k in tree if k.startswith(path + "/")]:
        del tree[k]


def stack_layers(dirs):
    """The tree overlayfs would show for these layer directories (bottom first)."""
    tree = {}
    for d in dirs:
        layer = walk(d)
        for p, v in sorted(layer.items()):
            if v[0] == "d":
                try:
                    os.getxattr(os.path.join(d, p), "trusted.overlay.opaque", follow_symlinks=False)
                    drop_below(tree, p)
                except OSError:
                    pass
        for p, v in sorted(layer.items()):
            if v[0] == "c":             # a whiteout: hides the lower path
                tree.pop(p, None)
                drop_below(tree, p)
                continue
            if v[0] != "d":
                drop_below(tree, p)
            tree[p] = v
    return tree


def counts(tree):
    files = [v for v in tree.values() if v[0] == "f"]
    return {"files": len(files), "dirs": sum(v[0] == "d" for v in tree.values()),
            "symlinks": sum(v[0] == "l" for v in tree.values()), "bytes": sum(v[1] for v in files)}


def compare(a, b):
    diffs = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return diffs, [(k, a.get(k), b.get(k)) for k in diffs[:5]]


def main():
    os.makedirs(os.path.join(work, "docker"))           # an empty docker config: no credentials
    regconf = os.path.join(work, "registries.toml")
    open(regconf, "w").close()
    registry, host = start_registry()
    try:
        run(host, regconf)
    finally:
        registry.terminate()
        registry.wait()
        os.unlink(os.path.join(work, "registry.pid"))


def run(host, regconf):
    ref = f"{host}/bench/big:v1"
    t0 = time.perf_counter()
    sh("skopeo", "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false",
       f"oci:{image}/layout:v1", f"docker://{ref}", log=os.path.join(work, "push.log"))
    push_s = time.perf_counter() - t0

    have_pull = subprocess.run([peapod, "pull", "--help"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL).returncode == 0
    if not have_pull:
        print(f"bench-pull: {peapod} has no pull verb; measuring the peer only", file=sys.stderr)
    # Every run gets fresh directories and nothing is deleted until the end: on ext4 without
    # a journal (this machine's disk), creating files in the seconds after deleting thousands
    # makes the allocator skip each recently freed inode, which tripled the system time of
    # whichever run came next. For the same reason, settle before the first run.
    need = runs * 2.5 * sum(l["tar_size"] + l["size"] for l in facts["layers"])
    if shutil.disk_usage(work).free < need:
        sys.exit(f"bench-pull: {need / (1 << 30):.1f} GiB free needed under {work}")
    sh("sync")
    time.sleep(10)
    # label -> [(wall s, peak RSS KiB, CPU s)], one per run
    res = {"peapod": [], "skopeo": [], "umoci": [], "peer": []}
    check = {}
    for i in range(runs):
        if have_pull:
            d = os.path.join(work, f"peapod{i}")
            env = dict(os.environ, PEAPOD_LIB_DIR=f"{d}/lib", PEAPOD_RUN_DIR=f"{d}/run",
                       PEAPOD_LOG_DIR=f"{d}/log", PEAPOD_REGISTRIES_CONFIG=regconf,
                       DOCKER_CONFIG=os.path.join(work, "docker"))
            env.pop("PEAPOD_AUTH_FILE", None)
            *m, out = timed("peapod", peapod, "pull", ref, env=env)
            lines = out.split()
            if not lines or lines[-1] != facts["config"]:
                sys.exit(f"bench-pull: peapod pull printed {out!r}, expected the image id {facts['config']}")
            res["peapod"].append(m)
            if i == 0:
                check["peapod"] = stack_layers([f"{d}/lib/l/{l['diff_id'][7:]}" for l in facts["layers"]])
            sh("sync")
        d = os.path.join(work, f"peer{i}")
        os.makedirs(d)
        *a, _ = timed("skopeo", "skopeo", "copy", "--quiet", "--src-tls-verify=false",
                      f"docker://{ref}", f"oci:{d}/oci:v1")
        *b, _ = timed("umoci", "umoci", "unpack", "--image", f"{d}/oci:v1", f"{d}/bundle")
        res["skopeo"].append(a), res["umoci"].append(b)
        res["peer"].append((a[0] + b[0], max(a[1], b[1]), a[2] + b[2]))
        if i == 0:
            check["peer"] = walk(f"{d}/bundle/rootfs")
        sh("sync")
    report(push_s, res, check)


def med(xs, k):
    return statistics.median(x[k] for x in xs)


def row(label, xs):
    if not xs:
        return f"{label:<38} {'-':>9} {'-':>7} {'-':>13} {'-':>11}"
    return (f"{label:<38} {med(xs, 0):9.2f} {min(x[0] for x in xs):7.2f} "
            f"{max(x[1] for x in xs) / 1024:13.1f} {med(xs, 2):11.2f}")


def report(push_s, res, check):
    layers = facts["layers"]
    comp = sum(l["size"] for l in layers) / MIB
    tar = sum(l["tar_size"] for l in layers) / MIB
    final = counts(check["peer"])
    load = os.getloadavg()[0]
    print(f"\npull benchmark: {len(layers)} gzip layers, {comp:.1f} MiB compressed, {tar:.1f} MiB of tar; "
          f"rootfs {final['files']} files, {final['dirs']} dirs, {final['symlinks']} symlinks, "
          f"{final['bytes'] / MIB:.1f} MiB")
    print(f"{runs} runs each, alternating; {os.cpu_count()} cores, load average {load:.1f}; "
          f"registry on loopback (push took {push_s:.1f}s)")
    print(f"{'':<38} {'median s':>9} {'min s':>7} {'peak RSS MiB':>13} {'CPU s (med)':>11}")
    print(row("peapod pull", res["peapod"]))
    print(row("skopeo copy (registry -> OCI layout)", res["skopeo"]))
    print(row("umoci unpack (layout -> rootfs)", res["umoci"]))
    print(row("skopeo copy + umoci unpack", res["peer"]))
    pea, peer = res["peapod"], res["peer"]
    if not pea:
        return
    ratio = med(peer, 0) / med(pea, 0)
    best = min(x[0] for x in peer) / min(x[0] for x in pea)
    rss = max(x[1] for x in pea) / 1024
    print(f"speed-up (skopeo+umoci / peapod): {ratio:.2f}x on medians, {best:.2f}x on minimums, "
          f"{med(peer, 2) / med(pea, 2):.2f}x in CPU time; peapod {comp / med(pea, 0):.0f} MiB/s compressed")
    met = ratio >= 1.5 and rss < 64
    print(f"goal: >= 1.5x faster, peak RSS < 64 MiB: {'met' if met else 'NOT met'} "
          f"({ratio:.2f}x, {rss:.1f} MiB)")
    mine = counts(check["peapod"])
    diffs, sample = compare(check["peapod"], check["peer"])
    same = "identical" if not diffs else f"{len(diffs)} entries differ, e.g. {sample}"
    print(f"unpacked trees, peapod's layers stacked vs umoci's rootfs (type, size, mode, owner): {same}; "
          f"peapod {mine['files']} files / {mine['bytes'] / MIB:.1f} MiB, "
          f"umoci {final['files']} files / {final['bytes'] / MIB:.1f} MiB")


if __name__ == "__main__":
    main()
