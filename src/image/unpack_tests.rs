//! Unit tests for layer unpacking: layers are built in memory, including hostile ones that the
//! `tar` crate's own builder would refuse to write (raw header bytes).

use super::sys::cpath;
use super::*;
use std::ffi::CString;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

pub(crate) struct Ent<'a> {
    pub path: &'a str,
    pub kind: tar::EntryType,
    pub data: &'a [u8],
    pub link: Option<&'a str>,
    pub mode: u32,
}

pub(crate) fn file<'a>(path: &'a str, data: &'a [u8], mode: u32) -> Ent<'a> {
    Ent {
        path,
        kind: tar::EntryType::Regular,
        data,
        link: None,
        mode,
    }
}
pub(crate) fn dir(path: &str) -> Ent<'_> {
    Ent {
        path,
        kind: tar::EntryType::Directory,
        data: b"",
        link: None,
        mode: 0o755,
    }
}
pub(crate) fn link<'a>(path: &'a str, kind: tar::EntryType, target: &'a str) -> Ent<'a> {
    Ent {
        path,
        kind,
        data: b"",
        link: Some(target),
        mode: 0o777,
    }
}

/// A tar stream written header by header, so paths are not sanitized.
pub(crate) fn tar_of(entries: &[Ent<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let old = h.as_old_mut();
        old.name[..e.path.len()].copy_from_slice(e.path.as_bytes());
        if let Some(l) = e.link {
            old.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_entry_type(e.kind);
        h.set_size(e.data.len() as u64);
        h.set_mode(e.mode);
        h.set_uid(1000);
        h.set_gid(1001);
        h.set_mtime(1_000_000);
        // /dev/null, and /dev/sda for a block device.
        let device = match e.kind {
            tar::EntryType::Char => Some((1, 3)),
            tar::EntryType::Block => Some((8, 0)),
            _ => None,
        };
        if let Some((major, minor)) = device {
            h.set_device_major(major).unwrap();
            h.set_device_minor(minor).unwrap();
        }
        h.set_cksum();
        b.append(&h, e.data).unwrap();
    }
    b.into_inner().unwrap()
}

pub(crate) fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub(crate) struct Layer {
    _tmp: tempfile::TempDir,
    pub layers: PathBuf,
    pub blob: PathBuf,
    pub digest: String,
    pub diff_id: String,
}

pub(crate) fn layer(entries: &[Ent<'_>], compression: Compression) -> Layer {
    layer_of_tar(tar_of(entries), compression)
}

/// A layer blob of the tar stream `raw`, compressed as `compression`.
pub(crate) fn layer_of_tar(raw: Vec<u8>, compression: Compression) -> Layer {
    let tmp = tempfile::tempdir().unwrap();
    let diff_id = sha(&raw);
    let data = match compression {
        Compression::None => raw,
        Compression::Gzip => gzip(&raw),
        Compression::Zstd => zstd::encode_all(&raw[..], 3).unwrap(),
    };
    let blob = tmp.path().join("blob");
    fs::write(&blob, &data).unwrap();
    Layer {
        layers: tmp.path().join("l"),
        blob,
        digest: sha(&data),
        diff_id,
        _tmp: tmp,
    }
}

pub(crate) fn unpack(l: &Layer, c: Compression) -> Result<PathBuf, ImageError> {
    ensure_unpacked(&l.layers, &l.blob, &l.digest, c, &l.diff_id)
}

/// Only lock files may remain in the layers directory after a refused layer.
pub(crate) fn assert_nothing_left(l: &Layer) {
    let left: Vec<String> = fs::read_dir(&l.layers)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn unpacks_files_dirs_links_devices_and_metadata() {
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let l = layer(
            &[
                dir("./"),
                dir("bin/"),
                file("bin/busybox", b"#!binary", 0o4755),
                link("bin/sh", tar::EntryType::Symlink, "busybox"),
                link("bin/hard", tar::EntryType::Link, "bin/busybox"),
                file("etc/deep/passwd", b"root:x:0:0", 0o644),
                Ent {
                    mode: 0o1777,
                    ..dir("tmp/")
                },
                Ent {
                    mode: 0o644,
                    ..link("dev/null", tar::EntryType::Char, "")
                },
                Ent {
                    mode: 0o600,
                    ..link("run/fifo", tar::EntryType::Fifo, "")
                },
            ],
            c,
        );
        let root = unpack(&l, c).unwrap();
        assert_eq!(root, l.layers.join(l.diff_id.trim_start_matches("sha256:")));
        let bb = fs::symlink_metadata(root.join("bin/busybox")).unwrap();
        assert_eq!(fs::read(root.join("bin/busybox")).unwrap(), b"#!binary");
        assert_eq!(bb.mode() & 0o7777, 0o4755);
        assert_eq!(bb.mtime(), 1_000_000);
        assert_eq!(
            fs::read_link(root.join("bin/sh")).unwrap(),
            Path::new("busybox")
        );
        assert_eq!(fs::metadata(root.join("bin/hard")).unwrap().ino(), bb.ino());
        assert_eq!(
            fs::read(root.join("etc/deep/passwd")).unwrap(),
            b"root:x:0:0"
        );
        let t = fs::metadata(root.join("tmp")).unwrap();
        assert_eq!(t.mode() & 0o7777, 0o1777);
        assert_eq!(t.mtime(), 1_000_000);
        assert!(fs::metadata(root.join("run/fifo"))
            .unwrap()
            .file_type()
            .is_fifo());
        if is_root() {
            assert_eq!((bb.uid(), bb.gid()), (1000, 1001));
            let null = fs::metadata(root.join("dev/null")).unwrap();
            assert!(null.file_type().is_char_device());
            assert_eq!(null.rdev(), libc::makedev(1, 3));
        }
        // A second call finds the layer in place.
        assert_eq!(unpack(&l, c).unwrap(), root);
    }
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    if !is_root() {
        return; // mknod and trusted.* xattrs need root
    }
    let l = layer(
        &[
            file(".wh.gone", b"", 0o644),
            dir("d/"),
            file("d/.wh..wh..opq", b"", 0o644),
            file("d/new", b"x", 0o644),
        ],
        Compression::None,
    );
    let root = unpack(&l, Compression::None).unwrap();
    let w = fs::symlink_metadata(root.join("gone")).unwrap();
    assert!(w.file_type().is_char_device());
    assert_eq!(w.rdev(), 0);
    assert!(!root.join(".wh.gone").exists());
    assert!(!root.join("d/.wh..wh..opq").exists());
    let mut buf = [0u8; 4];
    let c = cpath(&root.join("d")).unwrap();
    let n = CString::new(OVERLAY_OPAQUE_XATTR).unwrap();
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let len =
        unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!(len, 1);
    assert_eq!(buf[0], b'y');
}

#[test]
fn hostile_entries_are_refused_and_leave_nothing() {
    let outside = tempfile::tempdir().unwrap();
    let out = outside.path().to_str().unwrap().to_string();
    fs::write(outside.path().join("secret"), b"s").unwrap();
    let cases: Vec<(Vec<Ent<'_>>, &str)> = vec![
        (vec![file("../evil", b"x", 0o644)], "../evil"),
        (vec![file("a/../../evil", b"x", 0o644)], "a/../../evil"),
        (vec![file("/abs", b"x", 0o644)], "/abs"),
        (
            vec![
                link("a", tar::EntryType::Symlink, &out),
                file("a/passwd", b"x", 0o644),
            ],
            "a/passwd",
        ),
        (
            vec![link("a", tar::EntryType::Symlink, &out), dir("a/sub/")],
            "a/sub/",
        ),
        (vec![file(".wh...", b"", 0o644)], ".wh..."),
        (vec![dir("d/"), file("d/.wh.", b"", 0o644)], "d/.wh."),
        (vec![link("h", tar::EntryType::Link, "/etc/passwd")], "h"),
        (vec![link("h", tar::EntryType::Link, "../secret")], "h"),
        (
            vec![
                link("s", tar::EntryType::Symlink, &out),
                link("h", tar::EntryType::Link, "s/secret"),
            ],
            "h",
        ),
    ];
    for (entries, bad) in cases {
        let l = layer(&entries, Compression::None);
        let err = unpack(&l, Compression::None).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, ImageError::UnsafeEntry { .. }),
            "{bad}: {msg}"
        );
        assert!(msg.contains(&l.digest) && msg.contains(bad), "{msg}");
        assert_nothing_left(&l);
        assert!(!outside.path().join("passwd").exists());
        assert!(!outside.path().join("sub").exists());
        assert!(!Path::new("/evil").exists() && !Path::new("/abs").exists());
    }
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 1);
}

