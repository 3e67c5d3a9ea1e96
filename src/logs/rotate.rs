//! Log rotation as the kubelet's container log manager does it: the live file is renamed to
//! `<name>.<YYYYMMDD-HHMMSS>`, rotations older than the newest are gzipped, and the oldest are
//! removed so that `max_files` remain in all (the live file included).

use std::fs::{self, File};
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;

use super::LogError;

/// The kubelet's defaults: `containerLogMaxSize` 10Mi, `containerLogMaxFiles` 5.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
pub const DEFAULT_MAX_FILES: usize = 5;

const GZ_SUFFIX: &str = ".gz";

/// Renames `path` aside, compresses older rotations and prunes to `max_files` files. The caller
/// reopens `path`.
pub fn rotate_file(path: &Path, max_files: usize) -> Result<(), LogError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stamp = jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string();
    // Two rotations within one second get `-N` suffixes, numbered past every earlier one (a
    // pruned name is never reused, so the order stays the order of rotation).
    let same_second = rotated_files(dir, &name)?
        .into_iter()
        .filter(|(key, _)| key.0 == stamp)
        .map(|(key, _)| key.1 + 1)
        .max();
    let target = match same_second {
        None => dir.join(format!("{name}.{stamp}")),
        Some(n) => dir.join(format!("{name}.{stamp}-{n}")),
    };
    fs::rename(path, &target).map_err(|e| LogError::io(path, e))?;

    let mut rotated = rotated_files(dir, &name)?;
    // Newest first; the newest rotation stays plain (a reader may still hold it open).
    rotated.sort_by(|a, b| b.0.cmp(&a.0));
    for (_, p) in rotated.iter().skip(1) {
        if !p.to_string_lossy().ends_with(GZ_SUFFIX) {
            compress(p)?;
        }
    }
    let keep = max_files.saturating_sub(1);
    for (_, p) in rotated.iter().skip(keep) {
        let p = if p.exists() { p.clone() } else { gz_path(p) };
        fs::remove_file(&p).map_err(|e| LogError::io(&p, e))?;
    }
    Ok(())
}

fn gz_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_os_string();
    s.push(GZ_SUFFIX);
    PathBuf::from(s)
}

/// `((stamp, n), path)` of every rotation of `name` in `dir`; `n` is the `-N` suffix (0 if none).
type RotationKey = (String, u32);

fn rotated_files(dir: &Path, name: &str) -> Result<Vec<(RotationKey, PathBuf)>, LogError> {
    let prefix = format!("{name}.");
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| LogError::io(dir, e))? {
        let entry = entry.map_err(|e| LogError::io(dir, e))?;
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&prefix) else {
            continue;
        };
        let stamp = rest.strip_suffix(GZ_SUFFIX).unwrap_or(rest);
        let (base, n) = match stamp.split_once('-').and_then(|(_, r)| r.split_once('-')) {
            Some((_, n)) => match n.parse::<u32>() {
                Ok(n) => (&stamp[..stamp.len() - n.to_string().len() - 1], n),
                Err(_) => continue,
            },
            None => (stamp, 0),
        };
        if base.len() == 15 && base.as_bytes()[..8].iter().all(u8::is_ascii_digit) {
            out.push(((base.to_string(), n), entry.path()));
        }
    }
    Ok(out)
}

fn compress(p: &Path) -> Result<(), LogError> {
    let gz = gz_path(p);
    let tmp = PathBuf::from(format!("{}.tmp", gz.display()));
    let result = (|| {
        let mut input = BufReader::new(File::open(p)?);
        let mut enc = GzEncoder::new(BufWriter::new(File::create(&tmp)?), Compression::default());
        std::io::copy(&mut input, &mut enc)?;
        enc.finish()?
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
        fs::rename(&tmp, &gz)?;
        fs::remove_file(p)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        LogError::io(p, e)
    })
}

#[cfg(test)]
mod tests {
    use crate::logs::{CriLogWriter, Stream};
    use std::io::Read;

    #[test]
    fn rotation_gzips_older_files_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        let mut w = CriLogWriter::create(&p).unwrap();
        assert!(!w.rotate_if_needed(100, 5).unwrap());
        for i in 0..8 {
            w.write(
                Stream::Stdout,
                format!("{}\n", "z".repeat(100 + i)).as_bytes(),
            )
            .unwrap();
            assert!(w.rotate_if_needed(100, 5).unwrap());
        }
        w.write(Stream::Stdout, b"live\n").unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 5, "{names:?}");
        assert_eq!(
            names.iter().filter(|n| n.ends_with(".gz")).count(),
            3,
            "{names:?}"
        );
        assert!(names.contains(&"0.log".to_string()));
        // The survivors are the newest: the oldest gz holds line 4 (104 z's). Oldest in the
        // order of rotation, not of names: when a second ends between two rotations, the
        // plain stamp sorts after its `-N` successors ('-' < '.').
        let mut rotated = super::rotated_files(dir.path(), "0.log").unwrap();
        rotated.sort();
        let oldest = &rotated[0].1;
        assert!(oldest.to_string_lossy().ends_with(".gz"), "{names:?}");
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(oldest).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert!(
            text.contains(&format!(" F {}\n", "z".repeat(104))),
            "{names:?}"
        );
        let live = std::fs::read_to_string(&p).unwrap();
        assert!(live.ends_with(" F live\n"));
    }
}
