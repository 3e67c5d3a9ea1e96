#!/usr/bin/env python3
"""Writes the seed corpora of peapod's fuzz targets (fuzz/fuzz_targets/) into OUT/<target>/.

Seeds come from the project's own test data: the busybox image that scripts/build-image makes
(its layer, trimmed to a small tree, and its index/manifest/config), the pods of the shared pod
corpus and examples/, plus small hand-written documents, logs and hostile layers.

usage: scripts/fuzz-seeds.py OUT BUSYBOX_LAYOUT [POD_CORPUS_DIR]
"""

import gzip
import hashlib
import io
import json
import os
import pathlib
import subprocess
import sys
import tarfile

# The fixed canary of fuzz_targets/layer_unpack.rs: seeds aim symlinks at it.
FIXED_CANARY = "/tmp/peapod-fuzz-canary"
ZERO = "sha256:" + "0" * 64


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write(out, target, name, data):
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


def tar_of(members, fmt=tarfile.GNU_FORMAT):
    """members: (TarInfo, data or None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for info, data in members:
            info.size = len(data) if data is not None else 0
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    # tarfile pads the archive to 10 kB records; keep the two end blocks only.
    body = buf.getvalue().rstrip(b"\0")
    return body + b"\0" * (-len(body) % 512 + 1024)


def info(name, kind=tarfile.REGTYPE, mode=0o644, link=""):
    i = tarfile.TarInfo(name)
    i.type, i.mode, i.linkname, i.mtime = kind, mode, link, 0
    return i


def busybox_blobs(layout):
    index = json.loads((layout / "index.json").read_text())
    blob = lambda d: (layout / "blobs" / "sha256" / d.split(":", 1)[1]).read_bytes()
    manifest = blob(index["manifests"][0]["digest"])
    m = json.loads(manifest)
    return index, manifest, blob(m["config"]["digest"]), blob(m["layers"][0]["digest"])


def small_busybox_layer(layer_gz, fmt):
    """The busybox layer's tree with a tiny busybox and 30 of its applet links."""
    members, links = [], 0
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer_gz))) as t:
        for m in t.getmembers():
            if m.issym():
                links += 1
                if links > 30:
                    continue
            data = None
            if m.isfile():
                data = t.extractfile(m).read()
                if m.name.endswith("bin/busybox"):
                    data = data[:64]
            members.append((m, data))
    return tar_of(members, fmt)


def layer_seeds(out, layout):
    _, _, _, layer_gz = busybox_blobs(layout)
    for fmt, name in [(tarfile.GNU_FORMAT, "gnu"), (tarfile.PAX_FORMAT, "pax")]:
        tar = small_busybox_layer(layer_gz, fmt)
        # The first byte is the framing (see layer_unpack.rs).
        write(out, "layer_unpack", f"busybox-{name}", b"\0" + tar)
        write(out, "layer_unpack", f"busybox-{name}-gzip", b"\1" + tar)
        write(out, "layer_unpack", f"busybox-{name}-zstd", b"\2" + tar)
        write(out, "layer_unpack", f"busybox-{name}-gz-stream", b"\3" + gzip.compress(tar))
        zst = subprocess.run(["zstd", "-q", "-c"], input=tar, capture_output=True, check=True)
        write(out, "layer_unpack", f"busybox-{name}-zst-stream", b"\4" + zst.stdout)
    d, s, l, h = tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.REGTYPE
    hostile = {
        "symlink-to-canary": [(info("a", s, link=FIXED_CANARY), None), (info("a/x"), b"x")],
        "symlink-up": [(info("a", s, link="../canary"), None), (info("a/x"), b"x")],
        "symlink-root": [(info("a", s, link="/"), None), (info("a/tmp/x"), b"x")],
        "dir-then-symlink": [
            (info("d", d, 0o777), None),
            (info("d/f"), b"f"),
            (info("d", s, link=FIXED_CANARY), None),
            (info("d/g"), b"g"),
        ],
        "hardlinks": [
            (info("f", h, 0o4755), b"data"),
            (info("h", l, link="f"), None),
            (info("s", s, link=FIXED_CANARY + "/keep"), None),
            (info("h2", l, link="s"), None),
            (info("h3", l, link="../canary/keep"), None),
        ],
        "whiteouts": [
            (info("d", d), None),
            (info("d/.wh..wh..opq"), b""),
            (info(".wh.gone"), b""),
            (info("d/.wh..."), b""),
        ],
        "devices": [
            (info("dev/sda", tarfile.BLKTYPE, 0o666), None),
            (info("dev/null", tarfile.CHRTYPE, 0o666), None),
            (info("run/fifo", tarfile.FIFOTYPE), None),
        ],
        "long-name": [(info("d/" * 80 + "f"), b"x")],
    }
    for name, members in hostile.items():
        write(out, "layer_unpack", name, b"\0" + tar_of(members))
    pax = tarfile.TarInfo("x")
    pax.pax_headers = {"SCHILY.xattr.user.a": "v", "SCHILY.xattr.trusted.overlay.redirect": "/"}
    write(out, "layer_unpack", "pax-xattrs", b"\0" + tar_of([(pax, b"x")], tarfile.PAX_FORMAT))


