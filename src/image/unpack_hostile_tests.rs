//! The malicious-layer corpus: layers built to escape the layer directory, exhaust memory or
//! confuse the overlay, each checked for what a user sees: the error names the entry, nothing
//! is written outside the layer directory, and no half-unpacked layer is left in the store.
//! Layers that are legal but unusual (devices, setuid files, duplicates) unpack as tar would.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use super::tests::{
    assert_nothing_left, dir, file, get_xattr, gzip, layer, layer_of_tar, link, pax_record, tar_of,
    unpack, Ent, Layer,
};
use super::*;
use crate::cgroup::{Access, DeviceKind, DeviceRules};
use tar::EntryType::{Block, Char, Fifo, GNULongName, GNUSparse, Link, Symlink, XHeader};

/// A directory beside the store that hostile layers aim at, holding one file.
struct Outside {
    dir: tempfile::TempDir,
}

impl Outside {
    fn new() -> Outside {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("secret"), b"s").unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o750)).unwrap();
        Outside { dir }
    }

    fn path(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    /// Still exactly as made: one file, same content, same modes.
    fn assert_untouched(&self) {
        let names: Vec<_> = fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["secret"], "written outside the layer");
        let secret = self.dir.path().join("secret");
        assert_eq!(fs::read(&secret).unwrap(), b"s");
        assert_eq!(fs::metadata(&secret).unwrap().mode() & 0o7777, 0o644);
        let d = fs::metadata(self.dir.path()).unwrap();
        assert_eq!(d.mode() & 0o7777, 0o750);
    }
}

/// Unpacks a layer that must be refused: the error names `entry` and the layer's digest,
/// nothing of it is left in the store.
fn refused(l: &Layer, entry: &str) -> ImageError {
    let err = unpack(l, Compression::None).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            ImageError::UnsafeEntry { .. } | ImageError::Entry { .. }
        ),
        "{msg}"
    );
    assert!(msg.contains(&l.digest), "{msg}");
    assert!(msg.contains(&format!("entry {entry:?}")), "{msg}");
    assert_nothing_left(l);
    err
}

fn ent<'a>(path: &'a str, kind: tar::EntryType, data: &'a [u8]) -> Ent<'a> {
    Ent {
        path,
        kind,
        data,
        link: None,
        mode: 0o644,
    }
}

#[test]
fn path_traversal_is_refused() {
    let outside = Outside::new();
    for path in ["../x", "a/../../x", "./../x", "/x", "//x", "a/.."] {
        let l = layer(&[file(path, b"x", 0o644)], Compression::None);
        let err = refused(&l, path);
        assert!(matches!(err, ImageError::UnsafeEntry { .. }), "{path}");
        assert!(!l.layers.join("x").exists() && !Path::new("/x").exists());
    }
    // A hardlink naming such a path, and a directory entry of the layer's parent.
    for (entries, bad) in [
        (vec![link("h", Link, "../../x")], "h"),
        (vec![link("h", Link, "/etc/hostname")], "h"),
        (vec![dir("../")], "../"),
    ] {
        refused(&layer(&entries, Compression::None), bad);
    }
    outside.assert_untouched();
}

#[test]
fn writes_through_symlinks_are_refused() {
    let outside = Outside::new();
    let out = outside.path();
    let evil = format!("peapod-hostile-{}", std::process::id());
    let through_root = format!("a/tmp/{evil}");
    let cases: Vec<(Vec<Ent<'_>>, &str)> = vec![
        // A symlink to / and a file through it.
        (
            vec![link("a", Symlink, "/"), file(&through_root, b"x", 0o644)],
            &through_root,
        ),
        // A symlink to .. (the store's layers directory) and a file or directory through it.
        (
            vec![link("a", Symlink, ".."), file("a/x", b"x", 0o644)],
            "a/x",
        ),
        (vec![link("a", Symlink, "../.."), dir("a/sub/")], "a/sub/"),
        // A chain of symlinks.
        (
            vec![
                link("b", Symlink, out),
                link("a", Symlink, "b"),
                file("a/x", b"x", 0o644),
            ],
            "a/x",
        ),
        // A symlink replacing a directory that later entries write into.
        (
            vec![
                dir("d/"),
                file("d/f", b"x", 0o644),
                link("d", Symlink, out),
                file("d/g", b"x", 0o644),
            ],
            "d/g",
        ),
        // A symlink entry made through a symlink.
        (
            vec![link("a", Symlink, out), link("a/s", Symlink, "/")],
            "a/s",
        ),
        // Whiteouts and opaque markers under a symlink would delete or mark outside.
        (
            vec![link("a", Symlink, out), file("a/.wh.secret", b"", 0o644)],
            "a/.wh.secret",
        ),
        (
            vec![link("a", Symlink, out), file("a/.wh..wh..opq", b"", 0o644)],
            "a/.wh..wh..opq",
        ),
    ];
    for (entries, bad) in cases {
        let l = layer(&entries, Compression::None);
        let err = refused(&l, bad);
        assert!(
            err.to_string()
                .contains("symlink; refusing to write through it"),
            "{err}"
        );
        outside.assert_untouched();
        assert!(!Path::new("/tmp").join(&evil).exists());
    }
}

