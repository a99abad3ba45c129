//! Image references (`registry/repo:tag`, `registry/repo@sha256:…`),
//! parsed into `oci_client`'s [`Reference`] without the automaton its own
//! parser builds.
//!
//! `Reference::from_str` (oci-spec 0.8) matches Docker's reference grammar
//! with a regex whose tag part, `[\w][\w.-]{0,127}`, is Unicode-aware:
//! compiling it took 30–60 ms of every `wasmhost run REF` on this 2-core
//! machine (perf, 2026-12-07: a third of a busybox container's start to
//! its first answer). Docker's grammar (distribution/reference) is ASCII —
//! Go's `\w` is — so the same expression with ASCII classes says the same
//! for every reference a registry accepts and compiles in well under a
//! millisecond. The rest (the default registry and `library/`, digest
//! lengths) follows the crate; a test compares both parsers on a corpus.

#![forbid(unsafe_code)]

use std::sync::LazyLock;

use anyhow::{anyhow, bail, Result};
use oci_client::Reference;
use regex::Regex;

/// Docker's reference grammar: name (optional registry host and port,
/// then path components), `:tag`, `@algorithm:hex`; captures 1–3.
const GRAMMAR: &str = r"^((?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+)?(?::[0-9]+)?/)?[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?(?:(?:/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?)(?::([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}))?$";

/// The registry of names without one, as Docker has it.
const DOCKER_HUB: &str = "docker.io";
/// The tag of references with neither tag nor digest.
const DEFAULT_TAG: &str = "latest";
/// Docker's limit on a repository name.
const NAME_MAX: usize = 255;

static PATTERN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(GRAMMAR).expect("the reference grammar is a valid expression"));

/// Parses `text` as Docker and `oci_client` do.
pub fn parse(text: &str) -> Result<Reference> {
    if text.is_empty() {
        bail!("an empty string is not a registry reference");
    }
    let captures = PATTERN.captures(text).ok_or_else(|| {
        anyhow!("`{text}` is not a registry reference (registry/repository:tag or @digest)")
    })?;
    let (registry, repository) = split_registry(&captures[1]);
    if repository.len() > NAME_MAX {
        bail!("`{text}`: the repository name is longer than {NAME_MAX} characters");
    }
    let tag = captures.get(2).map(|m| m.as_str().to_owned());
    let digest = captures.get(3).map(|m| m.as_str().to_owned());
    if let Some(digest) = &digest {
        check_digest(digest).map_err(|why| anyhow!("`{text}`: {why}"))?;
    }
    Ok(match (tag, digest) {
        (Some(tag), Some(digest)) => {
            Reference::with_tag_and_digest(registry, repository, tag, digest)
        }
        (None, Some(digest)) => Reference::with_digest(registry, repository, digest),
        (tag, None) => Reference::with_tag(
            registry,
            repository,
            tag.unwrap_or_else(|| DEFAULT_TAG.into()),
        ),
    })
}

/// Docker's split of a name into registry and repository: the first
/// component is a registry when it has a dot or a port or is `localhost`;
/// Docker Hub's single-component names are under `library/`.
fn split_registry(name: &str) -> (String, String) {
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, rest)
        }
        _ => (DOCKER_HUB, name),
    };
    let registry = if registry == "index.docker.io" {
        DOCKER_HUB
    } else {
        registry
    };
    let repository = if registry == DOCKER_HUB && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository.to_owned()
    };
    (registry.to_owned(), repository)
}

/// A digest's hex part has the length its algorithm gives; other
/// algorithms are not supported.
fn check_digest(digest: &str) -> Result<(), String> {
    let (algorithm, hex) = digest
        .split_once(':')
        .ok_or("the digest is not `algorithm:hex`")?;
    let length = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        other => return Err(format!("digest algorithm `{other}` is not supported")),
    };
    if hex.len() != length {
        return Err(format!(
            "a {algorithm} digest has {length} hex digits, not {}",
            hex.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// References of every shape, valid and not: this parser and
    /// `oci_client`'s agree on each.
    const CORPUS: &[&str] = &[
        "busybox",
        "busybox:1.36",
        "library/busybox",
        "docker.io/busybox",
        "index.docker.io/library/busybox:latest",
        "test.com:tag",
        "test.com:5000",
        "test.com/repo:tag",
        "test:5000/repo",
        "test:5000/repo:tag",
        "localhost/app",
        "localhost:5000/app:v1",
        "127.0.0.1:5000/bench/httpd:latest",
        "127.0.0.1:5000/bench/httpd@sha256:b9b188acaf84d3e6a0f1aa0423fc969410ef3841db23c720bc6d8f815b9e8905",
        "ghcr.io/org/app:1.0@sha256:b9b188acaf84d3e6a0f1aa0423fc969410ef3841db23c720bc6d8f815b9e8905",
        "registry.example.com/a/b/c/d:tag_with.dots-and_underscores",
        "example.com/a__b/c.d/e-f--g:t",
        "sub-domain.example.com:443/x",
        "repo@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "repo@sha512:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        // Invalid.
        "",
        "Upper/case",
        "example.com/Upper",
        "example.com/repo:",
        "example.com/repo:-tag",
        "example.com/repo:.tag",
        "example.com//double",
        "example.com/repo/",
        "-example.com/repo",
        "example.com/repo@sha256:abc",
        "example.com/repo@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff0",
        "example.com/repo@md5:ffffffffffffffffffffffffffffffff",
        "example.com/repo@sha256",
        "example.com/repo:tag with space",
        "example.com/repo:t@g",
        "a:b:c",
        "example.com:port/repo",
    ];

    #[test]
    fn agrees_with_oci_client_on_every_reference_in_the_corpus() {
        let long_tag = format!("example.com/repo:{}", "t".repeat(128));
        let too_long_tag = format!("example.com/repo:{}", "t".repeat(129));
        let long_name = format!("example.com/{}", "a".repeat(256));
        let extra = [long_tag.as_str(), too_long_tag.as_str(), long_name.as_str()];
        for text in CORPUS.iter().copied().chain(extra) {
            let ours = parse(text).ok();
            let theirs = text.parse::<Reference>().ok();
            assert_eq!(ours, theirs, "`{text}`");
        }
    }

    #[test]
    fn splits_registry_repository_tag_and_digest() {
        let r = parse("127.0.0.1:5000/bench/httpd:v2@sha256:b9b188acaf84d3e6a0f1aa0423fc969410ef3841db23c720bc6d8f815b9e8905").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "bench/httpd");
        assert_eq!(r.tag(), Some("v2"));
        assert!(r.digest().unwrap().starts_with("sha256:b9b1"));
        let r = parse("nginx").unwrap();
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("docker.io", "library/nginx", Some("latest"))
        );
    }

    /// Docker's grammar is ASCII: a Unicode tag, which the crate's
    /// Unicode `\w` lets through and no registry accepts, is refused.
    #[test]
    fn a_tag_outside_ascii_is_refused_with_the_reference_named() {
        let err = parse("example.com/repo:täg").unwrap_err().to_string();
        assert!(
            err.contains("`example.com/repo:täg` is not a registry reference"),
            "{err}"
        );
        let err =
            parse("example.com/repo@sha1:ffffffffffffffffffffffffffffffffffffffff").unwrap_err();
        assert!(err.to_string().contains("`sha1` is not supported"), "{err}");
    }
}
