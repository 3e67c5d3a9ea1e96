//! `get -w`: the listing once, then a line each time an object's row changes, until the
//! process is interrupted [kubectl pkg/cmd/get/get.go watch]. Changes are pushed, not polled:
//! inotify on the directories the records live in (`<lib>/pods`, each pod's directory,
//! `<lib>/objects/<resource>/<namespace>`) and a pidfd per supervisor (a killed supervisor
//! turns its pod `Unknown` without touching a file). Every wake-up lists the kind again and
//! compares it with the last listing: cheap at the pod counts one host runs, and it sees pods
//! created and deleted under it.
//!
//! As kubectl prints watch events: a table's header once, then rows aligned with everything
//! printed before (its tabwriter remembers widths); a deleted object's last row; with
//! `--output-watch-events` an EVENT column (ADDED, MODIFIED, DELETED); `-o json|yaml|name`
//! one object per event (`---` between YAML documents). A table row is printed when it
//! changes, AGE and the `(2s ago)` of RESTARTS not counting; other formats print when the
//! object changes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use serde_json::Value;

use super::get::{select, Listed};
use super::kinds::Kind;
use super::output::{to_json, Printer};
use super::selector::Selectors;
use super::table::{header, row, TableOptions, WatchTable};
use crate::pod::record::{load_all, ProcessRef};
use crate::store::Paths;

/// A watch event, as the API server names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Modified,
    Deleted,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "ADDED",
            Change::Modified => "MODIFIED",
            Change::Deleted => "DELETED",
        }
    }
}

/// What `get -w` was asked.
pub struct WatchRequest<'a> {
    pub kind: Kind,
    /// None for all namespaces.
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
    pub selectors: &'a Selectors,
    pub printer: &'a Printer,
    pub table: TableOptions,
    /// `--watch-only`: no initial listing.
    pub watch_only: bool,
    /// `--output-watch-events`.
    pub events: bool,
}

/// One listed object and what, when it changes, makes a new line.
#[derive(Debug, Clone)]
pub struct Seen {
    pub key: String,
    pub listed: Listed,
}

/// The objects of one listing by identity (namespace, name, uid: a pod deleted and made again
/// under its name is a deletion and an addition).
pub type Snapshot = BTreeMap<String, Seen>;

fn identity(l: &Listed) -> String {
    let uid = l.object["metadata"]["uid"].as_str().unwrap_or_default();
    format!("{}/{}/{uid}", l.namespace, l.name)
}

/// Cells that change with the clock alone, left out of the comparison.
const AGE: &str = "AGE";
const RESTARTS: &str = "RESTARTS";

/// The comparison key of a row: the table row without AGE and with only the count of RESTARTS
/// (`1 (5s ago)` is `1`); the object itself for other printers and for events, whose rows are
/// all times.
pub fn row_key(l: &Listed, table: Option<&TableOptions>) -> String {
    let Some(options) = table.filter(|_| l.kind != Kind::Event) else {
        return l.object.to_string();
    };
    let names = header(l.kind, options);
    row(l, options, false)
        .into_iter()
        .zip(names)
        .filter(|(_, name)| name != AGE)
        .map(|(cell, name)| match cell.split_once(" (") {
            Some((count, _)) if name == RESTARTS => count.to_string(),
            _ => cell,
        })
        .collect::<Vec<_>>()
        .join("\t")
}

/// The changes from `before` to `after`, in identity order.
pub fn diff(before: &Snapshot, after: &Snapshot) -> Vec<(Change, Listed)> {
    let mut changes = Vec::new();
    for (id, now) in after {
        match before.get(id) {
            None => changes.push((Change::Added, now.listed.clone())),
            Some(was) if was.key != now.key => changes.push((Change::Modified, now.listed.clone())),
            Some(_) => {}
        }
    }
    for (id, was) in before {
        if !after.contains_key(id) {
            changes.push((Change::Deleted, was.listed.clone()));
        }
    }
    changes
}

