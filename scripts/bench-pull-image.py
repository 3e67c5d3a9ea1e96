"""Generates the pull benchmark's image for scripts/bench-pull: an OCI layout with LAYERS gzip
layers that look like a distribution plus an application (thousands of small text-like files,
some symlinks, a few big binaries, later layers that replace and delete files of the first).

Usage: bench-pull-image.py OUT_DIR LAYERS MIB SEED
Writes OUT_DIR/layout (tag v1) and OUT_DIR/facts.json. Everything is derived from the
parameters (seeded PRNG, fixed mtimes, uid/gid numbers only, sorted names, gzip without name or
time), so the same parameters always give the same digests. Layers are built in parallel.
"""
import gzip, hashlib, io, json, math, multiprocessing, os, platform, random, shutil, sys, tarfile

MTIME = 0
CORPUS_SIZE = 4 << 20
MIB = 1 << 20
SMALL_SHARE = 0.4          # of the uncompressed bytes: small text-like files, the rest binaries
TOPS = ["usr/share/doc", "usr/lib", "usr/share/locale", "usr/include", "usr/lib/python3/dist-packages",
        "usr/share/man/man1", "etc", "var/lib"]
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


_corpus = {}


def corpus(seed):
    if seed not in _corpus:
        _corpus[seed] = make_corpus(seed)
    return _corpus[seed]


def make_corpus(seed):
    """Pseudo-text with a Zipf-like word distribution: compresses about as well as docs and code."""
    rng = random.Random(seed)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    words = ["".join(rng.choices(letters, weights=range(26, 0, -1), k=rng.randint(2, 10)))
             for _ in range(3000)]
    punct = [" ", " ", " ", " ", " ", " ", ", ", ". ", " = ", "\n", "(", ") ", "_", "/"]
    cum = list(__import__("itertools").accumulate(1 / (r + 1) for r in range(len(words))))
    out, n = [], 0
    while n < CORPUS_SIZE:
        chunk = rng.choices(words, cum_weights=cum, k=4096)
        seps = rng.choices(punct, k=4096)
        s = "".join(w + p for w, p in zip(chunk, seps))
        out.append(s)
        n += len(s)
    return "".join(out).encode()[:CORPUS_SIZE]


def content(kind, size, seed, text):
    rng = random.Random(seed)
    if kind == "text":
        off = rng.randrange(0, CORPUS_SIZE - size)
        return text[off:off + size]
    if kind == "random":
        return rng.randbytes(size)
    # "binary": like an ELF or a library, half incompressible code, half zeros and strings.
    parts, n = [], 0
    while n < size:
        r = rng.random()
        if r < 0.5:
            b = rng.randbytes(4096)
        elif r < 0.75:
            b = bytes(4096)
        else:
            off = rng.randrange(0, CORPUS_SIZE - 4096)
            b = text[off:off + 4096]
        parts.append(b)
        n += 4096
    return b"".join(parts)[:size]


def log_uniform_size(rng):
    return int(1024 * 64 ** rng.random())     # 1 KiB .. 64 KiB


def plan(layers, mib, seed):
    """The entries of every layer: (path, kind, size, mode, uid, gid, content seed or link)."""
    rng = random.Random(seed)
    total = mib * MIB
    small_w = [3 if i == 0 else 1 for i in range(layers)]
    big_w = [1 + (i % 3) * 0.5 for i in range(layers)]
    plans, first_files = [], []
    for i in range(layers):
        entries = {}
        small_budget = int(total * SMALL_SHARE * small_w[i] / sum(small_w))
        big_budget = int(total * (1 - SMALL_SHARE) * big_w[i] / sum(big_w))
        n = 0
        while n < small_budget:
            pkg = f"pkg{i}-{rng.randrange(10**6):06d}"
            top = rng.choice(TOPS)
            for f in range(rng.randint(3, 30)):
                size = log_uniform_size(rng)
                sub = rng.choice(["", "data/", "lib/", "share/"])
                path = f"{top}/{pkg}/{sub}f{f:03d}.txt"
                uid = 100 if top == "var/lib" else 0
                entries[path] = ("text", size, 0o644, uid, uid, rng.getrandbits(63))
                n += size
                if rng.random() < 0.03:
                    entries[f"usr/bin/l{i}-{pkg}-{f}"] = ("symlink", 0, 0o777, 0, 0, f"/{path}")
        n, b = 0, 0
        while n < big_budget:
            size = min(big_budget - n, rng.randint(4, 40) * MIB) if big_budget - n > MIB else big_budget - n
            kind = "random" if b % 2 == 0 else "binary"
            entries[f"opt/app{i}/bin/blob{b:02d}.bin"] = (kind, size, 0o755, 0, 0, rng.getrandbits(63))
            n += size
            b += 1
        if i == 0:
            first_files = sorted(p for p, e in entries.items() if e[0] == "text")
        else:
            # Like a package upgrade: replace a few files of the base layer, delete one.
            picked = rng.sample(first_files, 4)
            for p in picked[:3]:
                entries[p] = ("text", log_uniform_size(rng), 0o644, 0, 0, rng.getrandbits(63))
            gone = picked[3]
            d, name = os.path.split(gone)
            entries[f"{d}/.wh.{name}"] = ("whiteout", 0, 0o644, 0, 0, 0)
        dirs = set()
        for p in entries:
            parts = p.split("/")[:-1]
            for k in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:k]))
        for d in dirs:
            entries.setdefault(d, ("dir", 0, 0o755, 0, 0, 0))
        plans.append(sorted(entries.items()))
    return plans


