//! `peapod images` (also `image ls`): podman's table, REPOSITORY TAG IMAGE ID CREATED SIZE
//! (`--digests` adds DIGEST), `-q` for the IDs, `-o json|yaml` for the summaries.
//!
//! Podman's formats, not Docker's: ages as `2 days ago` (go-units' HumanDuration), sizes with a
//! space before SI units (`4.86 MB`), columns at least 12 wide with 2 spaces between.

use anyhow::Result;
use jiff::{SignedDuration, Timestamp};

use super::format::{human_size, or_none, tabwrite};
use crate::image::{ImageStore, ImageSummary};
use crate::store::Paths;

/// podman's table writer: minimum cell width 12, padding 2.
const MIN_WIDTH: usize = 12;
const PADDING: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImagesFormat {
    Json,
    Yaml,
}

#[derive(Debug, clap::Args)]
pub struct ImagesArgs {
    /// Print only the image IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Add the DIGEST column (the digest a registry knows the image by).
    #[arg(long)]
    pub digests: bool,
    /// Accepted for compatibility: peapod keeps no intermediate images, all are shown.
    #[arg(short, long)]
    pub all: bool,
    /// Print the images as JSON or YAML.
    #[arg(short, long, alias = "format", value_enum)]
    pub output: Option<ImagesFormat>,
}

pub fn run(paths: &Paths, args: &ImagesArgs) -> Result<i32> {
    let store = ImageStore::open(paths)?;
    let images = store.list()?;
    let text = match args.output {
        Some(ImagesFormat::Json) => format!("{}\n", serde_json::to_string_pretty(&images)?),
        Some(ImagesFormat::Yaml) => serde_norway::to_string(&images)?,
        None if args.quiet => quiet_ids(&images),
        None => images_table(&images, args.digests, Timestamp::now()),
    };
    print!("{text}");
    Ok(0)
}

/// The IMAGE ID column: 12 hex digits of the config digest.
pub fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

/// The digest a registry serves the image under: the index's when it came from one.
fn registry_digest(img: &ImageSummary) -> &str {
    img.index_digest.as_deref().unwrap_or(&img.manifest_digest)
}

/// `-q`: one ID per image, each once (an image with two names is one image).
pub fn quiet_ids(images: &[ImageSummary]) -> String {
    let mut seen = std::collections::HashSet::new();
    images
        .iter()
        .map(|i| short_id(&i.id))
        .filter(|id| seen.insert(*id))
        .map(|id| format!("{id}\n"))
        .collect()
}

/// The `images` table.
pub fn images_table(images: &[ImageSummary], digests: bool, now: Timestamp) -> String {
    let mut text = if digests {
        String::from("REPOSITORY\tTAG\tDIGEST\tIMAGE ID\tCREATED\tSIZE")
    } else {
        String::from("REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE")
    };
    for img in images {
        let created = img
            .created
            .as_deref()
            .and_then(|c| c.parse::<Timestamp>().ok())
            .map(|t| format!("{} ago", human_duration(now.duration_since(t))))
            .unwrap_or_else(|| "N/A".to_string());
        text.push_str(&format!(
            "\n{}\t{}\t",
            or_none(&img.repository),
            or_none(&img.tag)
        ));
        if digests {
            text.push_str(registry_digest(img));
            text.push('\t');
        }
        text.push_str(&format!(
            "{}\t{created}\t{}",
            short_id(&img.id),
            image_size(img.size)
        ));
    }
    let mut out = tabwrite(&text, MIN_WIDTH, PADDING);
    out.push('\n');
    out
}

/// go-units' HumanDuration, which podman and docker print before " ago": `Less than a
/// second`, `About a minute`, `3 hours`, `2 weeks`, `56 years`.
pub fn human_duration(d: SignedDuration) -> String {
    let seconds = d.as_secs();
    let plural = |n: i64, unit: &str| format!("{n} {unit}s");
    if seconds < 1 {
        return "Less than a second".to_string();
    } else if seconds == 1 {
        return "1 second".to_string();
    } else if seconds < 60 {
        return plural(seconds, "second");
    }
    let minutes = seconds / 60;
    if minutes == 1 {
        return "About a minute".to_string();
    } else if minutes < 60 {
        return plural(minutes, "minute");
    }
    // Hours are rounded, as go-units does (math.Round).
    let hours = (seconds + 1800) / 3600;
    if hours == 1 {
        "About an hour".to_string()
    } else if hours < 48 {
        plural(hours, "hour")
    } else if hours < 24 * 7 * 2 {
        plural(hours / 24, "day")
    } else if hours < 24 * 30 * 2 {
        plural(hours / 24 / 7, "week")
    } else if hours < 24 * 365 * 2 {
        plural(hours / 24 / 30, "month")
    } else {
        plural(seconds / 3600 / 24 / 365, "year")
    }
}