/// The objects the request selects, now.
fn snapshot(paths: &Paths, req: &WatchRequest) -> Result<std::result::Result<Snapshot, String>> {
    let listed = match select(paths, req.kind, req.namespace, req.selectors)? {
        Ok(l) => l,
        Err(line) => return Ok(Err(line)),
    };
    let table = matches!(req.printer, Printer::Table { .. }).then_some(&req.table);
    Ok(Ok(listed
        .into_iter()
        .filter(|l| req.name.is_none_or(|n| l.name == n))
        .map(|l| {
            (
                identity(&l),
                Seen {
                    key: row_key(&l, table),
                    listed: l,
                },
            )
        })
        .collect()))
}

/// Prints watch events in the request's format.
struct EventPrinter<'a> {
    req: &'a WatchRequest<'a>,
    table: WatchTable,
    printed: usize,
}

impl<'a> EventPrinter<'a> {
    fn new(req: &'a WatchRequest<'a>) -> Self {
        EventPrinter {
            req,
            table: WatchTable::new(req.kind, req.table.clone(), req.events),
            printed: 0,
        }
    }

    fn text(&mut self, changes: &[(Change, Listed)]) -> Result<String> {
        if let Printer::Table { .. } = self.req.printer {
            let rows: Vec<(&str, &Listed)> = changes.iter().map(|(c, l)| (c.as_str(), l)).collect();
            return Ok(self.table.lines(&rows));
        }
        let mut out = String::new();
        for (change, listed) in changes {
            let object = if self.req.events {
                serde_json::json!({"type": change.as_str(), "object": listed.object})
            } else {
                listed.object.clone()
            };
            out.push_str(&self.one(object)?);
        }
        Ok(out)
    }

    /// One object as kubectl's printers print each watch event.
    fn one(&mut self, object: Value) -> Result<String> {
        let first = self.printed == 0;
        self.printed += 1;
        Ok(match self.req.printer {
            Printer::Json => to_json(&object)?,
            Printer::Yaml if !first => format!(
                "---\n{}",
                self.req.printer.render(vec![object], true, false)?
            ),
            Printer::CustomColumns(_) => {
                self.req
                    .printer
                    .render(vec![object], true, self.req.table.no_headers || !first)?
            }
            Printer::Name => {
                let inner = if self.req.events {
                    &object["object"]
                } else {
                    &object
                };
                format!(
                    "{}/{}\n",
                    inner["kind"].as_str().unwrap_or_default().to_lowercase(),
                    inner["metadata"]["name"].as_str().unwrap_or_default()
                )
            }
            printer => printer.render(vec![object], true, false)?,
        })
    }
}

/// Writes and flushes; false when stdout is gone (a closed pipe ends the watch quietly).
fn emit(text: &str) -> bool {
    if text.is_empty() {
        return true;
    }
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).is_ok() && out.flush().is_ok()
}

/// `get -w`: prints until interrupted; returns the exit code for a request that cannot start.
pub fn run(paths: &Paths, req: &WatchRequest) -> Result<i32> {
    let mut watcher = Watcher::new(paths, req.kind)?;
    // Watches (and pidfds) first, then each listing: nothing that happens in between is
    // missed.
    watcher.arm()?;
    watcher.supervise(paths, req.kind);
    let mut seen = match snapshot(paths, req)? {
        Ok(s) => s,
        Err(line) => {
            eprintln!("{line}");
            return Ok(1);
        }
    };
    if let Some(name) = req.name.filter(|_| seen.is_empty()) {
        eprintln!("{}", req.kind.not_found(name));
        return Ok(1);
    }
    let mut printer = EventPrinter::new(req);
    if !req.watch_only {
        let initial: Vec<(Change, Listed)> = seen
            .values()
            .map(|s| (Change::Added, s.listed.clone()))
            .collect();
        if !emit(&printer.text(&initial)?) {
            return Ok(0);
        }
    }
    loop {
        // New directories (a pod made since the last listing) are listed again before
        // waiting: their first files may have come before their watch.
        if !watcher.arm()? {
            watcher.wait()?;
        }
        watcher.supervise(paths, req.kind);
        let now = match snapshot(paths, req) {
            Ok(Ok(s)) => s,
            Ok(Err(line)) => {
                eprintln!("{line}");
                return Ok(1);
            }
            // A record caught half-written by a writer that does not rename into place:
            // said once, and the next change lists again.
            Err(e) => {
                eprintln!("error: {e:#}");
                continue;
            }
        };
        let changes = diff(&seen, &now);
        seen = now;
        if !emit(&printer.text(&changes)?) {
            return Ok(0);
        }
    }
}