def tokenized(layout):
    """The busybox image's documents with the digests oci_load.rs fills in as tokens."""
    index, manifest, config, _ = busybox_blobs(layout)
    c = json.loads(config)
    c["rootfs"]["diff_ids"] = ["@DIFF_ID@"]
    m = json.loads(manifest)
    m["config"]["digest"], m["config"]["size"] = "@CONFIG@", "@CONFIG_SIZE@"
    m["layers"][0]["digest"], m["layers"][0]["size"] = "@LAYER@", "@LAYER_SIZE@"
    i = index["manifests"][0]
    i["digest"], i["size"] = "@MANIFEST@", "@MANIFEST_SIZE@"
    # Sizes are numbers in JSON: drop the quotes json.dumps puts around the tokens.
    unquote = lambda o: json.dumps(o).replace('"@CONFIG_SIZE@"', "@CONFIG_SIZE@").replace(
        '"@LAYER_SIZE@"', "@LAYER_SIZE@").replace('"@MANIFEST_SIZE@"', "@MANIFEST_SIZE@").replace(
        '"@INNER_SIZE@"', "@INNER_SIZE@")
    inner = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            dict(i, platform={"architecture": "arm64", "os": "linux"}),
            dict(i, platform={"architecture": "amd64", "os": "linux", "variant": "v3"}),
            dict(i, platform={"architecture": "amd64", "os": "linux"}),
        ],
    }
    outer = json.loads(json.dumps(index))
    outer["manifests"][0].update(
        mediaType="application/vnd.oci.image.index.v1+json", digest="@INNER@", size="@INNER_SIZE@"
    )
    return unquote(index), unquote(outer), unquote(inner), unquote(m), unquote(c), (index, manifest, config)