#[test]
fn a_symlink_replaced_by_a_file_is_not_written_through() {
    let outside = Outside::new();
    let secret = format!("{}/secret", outside.path());
    let l = layer(
        &[
            link("x", Symlink, &secret),
            file("x", b"mine", 0o600),
            link("y", Symlink, &secret),
            dir("y/"),
        ],
        Compression::None,
    );
    let root = unpack(&l, Compression::None).unwrap();
    assert!(fs::symlink_metadata(root.join("x")).unwrap().is_file());
    assert_eq!(fs::read(root.join("x")).unwrap(), b"mine");
    assert!(fs::symlink_metadata(root.join("y")).unwrap().is_dir());
    outside.assert_untouched();
}

#[test]
fn hardlinks_stay_inside_the_layer() {
    let outside = Outside::new();
    let secret = format!("{}/secret", outside.path());
    for (entries, bad, why) in [
        (vec![link("h", Link, "/etc/passwd")], "h", "absolute"),
        (vec![link("h", Link, &secret)], "h", "absolute"),
        (
            vec![
                link("s", Symlink, outside.path()),
                link("h", Link, "s/secret"),
            ],
            "h",
            "symlink",
        ),
        (vec![dir("d/"), link("h", Link, "d")], "h", "directory"),
        (vec![link("h", Link, "./")], "h", "layer root"),
        (vec![link("h", Link, "missing")], "h", "missing"),
    ] {
        let err = refused(&layer(&entries, Compression::None), bad);
        assert!(err.to_string().contains(why), "{err}");
    }
    // A hardlink to a symlink that points outside links the symlink itself (link(2) does not
    // follow it): the layer holds a second name of that symlink, the target is untouched.
    let before = fs::metadata(&secret).unwrap().nlink();
    let l = layer(
        &[link("s", Symlink, &secret), link("h", Link, "s")],
        Compression::None,
    );
    let root = unpack(&l, Compression::None).unwrap();
    let h = fs::symlink_metadata(root.join("h")).unwrap();
    assert!(h.file_type().is_symlink());
    assert_eq!(h.ino(), fs::symlink_metadata(root.join("s")).unwrap().ino());
    assert_eq!(fs::metadata(&secret).unwrap().nlink(), before);
    outside.assert_untouched();
}

#[test]
fn device_nodes_and_fifos_unpack_as_root_only_and_the_allowlist_refuses_them() {
    let l = layer(
        &[
            Ent {
                mode: 0o666,
                ..ent("dev/sda", Block, b"")
            },
            Ent {
                mode: 0o666,
                ..ent("dev/null", Char, b"")
            },
            Ent {
                mode: 0o640,
                ..ent("run/fifo", Fifo, b"")
            },
        ],
        Compression::None,
    );
    let root = unpack(&l, Compression::None).unwrap();
    let fifo = fs::symlink_metadata(root.join("run/fifo")).unwrap();
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mode() & 0o7777, 0o640);
    if is_root() {
        let sda = fs::symlink_metadata(root.join("dev/sda")).unwrap();
        assert!(sda.file_type().is_block_device());
        assert_eq!(sda.rdev(), libc::makedev(8, 0));
        assert_eq!(sda.mode() & 0o7777, 0o666);
        assert_eq!((sda.uid(), sda.gid()), (1000, 1001));
    } else {
        assert!(!root.join("dev/sda").exists() && !root.join("dev/null").exists());
    }
    // Only root reaches the layers directory on the host.
    assert_eq!(fs::metadata(&l.layers).unwrap().mode() & 0o7777, 0o700);
    // In a container, the device allowlist decides by (type, major, minor) at open(2): the
    // image's /dev/sda is refused like any block device, /dev/null allowed.
    let rules = crate::container::devices::device_cgroup_rules(false).unwrap();
    let rules = DeviceRules::from_spec(&rules).unwrap();
    assert!(!rules.allows(DeviceKind::Block, 8, 0, Access::READ));
    assert!(!rules.allows(DeviceKind::Char, 1, 1, Access::READ)); // /dev/mem
    assert!(rules.allows(DeviceKind::Char, 1, 3, Access::READ));
}