/// The mask of every watched directory: anything made, renamed into or out of, or deleted.
fn dir_mask() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_ONLYDIR
}

/// inotify on the record directories, and pidfds on the pods' supervisors.
struct Watcher {
    inotify: Inotify,
    /// Directories to watch, with how many levels of subdirectories below them.
    roots: Vec<(PathBuf, usize)>,
    watched: HashMap<WatchDescriptor, PathBuf>,
    paths_watched: HashSet<PathBuf>,
    /// Supervisor pid -> its pidfd, readable once the supervisor has exited.
    supervisors: HashMap<i32, OwnedFd>,
    /// Supervisors seen to exit: not watched again.
    exited: HashSet<i32>,
}

impl Watcher {
    fn new(paths: &Paths, kind: Kind) -> Result<Watcher> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .context("inotify_init")?;
        let mut roots = Vec::new();
        if matches!(kind, Kind::Pod | Kind::Event) {
            roots.push((paths.pods(), 1));
        }
        if kind != Kind::Pod {
            roots.push((paths.objects(), 2));
        }
        Ok(Watcher {
            inotify,
            roots,
            watched: HashMap::new(),
            paths_watched: HashSet::new(),
            supervisors: HashMap::new(),
            exited: HashSet::new(),
        })
    }

    /// Watches every root and its subdirectories, or the nearest existing parent of a root
    /// not made yet. True when a directory was added.
    fn arm(&mut self) -> Result<bool> {
        let mut dirs = Vec::new();
        for (root, depth) in &self.roots {
            match nearest_existing(root) {
                Some(dir) if dir == *root => collect_dirs(root, *depth, &mut dirs),
                Some(parent) => dirs.push(parent),
                None => {}
            }
        }
        let mut added = false;
        for dir in dirs {
            if self.paths_watched.contains(&dir) {
                continue;
            }
            match self.inotify.add_watch(&dir, dir_mask()) {
                Ok(wd) => {
                    self.watched.insert(wd, dir.clone());
                    self.paths_watched.insert(dir);
                    added = true;
                }
                // Gone between the listing and now: its parent's event covers it.
                Err(nix::errno::Errno::ENOENT) => {}
                Err(e) => {
                    return Err(anyhow::Error::new(e).context(format!("watch {}", dir.display())))
                }
            }
        }
        Ok(added)
    }

    /// A pidfd for every live supervisor of a pod on record (pods and their events only).
    fn supervise(&mut self, paths: &Paths, kind: Kind) {
        if kind != Kind::Pod {
            return;
        }
        let Ok(records) = load_all(paths) else {
            return;
        };
        let live: Vec<ProcessRef> = records
            .iter()
            .filter_map(|r| r.state.as_ref()?.supervisor.clone())
            .filter(|p| !self.exited.contains(&p.pid) && p.is_alive())
            .collect();
        for p in live {
            if let std::collections::hash_map::Entry::Vacant(slot) = self.supervisors.entry(p.pid) {
                if let Some(fd) = crate::procfs::pidfd_open(p.pid) {
                    slot.insert(fd);
                }
            }
        }
    }

    /// Blocks until a watched directory changes or a supervisor exits, then takes every event
    /// that is waiting.
    fn wait(&mut self) -> Result<()> {
        let pids: Vec<i32> = self.supervisors.keys().copied().collect();
        let ready = {
            let mut fds = vec![PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN)];
            fds.extend(
                pids.iter()
                    .filter_map(|p| self.supervisors.get(p))
                    .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN)),
            );
            loop {
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) => break,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(anyhow::Error::new(e).context("poll")),
                }
            }
            fds.iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect::<Vec<_>>()
        };
        for (i, pid) in pids.iter().enumerate() {
            if ready.get(i + 1).copied().unwrap_or(false) {
                self.supervisors.remove(pid);
                self.exited.insert(*pid);
            }
        }
        loop {
            match self.inotify.read_events() {
                Ok(events) if !events.is_empty() => {
                    for e in events {
                        if e.mask.contains(AddWatchFlags::IN_IGNORED) {
                            if let Some(dir) = self.watched.remove(&e.wd) {
                                self.paths_watched.remove(&dir);
                            }
                        }
                    }
                }
                Ok(_) | Err(nix::errno::Errno::EAGAIN) => return Ok(()),
                Err(e) => return Err(anyhow::Error::new(e).context("read inotify events")),
            }
        }
    }
}