def oci_seeds(out, layout):
    index, outer, inner, m, c, (raw_index, manifest, config) = tokenized(layout)
    join = lambda *docs: "\0".join(docs)
    write(out, "oci_load", "busybox", join(index, "", m, c))
    write(out, "oci_load", "nested-index", join(outer, inner, m, c))
    # An OCI archive of a layout whose blobs are real: the busybox manifest and config with a
    # one-file layer.
    layer_tar = tar_of([(info("bin/sh", mode=0o755), b"x\n")])
    layer = gzip.compress(layer_tar, mtime=0)
    cfg = json.loads(config)
    cfg["rootfs"]["diff_ids"] = [sha(layer_tar)]
    cfg = json.dumps(cfg).encode()
    man = json.loads(manifest)
    man["config"].update(digest=sha(cfg), size=len(cfg))
    man["layers"][0].update(digest=sha(layer), size=len(layer))
    man = json.dumps(man).encode()
    idx = json.loads(json.dumps(raw_index))
    idx["manifests"][0].update(digest=sha(man), size=len(man))
    files = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", json.dumps(idx).encode())]
    files += [(f"blobs/sha256/{sha(b)[7:]}", b) for b in (layer, cfg, man)]
    archive = tar_of([(info(n), b) for n, b in files])
    write(out, "oci_load", "archive", b"A" + archive)
    write(out, "oci_load", "archive-gzip", b"A" + gzip.compress(archive, mtime=0))
    # The registry's documents as they are, and their neighbours.
    docs = {
        "index": json.dumps(raw_index),
        "manifest": manifest,
        "config": config,
        "docker-manifest": manifest.replace(
            b"application/vnd.oci.image.manifest.v1+json",
            b"application/vnd.docker.distribution.manifest.v2+json",
        ),
        "no-media-type": json.dumps({"schemaVersion": 2, "manifests": raw_index["manifests"]}),
        "schema1": '{"schemaVersion":1,"name":"busybox","tag":"latest","fsLayers":[]}',
        "zstd-layer": manifest.replace(b"tar+gzip", b"tar+zstd"),
        "foreign-layer": manifest.replace(b"tar+gzip", b"tar+foo"),
    }
    for name, doc in docs.items():
        write(out, "oci_documents", name, doc)


def text_seeds(out, pods):
    refs = [
        "busybox", "busybox:1.36", "user/app", "index.docker.io/busybox", "host:5000/a/b",
        "localhost/x:v1", "quay.io/a/b:c", "busybox@" + ZERO, "busybox:1@" + ZERO,
        "127.0.0.1:5000/peapod/busybox:latest", "[::1]:5000/a", "a//b", "Busybox", "h:x/y/z:t:u",
    ]
    for n, r in enumerate(refs):
        write(out, "image_reference", f"ref{n}", r)
    write(out, "registries_toml", "full", """
[registries."docker.io"]
mirrors = ["http://127.0.0.1:5000", "https://mirror.example.com/"]
[registries."reg.local:5001"]
insecure = true
ca_file = "/etc/ca.pem"
[registries."127.0.0.1:5000"]
[registries."[::1]:5002"]
insecure = false
""")
    write(out, "registries_toml", "empty", "")
    write(out, "registries_toml", "mirror-only", 'registries."quay.io".mirrors = ["mirror:5000"]\n')
    log = (
        "2016-10-06T00:17:09.669794202Z stdout F hello world\n"
        "2024-01-01T00:00:00Z stdout P ab\n"
        "2024-01-01T00:00:01Z stderr F err\n"
        "2024-01-01T00:00:02.5Z stdout F cd\n"
        "2024-01-01T00:00:03Z stderr P \n"
        "garbage\n"
        "2024-01-01T00:00:04Z stdout F"
    )
    # Two bytes first: where the follower's file is cut, and --tail (see cri_log.rs).
    write(out, "cri_log", "mixed", b"\x80\x02" + log.encode())
    write(out, "cri_log", "all", b"\xff\xff" + log.encode())
    manifests = list(pathlib.Path(pods).rglob("*.y*ml")) + list(pathlib.Path(pods).rglob("*.json")) if pods else []
    repo = pathlib.Path(__file__).resolve().parent.parent
    manifests += sorted((repo / "examples").glob("*.yaml"))
    for n, path in enumerate(sorted(manifests)):
        write(out, "manifest_objects", f"{n:03}-{path.name}", path.read_bytes())
    objects = {
        "configmap.json": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}},
        "secret.json": {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}},
        "pvc.json": {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "p"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    }
    objects["list.json"] = {"apiVersion": "v1", "kind": "List", "items": list(objects.values())}
    for name, o in objects.items():
        write(out, "manifest_objects", name, json.dumps(o))


def main():
    out, layout = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    pods = sys.argv[3] if len(sys.argv) > 3 else None
    layer_seeds(out, layout)
    oci_seeds(out, layout)
    text_seeds(out, pods)


if __name__ == "__main__":
    main()
