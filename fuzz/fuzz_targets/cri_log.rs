//! CRI log files as `peapod logs` reads them: every line through `logs::parse_line`, the whole
//! file through `read_log` (with `--tail`), and the follower (`logs -f`, [`LogTail`]) polling
//! the file while it grows in two writes. What the follower returns must be a prefix of what
//! `read_log` returns for the same complete lines (it holds back a line whose `P` fragments
//! have not ended; `read_log` gives those at the end of the file).
//!
//! Input: two bytes choose where the file is cut between the two writes and the `--tail`
//! value; the rest is the file.
#![no_main]

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use peapod::logs::{parse_line, read_log, LogTail, ReadOptions};
use peapod_fuzz::scratch_dir;

fn log_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = scratch_dir().join(format!("log-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("log dir");
        dir.join("0.log")
    })
}

fuzz_target!(|data: &[u8]| {
    let [cut, tail, file @ ..] = data else {
        return;
    };
    for line in String::from_utf8_lossy(file).lines() {
        if let Err(e) = parse_line(line) {
            let _ = e.to_string();
        }
    }
    let path = log_path();
    let cut = (usize::from(*cut) * file.len()) / 255;
    fs::write(path, &file[..cut]).expect("writing the log");
    let mut follower = LogTail::new(path, 0);
    let mut followed = follower.poll().expect("polling the log");
    OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(&file[cut..]))
        .expect("appending to the log");
    followed.extend(follower.poll().expect("polling the log"));

    let tail = (*tail != u8::MAX).then_some(usize::from(*tail));
    let tailed = read_log(path, &ReadOptions { tail }).expect("reading the log");
    assert!(tailed.len() <= tail.unwrap_or(usize::MAX));
    for e in &tailed {
        let _ = e.render(true);
    }
    // The complete lines only: what a follower can have consumed.
    let complete = file.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    fs::write(path, &file[..complete]).expect("writing the log");
    let whole = read_log(path, &ReadOptions::default()).expect("reading the log");
    assert!(
        whole.starts_with(&followed),
        "logs -f gave {followed:?}, logs gave {whole:?}"
    );
});