/// podman's SIZE: three significant digits, SI units, a space before the unit (`4.86 MB`).
pub fn image_size(bytes: u64) -> String {
    let s = human_size(bytes);
    let unit = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    format!("{} {}", &s[..unit], &s[unit..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(repo: &str, tag: &str, id: &str, created: Option<&str>, size: u64) -> ImageSummary {
        ImageSummary {
            reference: format!("{repo}:{tag}"),
            repository: repo.into(),
            tag: tag.into(),
            manifest_digest: "sha256:aa".into(),
            index_digest: None,
            id: id.into(),
            created: created.map(Into::into),
            size,
        }
    }

    #[test]
    fn table_matches_podman() {
        let now: Timestamp = "2026-01-04T00:00:00Z".parse().unwrap();
        let images = [
            summary(
                "docker.io/library/busybox",
                "1.36",
                "sha256:0123456789abcdef0123",
                Some("2026-01-02T00:00:00Z"),
                4_860_000,
            ),
            summary(
                "127.0.0.1:5000/team/app",
                "v1",
                "sha256:fedcba9876543210",
                Some("1970-01-01T00:00:00Z"),
                999,
            ),
        ];
        assert_eq!(
            images_table(&images, false, now),
            "REPOSITORY                 TAG         IMAGE ID      CREATED       SIZE\n\
             docker.io/library/busybox  1.36        0123456789ab  2 days ago    4.86 MB\n\
             127.0.0.1:5000/team/app    v1          fedcba987654  56 years ago  999 B\n"
        );
        let mut with_index = images[0].clone();
        with_index.index_digest = Some("sha256:bb".into());
        let t = images_table(&[with_index, images[1].clone()], true, now);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("REPOSITORY                 TAG         DIGEST      IMAGE ID"));
        assert!(lines[1].contains("  sha256:bb   0123456789ab  "), "{t}");
        assert!(lines[2].contains("  sha256:aa   fedcba987654  "), "{t}");
    }

    #[test]
    fn missing_created_is_na_and_quiet_ids_are_unique() {
        let a = summary("r", "1", "sha256:0123456789abcdef", None, 0);
        let b = summary("r", "2", "sha256:0123456789abcdef", None, 0);
        let t = images_table(std::slice::from_ref(&a), false, Timestamp::now());
        assert!(t.contains("  N/A  ") && t.ends_with("0 B\n"), "{t}");
        assert_eq!(quiet_ids(&[a, b]), "0123456789ab\n");
        assert_eq!(short_id("abc"), "abc");
    }

    #[test]
    fn durations_match_go_units() {
        let d = |s: i64| human_duration(SignedDuration::from_secs(s));
        assert_eq!(d(-3), "Less than a second");
        assert_eq!(d(0), "Less than a second");
        assert_eq!(d(1), "1 second");
        assert_eq!(d(59), "59 seconds");
        assert_eq!(d(60), "About a minute");
        assert_eq!(d(119), "About a minute");
        assert_eq!(d(120), "2 minutes");
        assert_eq!(d(3599), "59 minutes");
        assert_eq!(d(3600), "About an hour");
        assert_eq!(d(5399), "About an hour");
        assert_eq!(d(5400), "2 hours");
        assert_eq!(d(47 * 3600), "47 hours");
        assert_eq!(d(48 * 3600), "2 days");
        assert_eq!(d(13 * 86400), "13 days");
        assert_eq!(d(14 * 86400), "2 weeks");
        assert_eq!(d(59 * 86400), "8 weeks");
        assert_eq!(d(60 * 86400), "2 months");
        assert_eq!(d(729 * 86400), "24 months");
        assert_eq!(d(730 * 86400), "2 years");
        assert_eq!(d(56 * 365 * 86400 + 20 * 86400), "56 years");
    }

    #[test]
    fn sizes_have_a_space_before_the_unit() {
        assert_eq!(image_size(0), "0 B");
        assert_eq!(image_size(999), "999 B");
        assert_eq!(image_size(1_234), "1.23 kB");
        assert_eq!(image_size(4_860_000), "4.86 MB");
        assert_eq!(image_size(187_000_000), "187 MB");
        assert_eq!(image_size(1_500_000_000), "1.5 GB");
    }
}
