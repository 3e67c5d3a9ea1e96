//! kubectl's human-readable tables: each kind's columns, the decorations `get` adds (NAMESPACE,
//! `kind/name`, label columns, LABELS, the EVENT column of `--output-watch-events`), and the
//! alignment [cli-runtime printers/tableprinter.go, kubectl get.go]. A watch keeps one
//! [`WatchTable`]: kubectl's tabwriter remembers column widths across flushes
//! (liggitt/tabwriter `RememberWidths`), so later lines align with the first table and a wider
//! cell widens its column from then on.

use std::collections::BTreeMap;

use super::format::tabwrite;
use super::get::Listed;
use super::kinds::Kind;

/// kubectl's tabwriter: cells at least 6 wide, 3 spaces of padding (printers.GetNewTabWriter).
pub const MIN_WIDTH: usize = 6;
pub const PADDING: usize = 3;

/// The columns of a kind's table after NAME, and those `-o wide` adds [printers.go column
/// definitions; Priority 1 columns are the wide ones]. Events have no NAME column: their
/// `cells` are the whole row and their `wide` the whole wide row (printers.go printEvent).
pub fn columns(kind: Kind) -> (&'static [&'static str], &'static [&'static str]) {
    match kind {
        Kind::Pod => (
            &["READY", "STATUS", "RESTARTS", "AGE"],
            &["IP", "NODE", "NOMINATED NODE", "READINESS GATES"],
        ),
        Kind::ConfigMap => (&["DATA", "AGE"], &[]),
        Kind::Secret => (&["TYPE", "DATA", "AGE"], &[]),
        Kind::PersistentVolumeClaim => (
            &[
                "STATUS",
                "VOLUME",
                "CAPACITY",
                "ACCESS MODES",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "AGE",
            ],
            &["VOLUMEMODE"],
        ),
        Kind::PersistentVolume => (
            &[
                "CAPACITY",
                "ACCESS MODES",
                "RECLAIM POLICY",
                "STATUS",
                "CLAIM",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "REASON",
                "AGE",
            ],
            &["VOLUMEMODE"],
        ),
        Kind::Event => (
            &["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
            &[
                "LAST SEEN",
                "TYPE",
                "REASON",
                "OBJECT",
                "SUBOBJECT",
                "SOURCE",
                "MESSAGE",
                "FIRST SEEN",
                "COUNT",
                "NAME",
            ],
        ),
    }
}

/// What the tables show beyond the kind's columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableOptions {
    pub wide: bool,
    pub all_namespaces: bool,
    pub no_headers: bool,
    /// `-L KEY`: a column per label key, headed by its last path segment in capitals.
    pub label_columns: Vec<String>,
    /// `--show-labels`: a LABELS column, always the last.
    pub show_labels: bool,
}

/// labels.FormatLabels: `k=v` sorted by key, comma-joined, `<none>` when there are none.
fn format_labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "<none>".to_string();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The header of `kind`'s table under `options`.
pub fn header(kind: Kind, options: &TableOptions) -> Vec<String> {
    let (cols, wide_cols) = columns(kind);
    let mut header: Vec<String> = Vec::new();
    if options.all_namespaces && kind.namespaced() {
        header.push("NAMESPACE".into());
    }
    match kind {
        Kind::Event if options.wide => header.extend(wide_cols.iter().map(|c| c.to_string())),
        Kind::Event => header.extend(cols.iter().map(|c| c.to_string())),
        _ => {
            header.push("NAME".into());
            header.extend(
                cols.iter()
                    .chain(if options.wide { wide_cols } else { &[] })
                    .map(|c| c.to_string()),
            );
        }
    }
    header.extend(
        options
            .label_columns
            .iter()
            .map(|l| l.rsplit('/').next().unwrap_or_default().to_uppercase()),
    );
    if options.show_labels {
        header.push("LABELS".into());
    }
    header
}

/// One object's row; `with_kind` names it `kind/name` (several kinds in one listing).
pub fn row(l: &Listed, options: &TableOptions, with_kind: bool) -> Vec<String> {
    let mut row: Vec<String> = Vec::new();
    if options.all_namespaces && l.kind.namespaced() {
        row.push(l.namespace.clone());
    }
    match l.kind {
        Kind::Event if options.wide => row.extend(l.wide.iter().cloned()),
        Kind::Event => row.extend(l.cells.iter().cloned()),
        kind => {
            row.push(if with_kind {
                format!("{}/{}", kind.singular(), l.name)
            } else {
                l.name.clone()
            });
            row.extend(
                l.cells
                    .iter()
                    .chain(if options.wide { &l.wide[..] } else { &[] })
                    .cloned(),
            );
        }
    }
    let labels = super::selector::object_labels(&l.object);
    for key in &options.label_columns {
        row.push(labels.get(key).cloned().unwrap_or_default());
    }
    if options.show_labels {
        row.push(format_labels(&labels));
    }
    row
}

/// The tables of `listed` with the kind's columns (and the wide ones).
pub fn tables(listed: &[Listed], wide: bool, all_namespaces: bool) -> String {
    tables_with(
        listed,
        &TableOptions {
            wide,
            all_namespaces,
            ..Default::default()
        },
    )
}

