//! Layer unpacking (`image::unpack::unpack_layer_from`, what pull and load run on every layer)
//! on hostile tar streams. After each input: no panic, and nothing written outside the layer
//! directory: a canary directory beside it (and a fixed one that seeds aim absolute symlinks
//! at) must hold exactly what it held. Each run's layer directory is removed afterwards.
//!
//! The first byte picks the framing: 0 a plain tar, 1 the rest gzip-compressed by this
//! harness (so the fuzzer mutates the tar inside), 2 the same with zstd, 3 and 4 the rest taken
//! as a gzip or zstd stream as is (hostile compressed data). Inputs that would decompress past
//! [`MAX_UNPACKED`] are skipped: bombs are bounded by disk space, not by peapod (see
//! src/image/unpack.rs), and each run's temp dir stays small.
#![no_main]

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use peapod::image::{unpack_layer_from, Compression};
use peapod_fuzz::{scratch_dir, sha256_digest as sha};

const MAX_UNPACKED: u64 = 8 << 20;
/// Fixed, so that seed layers can hold symlinks to it and the fuzzer can keep them.
const FIXED_CANARY: &str = "/tmp/peapod-fuzz-canary";
const CANARY_FILE: &str = "keep";
const CANARY_DATA: &[u8] = b"canary";

struct Dirs {
    work: PathBuf,
    canary: PathBuf,
}

/// What a write, chmod, chown or utimes through an escaping path would change.
fn fingerprint(dir: &Path) -> [(u32, u32, u32, i64); 2] {
    use std::os::unix::fs::MetadataExt;
    let f = |p: &Path| {
        let m = fs::symlink_metadata(p).expect("canary metadata");
        (m.mode(), m.uid(), m.gid(), m.mtime())
    };
    let (d, k) = (f(dir), f(&dir.join(CANARY_FILE)));
    // The directory's mtime changes with any entry made and removed in it; its listing is
    // checked instead.
    [(d.0, d.1, d.2, 0), k]
}

static FINGERPRINTS: OnceLock<[[(u32, u32, u32, i64); 2]; 2]> = OnceLock::new();

fn dirs() -> &'static Dirs {
    static DIRS: OnceLock<Dirs> = OnceLock::new();
    DIRS.get_or_init(|| {
        let work = scratch_dir().join(format!("unpack-{}", std::process::id()));
        let canary = work.join("canary");
        for c in [&canary, &PathBuf::from(FIXED_CANARY)] {
            fs::create_dir_all(c).expect("canary dir");
            fs::write(c.join(CANARY_FILE), CANARY_DATA).expect("canary file");
        }
        let _ = FINGERPRINTS.set([fingerprint(&canary), fingerprint(Path::new(FIXED_CANARY))]);
        Dirs { work, canary }
    })
}

fn assert_canary_intact(dir: &Path, expected: &[(u32, u32, u32, i64); 2]) {
    let names: Vec<_> = fs::read_dir(dir)
        .expect("canary dir readable")
        .map(|e| e.expect("canary entry").file_name())
        .collect();
    assert_eq!(names, [CANARY_FILE], "something was written into {dir:?}");
    let keep = dir.join(CANARY_FILE);
    let meta = fs::symlink_metadata(&keep).expect("canary file");
    assert!(meta.is_file(), "{keep:?} was replaced");
    assert_eq!(fs::read(&keep).expect("canary data"), CANARY_DATA);
    assert_eq!(&fingerprint(dir), expected, "{dir:?}: metadata changed");
}

/// The decompressed size of `data`, reading at most `MAX_UNPACKED + 1` bytes of it.
fn unpacked_size(data: &[u8], compression: Compression) -> u64 {
    let reader: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(data),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(data)),
        Compression::Zstd => match zstd::stream::read::Decoder::new(data) {
            Ok(d) => Box::new(d),
            Err(_) => return 0,
        },
    };
    std::io::copy(&mut reader.take(MAX_UNPACKED + 1), &mut std::io::sink()).unwrap_or(0)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (blob, compression, diff_id) = match mode % 5 {
        0 => (rest.to_vec(), Compression::None, sha(rest)),
        1 => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(rest).expect("gzip to memory");
            (
                e.finish().expect("gzip to memory"),
                Compression::Gzip,
                sha(rest),
            )
        }
        2 => {
            let z = zstd::encode_all(rest, 1).expect("zstd to memory");
            (z, Compression::Zstd, sha(rest))
        }
        m => {
            let c = if m == 3 {
                Compression::Gzip
            } else {
                Compression::Zstd
            };
            if unpacked_size(rest, c) > MAX_UNPACKED {
                return;
            }
            // The diff_id cannot match: the layer is unpacked all the same, then refused.
            (rest.to_vec(), c, sha(b""))
        }
    };
    let d = dirs();
    let root = d.work.join("layer");
    let _ = fs::remove_dir_all(&root);
    fs::create_dir(&root).expect("layer dir");
    let digest = sha(&blob);
    let result = unpack_layer_from(&root, &blob[..], &digest, compression, &diff_id);
    if let Err(e) = &result {
        let _ = e.to_string();
    }
    let [local, fixed] = FINGERPRINTS.get().expect("set with the dirs");
    assert_canary_intact(&d.canary, local);
    assert_canary_intact(Path::new(FIXED_CANARY), fixed);
    let names: Vec<_> = fs::read_dir(&d.work)
        .expect("work dir")
        .map(|e| e.expect("work entry").file_name())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "something was written beside the layer: {names:?}"
    );
    // Directories unpacked read-only must not stop the cleanup.
    make_writable(&root);
    fs::remove_dir_all(&root).expect("removing the layer dir");
});

fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                make_writable(&e.path());
            }
        }
    }
}
