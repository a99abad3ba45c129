//! Parsers for the values users write, in flags and manifests alike:
//! sizes (`128MiB`), durations (`30s`), SQL (`--sqlite`) and key-value
//! pairs (`--key-value`), the default port of a URL scheme.

use std::time::Duration;

/// The port a scheme's URLs mean when they name none (Spin's list).
pub fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        _ => None,
    }
}

/// Parses a byte size: a number with an optional unit (`B`, `K`/`KiB`,
/// `M`/`MiB`, `G`/`GiB`; powers of 1024, case-insensitive).
pub fn size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size; try `128MiB` or `65536`"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => {
            return Err(format!(
                "`{text}` has an unknown unit; use B, KiB, MiB or GiB"
            ))
        }
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// Parses a duration: a number with a unit (`ms`, `s`, `m`), or plain
/// seconds.
pub fn duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; try `30s` or `500ms`"))?;
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("`{text}` has an unknown unit; use ms, s or m")),
    }
}

/// A duration flag whose default is a constant from [`crate::limits`]:
/// parsed like [`duration`], shown in `--help` the same way (`30s`,
/// `500ms`), so the default lives in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationArg(pub Duration);

impl std::str::FromStr for DurationArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        duration(text).map(Self)
    }
}

impl std::fmt::Display for DurationArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0.as_millis();
        match (ms % 1000, ms / 1000) {
            (0, s) if s % 60 == 0 && s > 0 => write!(f, "{}m", s / 60),
            (0, s) => write!(f, "{s}s"),
            _ => write!(f, "{ms}ms"),
        }
    }
}

/// A size flag whose default is a constant from [`crate::limits`],
/// parsed like [`size`] and shown in the largest whole binary unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeArg(pub u64);

impl std::str::FromStr for SizeArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        size(text).map(Self)
    }
}

impl std::fmt::Display for SizeArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0;
        for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
            if n != 0 && n.is_multiple_of(1 << shift) {
                return write!(f, "{}{unit}", n >> shift);
            }
        }
        write!(f, "{n}B")
    }
}

/// `--sqlite`: SQL as given, or `@file` read now (so a missing file stops
/// the start before anything listens), as `spin up --sqlite` takes it.
pub fn sql(text: &str) -> Result<String, String> {
    match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the SQL file `{path}`: {e}")),
        None => Ok(text.to_owned()),
    }
}

/// `--key-value KEY=VALUE`: split at the first `=`.
pub fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not `KEY=VALUE`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(size("128MiB"), Ok(128 << 20));
        assert_eq!(size("64k"), Ok(64 << 10));
        assert_eq!(size("10"), Ok(10));
        assert!(size("12 parsecs").is_err());
        assert!(size("lots").is_err());
    }

    #[test]
    fn durations_take_ms_s_and_m() {
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("7"), Ok(Duration::from_secs(7)));
        assert!(duration("1h").is_err());
    }

    #[test]
    fn flag_defaults_print_as_they_are_parsed() {
        for text in ["30s", "500ms", "2m", "64KiB", "1GiB", "7B"] {
            let shown = match (text.parse::<DurationArg>(), text.parse::<SizeArg>()) {
                (Ok(d), _) => d.to_string(),
                (_, Ok(s)) => s.to_string(),
                _ => panic!("`{text}` parses as neither"),
            };
            assert_eq!(shown, text);
        }
    }

    #[test]
    fn key_values_split_at_the_first_equals_sign_and_sql_files_are_read() {
        assert_eq!(key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(key_value("=x"), Err("`=x` is not `KEY=VALUE`".into()));
        assert_eq!(sql("SELECT 1"), Ok("SELECT 1".into()));
        let err = sql("@/nonexistent/schema.sql").unwrap_err();
        assert!(
            err.starts_with("cannot read the SQL file `/nonexistent/schema.sql`"),
            "{err}"
        );
    }
}