#[test]
fn a_directory_replaced_by_a_symlink_does_not_redirect_its_chmod() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("v");
    fs::create_dir(&victim).unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o700)).unwrap();
    let target = victim.to_str().unwrap().to_string();
    let l = layer(
        &[
            Ent {
                mode: 0o777,
                ..dir("a/")
            },
            Ent {
                mode: 0o777,
                ..dir("a/b/")
            },
            link(
                "a",
                tar::EntryType::Symlink,
                outside.path().to_str().unwrap(),
            ),
            Ent {
                mode: 0o777,
                ..dir("d/")
            },
            link("d", tar::EntryType::Symlink, &target),
        ],
        Compression::None,
    );
    let root = unpack(&l, Compression::None).unwrap();
    assert!(fs::symlink_metadata(root.join("d"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::metadata(&victim).unwrap().mode() & 0o7777, 0o700);
    assert!(!outside.path().join("b").exists());
}

#[test]
fn diff_id_mismatch_is_refused_and_leaves_nothing() {
    let mut l = layer(&[file("f", b"x", 0o644)], Compression::Gzip);
    l.diff_id = sha(b"something else");
    let err = unpack(&l, Compression::Gzip).unwrap_err();
    assert!(matches!(err, ImageError::DiffIdMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&l.digest));
    assert_nothing_left(&l);
}

#[test]
fn concurrent_unpackers_share_one_directory() {
    let l = layer(&[file("f", b"x", 0o644)], Compression::None);
    let dirs: Vec<PathBuf> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| unpack(&l, Compression::None)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
    });
    assert!(dirs.iter().all(|d| d == &dirs[0]));
    assert_eq!(fs::read(dirs[0].join("f")).unwrap(), b"x");
}

