//! Text helpers shared by the verbs: kubectl's tab alignment, ages, sizes and times.

use jiff::{SignedDuration, Timestamp};

/// Aligns tab-separated cells the way Go's `text/tabwriter` does for kubectl: a column block is
/// a run of consecutive lines that have a tab-terminated cell in that column; its width is the
/// widest cell plus `padding`, at least `min_width`. The text after a line's last tab is not
/// padded. `get` uses (6, 3), `describe` (0, 2).
pub fn tabwrite(text: &str, min_width: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<Vec<usize>> = lines.iter().map(|c| vec![0; c.len() - 1]).collect();
    fill_widths(&lines, &mut widths, 0, lines.len(), 0, min_width, padding);
    let mut out = String::with_capacity(text.len() * 2);
    for (i, cells) in lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        for (j, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if j < cells.len() - 1 {
                let pad = widths[i][j].saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
    }
    out
}

fn fill_widths(
    lines: &[Vec<&str>],
    widths: &mut [Vec<usize>],
    from: usize,
    to: usize,
    col: usize,
    min_width: usize,
    padding: usize,
) {
    let mut i = from;
    while i < to {
        if lines[i].len() - 1 <= col {
            i += 1;
            continue;
        }
        let start = i;
        let mut width = min_width;
        while i < to && lines[i].len() - 1 > col {
            width = width.max(lines[i][col].chars().count() + padding);
            i += 1;
        }
        for w in widths.iter_mut().take(i).skip(start) {
            w[col] = width;
        }
        fill_widths(lines, widths, start, i, col + 1, min_width, padding);
    }
}

/// kubectl's `duration.HumanDuration`: `45s`, `2m3s`, `10m`, `3h`, `5h12m`, `2d`, `3d4h`, `2y`.
pub fn format_age(d: SignedDuration) -> String {
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    } else if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// kubectl's line for an empty listing: `No resources found`, or `No resources found in NS
/// namespace.` when only one namespace was looked in [get.go Run, top_pod.go].
pub const NO_RESOURCES: &str = "No resources found";

pub fn no_resources(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("{NO_RESOURCES} in {ns} namespace."),
        None => NO_RESOURCES.to_string(),
    }
}

/// kubectl's `translateTimestampSince`: the age of `t`, `<unknown>` without one.
pub fn since(t: Option<Timestamp>, now: Timestamp) -> String {
    match t {
        Some(t) => format_age(now.duration_since(t)),
        None => "<unknown>".to_string(),
    }
}

/// Sizes as `docker images` prints them: decimal units, three significant digits (`4.2MB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    // Go's `%.3g` (docker's HumanSizeWithPrecision): three significant digits, no trailing zeros.
    let decimals = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    format!("{s}{}", UNITS[unit])
}

/// Go's RFC1123Z, as `describe` prints times: `Mon, 02 Jan 2006 15:04:05 -0700`, local time.
pub fn rfc1123z(t: Timestamp) -> String {
    t.to_zoned(jiff::tz::TimeZone::system())
        .strftime("%a, %d %b %Y %H:%M:%S %z")
        .to_string()
}

/// `<none>` for an empty string.
pub fn or_none(s: &str) -> &str {
    if s.is_empty() {
        "<none>"
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age(s: i64) -> String {
        format_age(SignedDuration::from_secs(s))
    }

    #[test]
    fn ages_match_human_duration() {
        assert_eq!(age(-5), "<invalid>");
        assert_eq!(age(-1), "0s");
        assert_eq!(age(0), "0s");
        assert_eq!(age(45), "45s");
        assert_eq!(age(119), "119s");
        assert_eq!(age(123), "2m3s");
        assert_eq!(age(180), "3m");
        assert_eq!(age(600), "10m");
        assert_eq!(age(179 * 60), "179m");
        assert_eq!(age(3 * 3600), "3h");
        assert_eq!(age(5 * 3600 + 12 * 60), "5h12m");
        assert_eq!(age(30 * 3600), "30h");
        assert_eq!(age(48 * 3600), "2d");
        assert_eq!(age(76 * 3600), "3d4h");
        assert_eq!(age(20 * 86400), "20d");
        assert_eq!(age(3 * 365 * 86400 + 86400), "3y1d");
        assert_eq!(age(10 * 365 * 86400), "10y");
    }

    #[test]
    fn tabwrite_pads_all_but_the_last_cell() {
        let t = tabwrite("NAME\tREADY\tSTATUS\nnginx-long\t1/1\tRunning", 6, 3);
        assert_eq!(
            t,
            "NAME         READY   STATUS\nnginx-long   1/1     Running"
        );
    }

    #[test]
    fn tabwrite_blocks_break_on_lines_without_the_column() {
        let t = tabwrite("Name:\tx\nIPs:\n  IP:\t1.2.3.4\nLonger name:\ty", 0, 2);
        // As kubectl shows: `  IP:` aligns with the next line, not with `Name:`.
        assert_eq!(t, "Name:  x\nIPs:\n  IP:         1.2.3.4\nLonger name:  y");
    }

    #[test]
    fn sizes_are_human() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_200_000), "4.2MB");
        assert_eq!(human_size(4_194_304), "4.19MB");
        assert_eq!(human_size(187_000_000), "187MB");
        assert_eq!(human_size(1_500_000_000), "1.5GB");
    }
}
