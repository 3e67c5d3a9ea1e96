//! The real binary with throwaway state: every state directory points into a temporary
//! directory, so the object verbs run on the host without root (tests/cli_*.rs).

use std::process::Command;

pub struct Peapod {
    dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Peapod {
    pub fn new() -> Peapod {
        Peapod {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    pub fn write(&self, name: &str, text: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let root = self.dir.path();
        let out = Command::new(env!("CARGO_BIN_EXE_peapod"))
            .args(args)
            .env("PEAPOD_LIB_DIR", root.join("lib"))
            .env("PEAPOD_RUN_DIR", root.join("run"))
            .env("PEAPOD_LOG_DIR", root.join("log"))
            .output()
            .expect("run peapod");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs and expects success with exactly `stdout`.
    pub fn ok(&self, args: &[&str], stdout: &str) {
        let r = self.run(args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert_eq!(r.stdout, stdout, "{args:?}");
    }

    /// Runs a `get` that finds nothing in the default namespace.
    pub fn none_found(&self, args: &[&str]) {
        let r = self.run(args);
        assert_eq!(r.code, 0, "{args:?}");
        assert_eq!(
            r.stderr, "No resources found in default namespace.\n",
            "{args:?}"
        );
    }

    /// Runs and expects failure with exactly `stderr`.
    pub fn fails(&self, args: &[&str], stderr: &str) {
        let r = self.run(args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stdout);
        assert_eq!(r.stderr, stderr, "{args:?}");
    }
}

/// AGE is `0s` or a few seconds: replace it so tables compare exactly.
pub fn ages(text: &str) -> String {
    text.split('\n')
        .map(|line| {
            let trimmed = line.trim_end();
            match trimmed.rsplit_once(' ') {
                Some((head, last))
                    if last.ends_with('s') && last[..last.len() - 1].parse::<u32>().is_ok() =>
                {
                    format!("{head} AGE")
                }
                _ => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