#[test]
fn an_existing_layers_directory_is_made_private() {
    let tmp = tempfile::tempdir().unwrap();
    let layers = tmp.path().join("l");
    fs::create_dir(&layers).unwrap();
    fs::set_permissions(&layers, fs::Permissions::from_mode(0o755)).unwrap();
    drop(lock_layer(&layers, "ab").unwrap());
    assert_eq!(fs::metadata(&layers).unwrap().mode() & 0o7777, 0o700);
}

#[test]
fn setuid_setgid_and_sticky_bits_are_kept() {
    let l = layer(
        &[
            file("bin/su", b"su", 0o4755),
            file("bin/wall", b"wall", 0o2755),
            file("bin/both", b"both", 0o6711),
            Ent {
                mode: 0o2775,
                ..dir("srv/")
            },
            Ent {
                mode: 0o1777,
                ..dir("tmp/")
            },
        ],
        Compression::Gzip,
    );
    let root = unpack(&l, Compression::Gzip).unwrap();
    for (path, mode) in [
        ("bin/su", 0o4755),
        ("bin/wall", 0o2755),
        ("bin/both", 0o6711),
        ("srv", 0o2775),
        ("tmp", 0o1777),
    ] {
        let m = fs::symlink_metadata(root.join(path)).unwrap();
        assert_eq!(m.mode() & 0o7777, mode, "{path}");
        if is_root() {
            // Owned as in the image, with the bits still set after the chown.
            assert_eq!((m.uid(), m.gid()), (1000, 1001), "{path}");
        }
    }
}

#[test]
fn oversized_tar_metadata_is_refused_before_it_is_read_into_memory() {
    let big = "a".repeat(3 << 20);
    let pax = pax_record("path", &big);
    let cases: [(Vec<Ent<'_>>, &str); 2] = [
        (
            vec![
                file("ok", b"x", 0o644),
                ent("PaxHeaders/x", XHeader, pax.as_bytes()),
                file("x", b"x", 0o644),
            ],
            "<the entry after ok>",
        ),
        (
            vec![
                ent("././@LongLink", GNULongName, big.as_bytes()),
                file("x", b"x", 0o644),
            ],
            "<the first entry>",
        ),
    ];
    for (entries, bad) in cases {
        // Gzip makes the 3 MiB a few kB, as an attacker would send it.
        let raw = tar_of(&entries);
        let l = layer_of_tar(raw, Compression::Gzip);
        assert!(fs::metadata(&l.blob).unwrap().len() < 64 << 10);
        let err = unpack(&l, Compression::Gzip).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ImageError::UnsafeEntry { .. }), "{msg}");
        assert!(msg.contains(&format!("entry {bad:?}")), "{msg}");
        assert!(msg.contains("PAX records"), "{msg}");
        assert_nothing_left(&l);
    }
}

#[test]
fn huge_sizes_and_long_names_fail_naming_the_entry() {
    // A PAX size far past the data: the file gets what the stream had, then the layer ends
    // early and is refused.
    let pax = pax_record("size", "99999999999999");
    let l = layer(
        &[
            ent("PaxHeaders/f", XHeader, pax.as_bytes()),
            file("f", b"x", 0o644),
        ],
        Compression::None,
    );
    refused(&l, "<the entry after f>");
    // A PAX record whose length field is huge is malformed: refused, as Go's archive/tar does.
    let bad_record = "99999999999 path=elsewhere\n";
    let l = layer(
        &[
            ent("PaxHeaders/g", XHeader, bad_record.as_bytes()),
            file("g", b"x", 0o644),
        ],
        Compression::None,
    );
    let err = refused(&l, "g");
    assert!(err.to_string().contains("malformed pax extension"), "{err}");
    // A name over PATH_MAX, and a component over NAME_MAX: the kernel refuses them, the
    // message shows the start of the name and its length.
    let long_path = ("d".repeat(200) + "/").repeat(25) + "f";
    let long_component = "n".repeat(300);
    for name in [&long_path, &long_component] {
        let l = layer(
            &[
                ent("././@LongLink", GNULongName, name.as_bytes()),
                file("x", b"x", 0o644),
            ],
            Compression::None,
        );
        let err = unpack(&l, Compression::None).unwrap_err().to_string();
        let shown = format!("{}... ({} bytes)", &name[..256], name.len());
        assert!(err.contains(&shown), "{}", &err[..err.len().min(600)]);
        assert!(err.len() < 1024, "the message is {} bytes", err.len());
        assert_nothing_left(&l);
    }
}

