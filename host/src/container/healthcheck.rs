//! The image's `Healthcheck` (Docker's HEALTHCHECK), read as Docker reads
//! it (moby's `daemon/health.go`): `Test` is `["NONE"]` (no check),
//! `["CMD", args…]` (run args) or `["CMD-SHELL", command]` (run it with
//! the image's `Shell`, else `/bin/sh -c`); durations are nanoseconds,
//! 0 or absent meaning Docker's default; `Retries` 0 means 3.
//!
//! A malformed one is an error naming the field: the image still runs,
//! without the check, and the backend says why in a warning.

#![forbid(unsafe_code)]

use std::time::Duration;

use serde::Deserialize;

/// Docker's default time between two checks (and before the first).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// Docker's default time a check may run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Docker's default start period: none.
pub const DEFAULT_START_PERIOD: Duration = Duration::ZERO;
/// Docker's default time between checks during the start period.
pub const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
/// Docker's default failures in a row that make a container unhealthy.
pub const DEFAULT_RETRIES: u32 = 3;
/// The shortest duration Docker's API accepts (`MinimumDuration`): a
/// shorter one is a mistake (seconds written as nanoseconds), not a wish.
pub const MINIMUM_DURATION: Duration = Duration::from_millis(1);

/// The command check an image declares, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageHealthcheck {
    /// What runs inside the container (the shell already put in front
    /// of a `CMD-SHELL` command).
    pub command: Vec<String>,
    /// Between two checks, and before the first.
    pub interval: Duration,
    /// How long one check may run before it is killed and failed.
    pub timeout: Duration,
    /// After the start, failures do not count (until the first success).
    pub start_period: Duration,
    /// Between two checks during the start period.
    pub start_interval: Duration,
    /// Failures in a row that make the container unhealthy.
    pub retries: u32,
}

/// Why an image's `Healthcheck` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthcheckError {
    /// Not the JSON shape Docker writes.
    #[error("the image's Healthcheck is not Docker's shape ({0})")]
    Shape(String),
    /// `Test[0]` is none of `NONE`, `CMD`, `CMD-SHELL`.
    #[error("the image's Healthcheck test kind `{0}` is none of NONE, CMD, CMD-SHELL")]
    UnknownKind(String),
    /// `CMD` or `CMD-SHELL` with nothing to run.
    #[error("the image's Healthcheck `{0}` has no command")]
    NoCommand(String),
    /// A negative duration, or one below [`MINIMUM_DURATION`].
    #[error(
        "the image's Healthcheck {field} is {nanos} ns: give 0 (the default) or at least 1 ms"
    )]
    Duration {
        /// `Interval`, `Timeout`, `StartPeriod` or `StartInterval`.
        field: &'static str,
        /// As written.
        nanos: i64,
    },
    /// A negative `Retries`.
    #[error("the image's Healthcheck Retries is {0}: give 0 (the default, 3) or more")]
    Retries(i64),
}

/// `config.Healthcheck` as Docker writes it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Raw {
    #[serde(default)]
    test: Vec<String>,
    #[serde(default)]
    interval: i64,
    #[serde(default)]
    timeout: i64,
    #[serde(default)]
    start_period: i64,
    #[serde(default)]
    start_interval: i64,
    #[serde(default)]
    retries: i64,
}

impl ImageHealthcheck {
    /// The check `value` (the image config's `Healthcheck`) declares, run
    /// with `shell` (the image's `Shell`) for `CMD-SHELL`; `None` for
    /// `NONE` or an empty test (Docker runs nothing then either).
    pub fn parse(
        value: &serde_json::Value,
        shell: Option<&[String]>,
    ) -> Result<Option<Self>, HealthcheckError> {
        let raw: Raw = serde_json::from_value(value.clone())
            .map_err(|e| HealthcheckError::Shape(e.to_string()))?;
        let Some((kind, args)) = raw.test.split_first() else {
            return Ok(None);
        };
        let command = match kind.as_str() {
            "NONE" => return Ok(None),
            "CMD" => args.to_vec(),
            "CMD-SHELL" => {
                let mut command = match shell {
                    Some(shell) if !shell.is_empty() => shell.to_vec(),
                    _ => vec!["/bin/sh".to_owned(), "-c".to_owned()],
                };
                command.extend(args.iter().cloned());
                if args.is_empty() {
                    return Err(HealthcheckError::NoCommand(kind.clone()));
                }
                command
            }
            other => return Err(HealthcheckError::UnknownKind(other.to_owned())),
        };
        if command.is_empty() || command[0].is_empty() {
            return Err(HealthcheckError::NoCommand(kind.clone()));
        }
        Ok(Some(Self {
            command,
            interval: duration("Interval", raw.interval, DEFAULT_INTERVAL)?,
            timeout: duration("Timeout", raw.timeout, DEFAULT_TIMEOUT)?,
            start_period: duration("StartPeriod", raw.start_period, DEFAULT_START_PERIOD)?,
            start_interval: duration("StartInterval", raw.start_interval, DEFAULT_START_INTERVAL)?,
            retries: match raw.retries {
                0 => DEFAULT_RETRIES,
                n if n < 0 => return Err(HealthcheckError::Retries(n)),
                n => u32::try_from(n).unwrap_or(u32::MAX),
            },
        }))
    }
}