#[test]
fn clean_path_rules() {
    assert_eq!(clean_path(b"./a/./b").unwrap(), Some(PathBuf::from("a/b")));
    assert_eq!(clean_path(b"./").unwrap(), None);
    assert!(clean_path(b"a/../b").is_err());
    assert!(clean_path(b"/a").is_err());
}

pub(crate) fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let c = cpath(path).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let len =
        unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(len).ok().map(|l| buf[..l].to_vec())
}

/// One PAX record: "<len> <key>=<value>\n", where len counts itself.
pub(crate) fn pax_record(key: &str, value: &str) -> String {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while format!("{len}{body}").len() != len {
        len += 1;
    }
    format!("{len}{body}")
}

#[test]
fn pax_xattrs_are_applied_but_overlay_ones_are_not() {
    let pax = pax_record("SCHILY.xattr.user.peapod", "v")
        + &pax_record("SCHILY.xattr.trusted.overlay.redirect", "/etc");
    let raw = tar_of(&[
        Ent {
            path: "PaxHeaders/f",
            kind: tar::EntryType::XHeader,
            data: pax.as_bytes(),
            link: None,
            mode: 0o644,
        },
        file("f", b"x", 0o644),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let blob = tmp.path().join("blob");
    fs::write(&blob, &raw).unwrap();
    let layers = tmp.path().join("l");
    let root = ensure_unpacked(&layers, &blob, &sha(&raw), Compression::None, &sha(&raw)).unwrap();
    assert_eq!(fs::read(root.join("f")).unwrap(), b"x");
    assert_eq!(
        get_xattr(&root.join("f"), "user.peapod").as_deref(),
        Some(&b"v"[..])
    );
    assert_eq!(get_xattr(&root.join("f"), "trusted.overlay.redirect"), None);
}