/// A GNU sparse file of `real_size` bytes whose only data is its last 512 bytes.
fn sparse_tar(path: &str, real_size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_path(path).unwrap();
    h.set_entry_type(GNUSparse);
    h.set_size(512);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    let gnu = h.as_gnu_mut().unwrap();
    gnu.set_real_size(real_size);
    let octal = |n: u64| format!("{n:011o}\0").into_bytes();
    gnu.sparse[0]
        .offset
        .copy_from_slice(&octal(real_size - 512));
    gnu.sparse[0].numbytes.copy_from_slice(&octal(512));
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, &[7u8; 512][..]).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn tar_bombs_meet_the_disk_not_peapod() {
    // GNU sparse files, the way to turn a small stream into a huge file without compression,
    // are refused: here 512 bytes of data at the end of a 4 GiB file.
    let l = layer_of_tar(sparse_tar("sparse", 4 << 30), Compression::None);
    let err = refused(&l, "sparse");
    assert!(
        err.to_string().contains("sparse files are not supported"),
        "{err}"
    );
    // Many entries unpack (a real layer has tens of thousands); disk space and inodes bound them.
    let names: Vec<String> = (0..500).map(|i| format!("many/f{i}")).collect();
    let entries: Vec<Ent<'_>> = names.iter().map(|n| file(n, b"", 0o644)).collect();
    let raw = tar_of(&entries);
    let compressed = gzip(&raw);
    assert!(compressed.len() * 10 < raw.len());
    let l = layer_of_tar(raw, Compression::Gzip);
    let root = unpack(&l, Compression::Gzip).unwrap();
    assert_eq!(fs::read_dir(root.join("many")).unwrap().count(), 500);
}

#[test]
fn duplicate_entries_the_later_one_wins() {
    let l = layer(
        &[
            file("f", b"one", 0o644),
            link("h", Link, "f"),
            file("f", b"two", 0o600),
            dir("d/"),
            file("d/inner", b"x", 0o644),
            file("d", b"now a file", 0o644),
            file("e", b"a file", 0o644),
            dir("e/"),
            Ent {
                mode: 0o700,
                ..dir("m/")
            },
            Ent {
                mode: 0o750,
                ..dir("m/")
            },
        ],
        Compression::None,
    );
    let root = unpack(&l, Compression::None).unwrap();
    assert_eq!(fs::read(root.join("f")).unwrap(), b"two");
    assert_eq!(fs::metadata(root.join("f")).unwrap().mode() & 0o7777, 0o600);
    // As with GNU tar, the old file is unlinked, not overwritten: its hardlink keeps it.
    assert_eq!(fs::read(root.join("h")).unwrap(), b"one");
    assert_eq!(fs::read(root.join("d")).unwrap(), b"now a file");
    assert!(fs::metadata(root.join("e")).unwrap().is_dir());
    assert_eq!(fs::metadata(root.join("m")).unwrap().mode() & 0o7777, 0o750);
}

#[test]
fn odd_whiteouts() {
    // Whiteouts naming `..`, `.` or nothing would hide the parent or escape it.
    for bad in [".wh...", "a/.wh...", ".wh..", "a/.wh."] {
        let err = refused(&layer(&[file(bad, b"", 0o644)], Compression::None), bad);
        assert!(err.to_string().contains("whiteout names no file"), "{err}");
    }
    // A file through a whiteout-like name is a plain name in the parent, never a path.
    let l = layer(
        &[dir("d/"), file("d/.wh.x/y", b"", 0o644)],
        Compression::None,
    );
    let root = unpack(&l, Compression::None).unwrap();
    assert!(root.join("d/.wh.x/y").is_file());
    if !is_root() {
        return; // whiteout devices and trusted.* xattrs need root
    }
    let l = layer(
        &[
            // An opaque marker at the layer root, in a directory the layer never lists, and as
            // a directory entry rather than a file.
            file(".wh..wh..opq", b"", 0o644),
            file("new/deep/.wh..wh..opq", b"", 0o644),
            dir("x/.wh..wh..opq/"),
            // A whiteout of something the same layer made, and one with data.
            file("gone/inner", b"x", 0o644),
            file(".wh.gone", b"", 0o644),
            file(".wh.data", b"payload", 0o644),
            // aufs-style metadata names are whiteouts of odd names, nothing more.
            file(".wh..wh.plnk", b"", 0o644),
        ],
        Compression::None,
    );
    let root = unpack(&l, Compression::None).unwrap();
    let opaque = |p: &Path| get_xattr(p, OVERLAY_OPAQUE_XATTR);
    assert_eq!(opaque(&root).as_deref(), Some(&b"y"[..]));
    assert_eq!(opaque(&root.join("new/deep")).as_deref(), Some(&b"y"[..]));
    assert_eq!(opaque(&root.join("x")).as_deref(), Some(&b"y"[..]));
    assert!(!root.join("x/.wh..wh..opq").exists());
    for hidden in ["gone", "data", ".wh.plnk"] {
        let m = fs::symlink_metadata(root.join(hidden)).unwrap();
        assert!(m.file_type().is_char_device() && m.rdev() == 0, "{hidden}");
    }
}