/// `nanos` as a duration, `default` for 0, as Docker's API checks it.
fn duration(
    field: &'static str,
    nanos: i64,
    default: Duration,
) -> Result<Duration, HealthcheckError> {
    if nanos == 0 {
        return Ok(default);
    }
    let Ok(positive) = u64::try_from(nanos) else {
        return Err(HealthcheckError::Duration { field, nanos });
    };
    let duration = Duration::from_nanos(positive);
    if duration < MINIMUM_DURATION {
        return Err(HealthcheckError::Duration { field, nanos });
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Option<ImageHealthcheck>, HealthcheckError> {
        ImageHealthcheck::parse(&serde_json::from_str(json).unwrap(), None)
    }

    /// What `docker build` writes for
    /// `HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --start-interval=1s --retries=2 CMD curl -f http://localhost/`.
    #[test]
    fn dockers_json_for_a_cmd_check_reads_as_written() {
        let check = parse(
            r#"{"Test":["CMD","curl","-f","http://localhost/"],"Interval":5000000000,
                "Timeout":3000000000,"StartPeriod":10000000000,"StartInterval":1000000000,"Retries":2}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            check,
            ImageHealthcheck {
                command: vec!["curl".into(), "-f".into(), "http://localhost/".into()],
                interval: Duration::from_secs(5),
                timeout: Duration::from_secs(3),
                start_period: Duration::from_secs(10),
                start_interval: Duration::from_secs(1),
                retries: 2,
            }
        );
    }

    #[test]
    fn a_shell_check_runs_under_the_images_shell_or_bin_sh_with_dockers_defaults() {
        let json: serde_json::Value =
            serde_json::from_str(r#"{"Test":["CMD-SHELL","test -e /tmp/ok || exit 1"]}"#).unwrap();
        let check = ImageHealthcheck::parse(&json, None).unwrap().unwrap();
        assert_eq!(
            check.command,
            ["/bin/sh", "-c", "test -e /tmp/ok || exit 1"]
        );
        assert_eq!(check.interval, DEFAULT_INTERVAL);
        assert_eq!(check.timeout, DEFAULT_TIMEOUT);
        assert_eq!(check.start_period, Duration::ZERO);
        assert_eq!(check.start_interval, DEFAULT_START_INTERVAL);
        assert_eq!(check.retries, 3);
        let bash = ["/bin/bash".to_owned(), "-ec".to_owned()];
        let check = ImageHealthcheck::parse(&json, Some(&bash))
            .unwrap()
            .unwrap();
        assert_eq!(
            check.command,
            ["/bin/bash", "-ec", "test -e /tmp/ok || exit 1"]
        );
    }

    #[test]
    fn none_and_an_empty_test_mean_no_check() {
        assert_eq!(parse(r#"{"Test":["NONE"]}"#), Ok(None));
        assert_eq!(parse(r#"{"Test":[]}"#), Ok(None));
        assert_eq!(parse(r#"{}"#), Ok(None));
    }

    #[test]
    fn a_malformed_check_is_an_error_naming_what_is_wrong() {
        let cases = [
            (r#"{"Test":"curl localhost"}"#, "not Docker's shape"),
            (
                r#"{"Test":["HTTP","/healthz"]}"#,
                "test kind `HTTP` is none of",
            ),
            (r#"{"Test":["CMD"]}"#, "`CMD` has no command"),
            (r#"{"Test":["CMD-SHELL"]}"#, "`CMD-SHELL` has no command"),
            (
                r#"{"Test":["CMD","true"],"Interval":-1}"#,
                "Interval is -1 ns",
            ),
            (r#"{"Test":["CMD","true"],"Timeout":5}"#, "Timeout is 5 ns"),
            (r#"{"Test":["CMD","true"],"Retries":-2}"#, "Retries is -2"),
            (
                r#"{"Test":["CMD","true"],"Interval":"5s"}"#,
                "not Docker's shape",
            ),
        ];
        for (json, expected) in cases {
            let err = parse(json).unwrap_err().to_string();
            assert!(err.contains(expected), "{json}: {err}");
        }
    }
}