/// The tables of `listed`: one per kind in order of appearance, each aligned on its own and
/// separated by a blank line (unless headers are off), as kubectl flushes its tabwriter when
/// the kind changes. With `all_namespaces`, namespaced kinds get a NAMESPACE column; with
/// several kinds, names read `kind/name`; label columns follow the kind's columns
/// [printers/tableprinter.go decorateTable, printRows].
pub fn tables_with(listed: &[Listed], options: &TableOptions) -> String {
    let mut kinds: Vec<Kind> = Vec::new();
    for l in listed {
        if !kinds.contains(&l.kind) {
            kinds.push(l.kind);
        }
    }
    let with_kind = kinds.len() > 1;
    let mut out = Vec::new();
    for kind in kinds {
        let mut lines = Vec::new();
        if !options.no_headers {
            lines.push(header(kind, options).join("\t"));
        }
        for l in listed.iter().filter(|l| l.kind == kind) {
            lines.push(row(l, options, with_kind).join("\t"));
        }
        if !lines.is_empty() {
            out.push(tabwrite(&lines.join("\n"), MIN_WIDTH, PADDING) + "\n");
        }
    }
    out.join(if options.no_headers { "" } else { "\n" })
}

/// kubectl's watch event names in the EVENT column, padded as its printer pads them
/// [tableprinter.go formattedEventType].
pub fn event_type_cell(event: &str) -> String {
    format!("{event:<8}")
}

/// The table of a watch: the header once (with the first row printed), then rows as they
/// come, aligned with everything printed before.
#[derive(Debug, Clone)]
pub struct WatchTable {
    kind: Kind,
    options: TableOptions,
    /// `--output-watch-events`: an EVENT column first.
    events: bool,
    header_printed: bool,
    widths: Vec<usize>,
}

impl WatchTable {
    pub fn new(kind: Kind, options: TableOptions, events: bool) -> WatchTable {
        WatchTable {
            kind,
            options,
            events,
            header_printed: false,
            widths: Vec::new(),
        }
    }

    /// The text for `rows` (each with its watch event type), header first if not yet printed.
    pub fn lines(&mut self, rows: &[(&str, &Listed)]) -> String {
        if rows.is_empty() {
            return String::new();
        }
        let mut lines: Vec<Vec<String>> = Vec::new();
        if !self.header_printed && !self.options.no_headers {
            let mut header = header(self.kind, &self.options);
            if self.events {
                header.insert(0, "EVENT".into());
            }
            lines.push(header);
        }
        self.header_printed = true;
        for (event, listed) in rows {
            let mut cells = row(listed, &self.options, false);
            if self.events {
                cells.insert(0, event_type_cell(event));
            }
            lines.push(cells);
        }
        remembering_tabwrite(&lines, &mut self.widths)
    }
}

/// Aligns `lines` (rows of cells; every cell but a row's last is padded) to the widest cell of
/// each column plus [`PADDING`], at least [`MIN_WIDTH`], and never narrower than `widths`
/// remembers from earlier calls; `widths` keeps the result.
pub fn remembering_tabwrite(lines: &[Vec<String>], widths: &mut Vec<usize>) -> String {
    for cells in lines {
        for (j, cell) in cells.iter().enumerate().take(cells.len().saturating_sub(1)) {
            let w = (cell.chars().count() + PADDING).max(MIN_WIDTH);
            if widths.len() <= j {
                widths.push(w);
            } else if widths[j] < w {
                widths[j] = w;
            }
        }
    }
    let mut out = String::new();
    for cells in lines {
        for (j, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if j + 1 < cells.len() {
                let pad = widths[j].saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_row(name: &str, cells: &[&str]) -> Listed {
        Listed {
            kind: Kind::Pod,
            namespace: "default".into(),
            name: name.into(),
            cells: cells.iter().map(|c| c.to_string()).collect(),
            wide: vec![],
            object: serde_json::json!({}),
        }
    }

    #[test]
    fn watch_lines_keep_the_first_tables_widths_and_grow() {
        let mut t = WatchTable::new(Kind::Pod, TableOptions::default(), false);
        let web = pod_row("web", &["1/1", "Running", "0", "5s"]);
        assert_eq!(
            t.lines(&[("ADDED", &web)]),
            "NAME   READY   STATUS    RESTARTS   AGE\nweb    1/1     Running   0          5s\n"
        );
        let err = pod_row("web", &["0/1", "Error", "0", "9s"]);
        assert_eq!(
            t.lines(&[("MODIFIED", &err)]),
            "web    0/1     Error     0          9s\n"
        );
        // A wider RESTARTS cell widens its column from then on, as kubectl's tabwriter does.
        let back = pod_row("web", &["1/1", "Running", "1 (2s ago)", "11s"]);
        assert_eq!(
            t.lines(&[("MODIFIED", &back)]),
            "web    1/1     Running   1 (2s ago)   11s\n"
        );
        assert_eq!(
            t.lines(&[("MODIFIED", &err)]),
            "web    0/1     Error     0            9s\n"
        );
    }

    #[test]
    fn watch_events_column_comes_first() {
        let mut t = WatchTable::new(Kind::Pod, TableOptions::default(), true);
        let web = pod_row("web", &["1/1", "Running", "0", "5s"]);
        assert_eq!(
            t.lines(&[("ADDED", &web)]),
            "EVENT      NAME   READY   STATUS    RESTARTS   AGE\nADDED      web    1/1     Running   0          5s\n"
        );
        assert_eq!(
            t.lines(&[("DELETED", &web)]),
            "DELETED    web    1/1     Running   0          5s\n"
        );
    }

    #[test]
    fn event_tables_have_no_name_column() {
        let ev = Listed {
            kind: Kind::Event,
            namespace: "default".into(),
            name: "web.17a".into(),
            cells: ["5s", "Normal", "Pulled", "pod/web", "done"]
                .map(String::from)
                .to_vec(),
            wide: vec![],
            object: serde_json::json!({}),
        };
        assert_eq!(
            tables(&[ev], false, true),
            "NAMESPACE   LAST SEEN   TYPE     REASON   OBJECT    MESSAGE\n\
             default     5s          Normal   Pulled   pod/web   done\n"
        );
    }
}