class Hashing:
    """A write-only file that hashes and counts what goes through it."""

    def __init__(self, out):
        self.out, self.h, self.n = out, hashlib.sha256(), 0

    def write(self, b):
        self.h.update(b)
        self.n += len(b)
        return self.out.write(b)

    def flush(self):
        pass


def build_layer(args):
    i, entries, path, seed = args
    text = corpus(seed)
    with open(path, "wb") as raw:
        compressed = Hashing(raw)
        with gzip.GzipFile(fileobj=compressed, mode="wb", compresslevel=6, mtime=0) as gz:
            tar_stream = Hashing(gz)
            with tarfile.open(fileobj=tar_stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                files = total = 0
                for name, (kind, size, mode, uid, gid, arg) in entries:
                    ti = tarfile.TarInfo(name)
                    ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = MTIME, mode, uid, gid, "", ""
                    if kind == "dir":
                        ti.type = tarfile.DIRTYPE
                        tar.addfile(ti)
                    elif kind == "symlink":
                        ti.type, ti.linkname = tarfile.SYMTYPE, arg
                        tar.addfile(ti)
                    elif kind == "whiteout":
                        tar.addfile(ti)
                    else:
                        data = content(kind, size, arg, text)
                        ti.size = len(data)
                        tar.addfile(ti, io.BytesIO(data))
                        files += 1
                        total += len(data)
    return {"digest": "sha256:" + compressed.h.hexdigest(), "size": compressed.n,
            "diff_id": "sha256:" + tar_stream.h.hexdigest(), "tar_size": tar_stream.n,
            "files": files, "bytes": total, "entries": len(entries)}


def put_blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)


def main():
    out, layers, mib, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    layout = os.path.join(tmp, "layout")
    blobs = os.path.join(layout, "blobs", "sha256")
    os.makedirs(blobs)
    plans = plan(layers, mib, seed)
    jobs = [(i, p, os.path.join(tmp, f"layer{i}.tar.gz"), seed) for i, p in enumerate(plans)]
    with multiprocessing.Pool(min(layers, os.cpu_count() or 1)) as pool:
        facts = pool.map(build_layer, jobs)
    for i, f in enumerate(facts):
        os.rename(os.path.join(tmp, f"layer{i}.tar.gz"), os.path.join(blobs, f["digest"][7:]))
    config = {
        "created": "2024-01-01T00:00:00Z", "architecture": ARCH, "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["/opt/app0/bin/blob00.bin"]},
        "rootfs": {"type": "layers", "diff_ids": [f["diff_id"] for f in facts]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"bench-pull layer {i}"}
                    for i in range(layers)],
    }
    cdigest, csize = put_blob(layout, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest, "size": csize},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": f["digest"],
                    "size": f["size"]} for f in facts],
    }
    mdigest, msize = put_blob(layout, json.dumps(manifest, sort_keys=True).encode())
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest, "size": msize,
        "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with open(os.path.join(tmp, "facts.json"), "w") as f:
        json.dump({"layers": facts, "manifest": mdigest, "config": cdigest}, f, indent=1)
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)


if __name__ == "__main__":
    main()
