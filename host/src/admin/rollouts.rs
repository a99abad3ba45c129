//! The rollout API on the admin listener, what `wasmhost rollout` calls:
//!
//! - `GET /rollouts`: every rollout's status, as JSON.
//! - `POST /rollouts/<pause|resume|promote|abort>[?route=<route>]`: a
//!   command (the route may be left out when the app has one rollout);
//!   answers the rollout's status after it.
//!
//! Both need `Authorization: Bearer <token>`, the token `serve` read from
//! `--admin-token-file`; without one configured the API answers 403, so a
//! listener opened for metrics never lets anyone move traffic.

use std::path::Path;

use anyhow::{Context as _, Result};

use super::Answer;
use crate::rollout::controller::CommandError;
use crate::rollout::state::Command;
use crate::rollout::Rollouts;

/// The admin token: compared in constant time, never logged.
pub struct Token(Vec<u8>);

impl Token {
    /// The token in `path` (surrounding whitespace dropped, so an editor's
    /// final newline does not count).
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the admin token file `{}`", path.display()))?;
        let token = text.trim();
        anyhow::ensure!(
            !token.is_empty(),
            "the admin token file `{}` is empty; put a long random string in it \
             (e.g. `openssl rand -hex 32`)",
            path.display()
        );
        Ok(Self(token.as_bytes().to_vec()))
    }

    /// Whether `header` (an `Authorization` value) carries this token.
    fn admits(&self, header: Option<&[u8]>) -> bool {
        let Some(given) = header.and_then(|h| h.strip_prefix(b"Bearer ")) else {
            return false;
        };
        // Constant time over the token's length: the first differing byte
        // must not show in the answer's timing.
        given.len() == self.0.len()
            && given
                .iter()
                .zip(&self.0)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// The answer to a request under `/rollouts`.
pub fn answer(
    rollouts: &Rollouts,
    token: Option<&Token>,
    method: &http::Method,
    path: &str,
    query: Option<&str>,
    authorization: Option<&[u8]>,
) -> Answer {
    let Some(token) = token else {
        return text(
            403,
            "the rollout API is off: start `wasmhost serve` with --admin-token-file",
        );
    };
    if !token.admits(authorization) {
        return text(401, "wrong or missing bearer token");
    }
    let route = query.and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(key, _)| key == "route")
            .map(|(_, value)| value.into_owned())
    });
    match (method, path.strip_prefix("/rollouts")) {
        (&http::Method::GET, Some("" | "/")) => json(200, &rollouts.status()),
        (&http::Method::POST, Some(verb)) => {
            let Some(command) = verb.strip_prefix('/').and_then(Command::parse) else {
                return text(404, "try POST /rollouts/pause, resume, promote or abort");
            };
            match rollouts.command(route.as_deref(), command) {
                Ok(status) => json(200, &status),
                Err(e @ CommandError::NoSuchRollout(_)) => text(404, &e.to_string()),
                Err(e @ CommandError::Refused(_)) => text(409, &e.to_string()),
            }
        }
        _ => text(405, "GET /rollouts, or POST /rollouts/<command>"),
    }
}

fn text(status: u16, message: &str) -> Answer {
    (status, "text/plain", format!("{message}\n"))
}

fn json(status: u16, value: &impl serde::Serialize) -> Answer {
    match serde_json::to_string_pretty(value) {
        Ok(body) => (status, "application/json", body),
        Err(e) => text(500, &format!("cannot encode the status: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Token {
        Token(b"s3cret".to_vec())
    }

    #[test]
    fn only_the_exact_bearer_token_is_admitted() {
        let t = token();
        assert!(t.admits(Some(b"Bearer s3cret")));
        for wrong in [
            &b"Bearer s3cres"[..],
            b"Bearer s3cret2",
            b"s3cret",
            b"Bearer ",
        ] {
            assert!(
                !t.admits(Some(wrong)),
                "{:?}",
                String::from_utf8_lossy(wrong)
            );
        }
        assert!(!t.admits(None));
    }

    #[test]
    fn without_a_configured_token_the_api_is_off() {
        let rollouts = Rollouts::default();
        let (status, _, body) = answer(
            &rollouts,
            None,
            &http::Method::GET,
            "/rollouts",
            None,
            Some(b"Bearer anything"),
        );
        assert_eq!(status, 403);
        assert!(body.contains("--admin-token-file"), "{body}");
    }

    #[test]
    fn a_command_for_a_route_without_a_rollout_is_404_naming_the_rollouts() {
        let rollouts = Rollouts::default();
        let (status, _, body) = answer(
            &rollouts,
            Some(&token()),
            &http::Method::POST,
            "/rollouts/pause",
            Some("route=%2Fnope"),
            Some(b"Bearer s3cret"),
        );
        assert_eq!(status, 404);
        assert!(body.contains("no rollout on route `/nope`"), "{body}");
    }
}
