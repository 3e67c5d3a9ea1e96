//! How Go and Kubernetes' apimachinery print what users read: `%q` quoting (downward API
//! files), aggregated errors (projected volumes, kubectl label) and durations (kubelet events
//! and back-off messages). Pure formatting.

use std::time::Duration;

/// apimachinery's aggregated error (`utilerrors.NewAggregate(errs).Error()`): one message
/// alone, else the distinct messages in brackets, comma separated.
pub fn aggregate<E: std::fmt::Display>(errors: &[E]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for e in errors {
        let msg = e.to_string();
        if !seen.contains(&msg) {
            seen.push(msg);
        }
    }
    match seen.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// Go's `strconv.Quote` (`%q`): `"` and `\` escaped, the C escapes for \a \b \f \n \r \t \v,
/// `\xHH` for other ASCII controls, `\uHHHH` / `\UHHHHHHHH` for other unprintable characters.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.IsPrint` for non-ASCII characters, approximately: controls, spaces other
/// than U+0020 and the invisible format characters are not printable.
fn printable(c: char) -> bool {
    let u = c as u32;
    if c.is_ascii() {
        return true;
    }
    !(c.is_control()
        || (c.is_whitespace() && c != ' ')
        || u == 0xad
        || (0x200b..=0x200f).contains(&u)
        || (0x202a..=0x202e).contains(&u)
        || (0x2060..=0x206f).contains(&u)
        || u == 0xfeff
        || (0xfff9..=0xfffb).contains(&u)
        || (0xe000..=0xf8ff).contains(&u))
}

/// Go's `time.Duration.String()` to millisecond precision: `0s`, `500ms`, `1s`, `1.5s`,
/// `2m0s`, `1h1m1s` (the kubelet prints probe timeouts with `%v`).
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    let ms = d.subsec_millis();
    if secs == 0 {
        return if ms == 0 {
            "0s".into()
        } else {
            format!("{ms}ms")
        };
    }
    let frac = if ms > 0 {
        format!(".{}", format!("{ms:03}").trim_end_matches('0'))
    } else {
        String::new()
    };
    match (secs / 3600, (secs % 3600) / 60, secs % 60) {
        (0, 0, s) => format!("{s}{frac}s"),
        (0, m, s) => format!("{m}m{s}{frac}s"),
        (h, m, s) => format!("{h}h{m}m{s}{frac}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_as_strconv_quote() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quote("l1\nl2\t\x01\x7f"), "\"l1\\nl2\\t\\x01\\x7f\"");
        assert_eq!(quote("héllo ✓"), "\"héllo ✓\"");
        assert_eq!(quote("\u{a0}\u{200b}"), "\"\\u00a0\\u200b\"");
    }

    #[test]
    fn durations_as_go_prints_them() {
        assert_eq!(duration(Duration::ZERO), "0s");
        assert_eq!(duration(Duration::from_millis(500)), "500ms");
        assert_eq!(duration(Duration::from_secs(1)), "1s");
        assert_eq!(duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(duration(Duration::from_secs(120)), "2m0s");
        assert_eq!(duration(Duration::from_secs(3661)), "1h1m1s");
        assert_eq!(duration(Duration::from_micros(850_900)), "850ms");
        assert_eq!(duration(Duration::from_millis(1234)), "1.234s");
        assert_eq!(duration(Duration::from_millis(123_500)), "2m3.5s");
    }

    #[test]
    fn aggregates_dedupe_and_bracket_several() {
        assert_eq!(aggregate(&["a"]), "a");
        assert_eq!(aggregate(&["a", "b", "a"]), "[a, b]");
    }
}