/// `path` if it exists, else its nearest existing ancestor.
fn nearest_existing(path: &Path) -> Option<PathBuf> {
    path.ancestors().find(|p| p.is_dir()).map(Path::to_path_buf)
}

/// `dir` and its subdirectories down to `depth` levels.
fn collect_dirs(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_dirs(&entry.path(), depth - 1, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, uid: &str, cells: &[&str]) -> Listed {
        Listed {
            kind: Kind::Pod,
            namespace: "default".into(),
            name: name.into(),
            cells: cells.iter().map(|c| c.to_string()).collect(),
            wide: vec![
                "10.88.0.2".into(),
                "n".into(),
                "<none>".into(),
                "<none>".into(),
            ],
            object: serde_json::json!({"metadata": {"uid": uid}}),
        }
    }

    fn snap(pods: &[Listed]) -> Snapshot {
        let table = TableOptions::default();
        pods.iter()
            .map(|l| {
                (
                    identity(l),
                    Seen {
                        key: row_key(l, Some(&table)),
                        listed: l.clone(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn age_and_restart_times_do_not_count() {
        let a = snap(&[pod("web", "u1", &["1/1", "Running", "1 (5s ago)", "10s"])]);
        let b = snap(&[pod("web", "u1", &["1/1", "Running", "1 (9s ago)", "14s"])]);
        assert!(diff(&a, &b).is_empty());
        let c = snap(&[pod("web", "u1", &["0/1", "Error", "1 (9s ago)", "14s"])]);
        let changes = diff(&b, &c);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].0, Change::Modified);
        assert_eq!(changes[0].1.cells[1], "Error");
        let d = snap(&[pod("web", "u1", &["1/1", "Running", "2 (0s ago)", "15s"])]);
        assert_eq!(diff(&c, &d)[0].0, Change::Modified);
    }

    #[test]
    fn made_again_under_its_name_is_deleted_and_added() {
        let a = snap(&[pod("web", "u1", &["1/1", "Running", "0", "1s"])]);
        let b = snap(&[pod("web", "u2", &["0/1", "Pending", "0", "0s"])]);
        let changes: Vec<(Change, String)> = diff(&a, &b)
            .into_iter()
            .map(|(c, l)| (c, l.cells[1].clone()))
            .collect();
        assert_eq!(
            changes,
            [
                (Change::Added, "Pending".to_string()),
                (Change::Deleted, "Running".to_string())
            ]
        );
    }

    #[test]
    fn other_printers_compare_the_object() {
        let mut l = pod("web", "u1", &["1/1", "Running", "0", "1s"]);
        let k1 = row_key(&l, None);
        l.object["status"] = serde_json::json!({"phase": "Running"});
        assert_ne!(k1, row_key(&l, None));
    }
}
