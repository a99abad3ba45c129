//! The route table of a Spin application: which `[[trigger.http]]` a request
//! path belongs to, and the `spin-*` headers that tell the component how it
//! was matched. Pure: no I/O, no tokio, hyper or wasmtime, so every rule is
//! pinned by a table test below.
//!
//! The rules are Spin 3's (`crates/routes` in spinframework/spin, which hands
//! matching to routefinder 0.5), restated here per segment:
//!
//! - A route is `/`-separated segments: a literal (`cart`), a parameter
//!   (`:userid`, one whole segment) or, last only, a trailing wildcard `...`
//!   (Spin also takes `*`). `/...` matches every path.
//! - A request path loses all its leading and trailing `/` before matching, so
//!   `/cart/` and `//cart` both match `/cart`. A `//` inside the path is an
//!   empty segment: a parameter takes it (as `""`), a literal never does.
//! - A wildcard route also matches its bare prefix: `/users/...` takes `/users`.
//! - When several routes match, the one with the more specific segment at the
//!   first position where they differ wins, literal over parameter over
//!   wildcard; if one route's segments run out first, the shorter wins. So
//!   exact beats wildcard and the longest wildcard prefix wins, but `/a/...`
//!   also beats `/:x/b` for `/a/b` (the leftmost difference decides).
//! - A route written twice: the last one is used (Spin logs the others as
//!   duplicates). Two different texts of the same shape (`/:a` and `/:b`,
//!   `/foo` and `/foo/`): the first is used. [`Router::shadowed`] lists the
//!   losers either way.
//! - `route = { private = true }` is not routed at all: such a component is
//!   reachable only by service chaining.
//!
//! A few routes routefinder accepts but mis-parses (a segment starting with
//! `.` after another one, `:name.ext` captures inside a segment, `...` in the
//! middle) are refused with an error instead of routed differently from Spin.
//!
//! One known difference remains, on purpose: once any route's first segment
//! starts with `.` (`/.well-known/...`), routefinder 0.5.4's ordering stops
//! being transitive (its `.` compares as greater than everything, both
//! ways), so Spin's precedence then depends on manifest order: with
//! `/.well-known/...` declared before `/...`, Spin sends
//! `/.well-known/acme` to `/...`; with `/a/b`, `/.well-known/x`, `/a/:x`, it
//! sends `/a/b` to `/a/:x`. Here such a segment ranks as the literal it is,
//! which is the order-independent rule Spin documents and chose on purpose
//! (spinframework/spin#1098). Without such a route the two agree exactly.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// `spin-full-url`: scheme, host and path with query, as the client asked.
pub const FULL_URL: &str = "spin-full-url";
/// `spin-path-info`: the part of the path the trailing wildcard took.
pub const PATH_INFO: &str = "spin-path-info";
/// `spin-matched-route`: the route with the base in front (Spin 2 apps).
pub const MATCHED_ROUTE: &str = "spin-matched-route";
/// `spin-raw-component-route`: the route exactly as the manifest wrote it.
pub const RAW_COMPONENT_ROUTE: &str = "spin-raw-component-route";
/// `spin-component-route`: the manifest's route without its `/...`.
pub const COMPONENT_ROUTE: &str = "spin-component-route";
/// `spin-base-path`: the application base; always `/` since Spin 3.
pub const BASE_PATH: &str = "spin-base-path";
/// `spin-client-addr`: the peer's `ip:port`.
pub const CLIENT_ADDR: &str = "spin-client-addr";
/// Prefix of `spin-path-match-<name>`, one per `:name` in the route.
pub const PATH_MATCH_PREFIX: &str = "spin-path-match-";

/// A route the manifest gave that this host will not route, with the text
/// the user wrote so they can find it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid route `{route}`: {reason}")]
pub struct RouteError {
    /// The route as written in the manifest.
    pub route: String,
    /// What is wrong with it, and the fix.
    pub reason: RouteErrorKind,
}

/// Why a route was refused. Spin itself rejects the first two; the others
/// Spin accepts but routes by accident of its parser, so running them here
/// would silently differ from Spin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteErrorKind {
    /// `/users/:`.
    #[error("`:` needs a name, as in `/users/:id`")]
    UnnamedParam,
    /// `/files/*rest`.
    #[error("`{segment}`: a wildcard takes no name; end the route with `/...`")]
    NamedWildcard {
        /// The offending segment.
        segment: String,
    },
    /// `/a/.../b`, or `...` followed by more than one `/`.
    #[error("`{segment}` can only be the last segment, as in `/users/...`")]
    WildcardNotLast {
        /// The offending segment.
        segment: String,
    },
    /// `/:name.json`, `/v.:n`: Spin captures part of a segment here.
    #[error(
        "`{segment}` mixes a `:name` or `*` with other text; a parameter must \
         be a whole segment, as in `/files/:name`"
    )]
    PartialSegment {
        /// The offending segment.
        segment: String,
    },
    /// `/:user id`: the name would not make a valid header name.
    #[error(
        "`:{name}` is passed to the component as the header \
         `spin-path-match-{name}`, so the name may only use letters, digits \
         and !#$%&'*+-^_`|~"
    )]
    BadParamName {
        /// The parameter name, without `:`.
        name: String,
    },
    /// `/api/.well-known`: Spin's parser drops the `/` before a leading dot,
    /// so Spin would match `/api.well-known` instead.
    #[error(
        "`{segment}` starts with `.` after another segment, which Spin matches \
         as if the `/` before it were missing; rename the segment"
    )]
    DotAfterSegment {
        /// The offending segment.
        segment: String,
    },
}

/// One parsed segment (the trailing wildcard is a flag on the pattern).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(Box<str>),
    Param(Box<str>),
}

/// A parsed route. Parsing once at load time is what lets matching compare
/// precomputed segments instead of re-reading route strings per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    written: Box<str>,
    normalized: Box<str>,
    segments: Box<[Segment]>,
    trailing_wildcard: bool,
    params: usize,
}

impl RoutePattern {
    /// Parses a route of a Spin 3 application, where the base is always `/`.
    pub fn parse(route: &str) -> Result<Self, RouteError> {
        Self::with_base("/", route)
    }

    /// Parses a route of a Spin 2 application whose trigger sets `base`: the
    /// base is matched in front of the route and shows in
    /// `spin-matched-route`, but not in the two component-route headers.
    /// Spin 3 refuses any base but `/`.
    pub fn with_base(base: &str, route: &str) -> Result<Self, RouteError> {
        let normalized = normalize(base, route);
        let fail = |reason| RouteError {
            route: route.to_owned(),
            reason,
        };
        // Spin looks for the wildcard on the text, before any parsing.
        let (body, trailing_wildcard) = match normalized
            .strip_suffix("/...")
            .or_else(|| normalized.strip_suffix("/*"))
        {
            Some(prefix) => (prefix, true),
            None => (normalized.as_str(), false),
        };
        let segments = body
            .split('/')
            .filter(|s| !s.is_empty())
            .enumerate()
            .map(|(i, s)| parse_segment(s, i == 0).map_err(fail))
            .collect::<Result<Box<[_]>, _>>()?;
        let params = segments
            .iter()
            .filter(|s| matches!(s, Segment::Param(_)))
            .count();
        Ok(Self {
            written: route.into(),
            normalized: normalized.into(),
            segments,
            trailing_wildcard,
            params,
        })
    }

    /// The route as the manifest wrote it (`spin-raw-component-route`).
    pub fn as_written(&self) -> &str {
        &self.written
    }

    /// The base and the route joined as Spin joins them
    /// (`spin-matched-route`). For the root route `/` this is the empty
    /// string, as in Spin.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// The written route without a trailing `/...` (`spin-component-route`).
    /// Spin strips only `/...`, not `/*`, and works on the written text.
    pub fn component_route(&self) -> &str {
        self.written.strip_suffix("/...").unwrap_or(&self.written)
    }

    /// Whether the route ends in `/...` (or `/*`) and so takes a path info.
    pub fn has_trailing_wildcard(&self) -> bool {
        self.trailing_wildcard
    }

    /// The `:name`s, in order.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(name) => Some(&**name),
            Segment::Literal(_) => None,
        })
    }
}

impl FromStr for RoutePattern {
    type Err = RouteError;

    fn from_str(route: &str) -> Result<Self, RouteError> {
        Self::parse(route)
    }
}

impl fmt::Display for RoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

/// Spin's `sanitize_with_base`: the base made absolute (as Spin 2's trigger
/// did), each part with one trailing `/` removed, the route made absolute.
fn normalize(base: &str, route: &str) -> String {
    let base = base.strip_suffix('/').unwrap_or(base);
    let route_abs = route.starts_with('/');
    let route = route.strip_suffix('/').unwrap_or(route);
    let mut out = String::with_capacity(base.len() + route.len() + 2);
    if !base.is_empty() && !base.starts_with('/') {
        out.push('/');
    }
    out.push_str(base);
    // A relative route gets a `/` before the single trailing one is removed,
    // so `""` and `"/"` both end up as the root: nothing after the base.
    if !route_abs && !route.is_empty() {
        out.push('/');
    }
    out.push_str(route);
    out
}

fn parse_segment(segment: &str, first: bool) -> Result<Segment, RouteErrorKind> {
    let owned = || segment.to_owned();
    if segment == "..." || segment == "*" {
        return Err(RouteErrorKind::WildcardNotLast { segment: owned() });
    }
    if let Some(name) = segment.strip_prefix(':') {
        if name.is_empty() {
            return Err(RouteErrorKind::UnnamedParam);
        }
        if name.contains('.') {
            return Err(RouteErrorKind::PartialSegment { segment: owned() });
        }
        if !name.bytes().all(is_header_name_byte) {
            return Err(RouteErrorKind::BadParamName { name: name.into() });
        }
        return Ok(Segment::Param(name.into()));
    }
    if segment.starts_with('*') {
        return Err(RouteErrorKind::NamedWildcard { segment: owned() });
    }
    if !first && segment.starts_with('.') {
        return Err(RouteErrorKind::DotAfterSegment { segment: owned() });
    }
    // routefinder splits segments at `.` too, and reads a piece starting with
    // `:` or `*` as a capture.
    if segment
        .split('.')
        .skip(1)
        .any(|piece| piece.starts_with(':') || piece.starts_with('*'))
    {
        return Err(RouteErrorKind::PartialSegment { segment: owned() });
    }
    Ok(Segment::Literal(segment.into()))
}

/// RFC 9110 `tchar` without `.` (which Spin would have split on).
fn is_header_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-^_`|~".contains(&b)
}

/// What a `[[trigger.http]]`'s `route` field says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `route = "/users/:id/..."`.
    Pattern(RoutePattern),
    /// `route = { private = true }`: never matched from outside. (Spin's
    /// loader refuses `{ private = false }`; that check belongs with the
    /// manifest.)
    Private,
}

/// Anything [`Router::build`] accepts as a route, so callers can pass the
/// manifest's strings without parsing them first.
pub trait IntoRoute {
    /// Parses, if needed.
    fn into_route(self) -> Result<Route, RouteError>;
}

impl IntoRoute for Route {
    fn into_route(self) -> Result<Route, RouteError> {
        Ok(self)
    }
}

impl IntoRoute for RoutePattern {
    fn into_route(self) -> Result<Route, RouteError> {
        Ok(Route::Pattern(self))
    }
}

impl IntoRoute for &str {
    fn into_route(self) -> Result<Route, RouteError> {
        RoutePattern::parse(self).map(Route::Pattern)
    }
}

impl IntoRoute for &String {
    fn into_route(self) -> Result<Route, RouteError> {
        self.as_str().into_route()
    }
}

impl IntoRoute for String {
    fn into_route(self) -> Result<Route, RouteError> {
        self.as_str().into_route()
    }
}

/// A route that can never match, so the caller can warn as Spin does ("The
/// following component routes are duplicates and will never be used").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowedRoute {
    /// The unreachable route, as written.
    pub route: String,
    /// Its position in the list given to [`Router::build`].
    pub unused: usize,
    /// The position of the route that gets its requests instead.
    pub used: usize,
}

/// The route table. Build it once per application; `route` allocates only
/// for captured parameters.
#[derive(Debug)]
pub struct Router<T> {
    entries: Vec<Entry<T>>,
    /// `nodes[0]` is the root.
    nodes: Vec<Node>,
    shadowed: Vec<ShadowedRoute>,
}

#[derive(Debug)]
struct Entry<T> {
    pattern: RoutePattern,
    target: T,
    index: usize,
}

/// A trie over segments. Trying the literal child, then the parameter
/// child, then this node's wildcard visits matching routes in exactly
/// routefinder's precedence order, so the first hit is Spin's answer and the
/// cost is one sorted lookup per path segment, not one test per route.
#[derive(Debug, Default)]
struct Node {
    /// Sorted by text, for binary search.
    literals: Vec<(Box<str>, usize)>,
    param: Option<usize>,
    /// Entry whose route ends here.
    exact: Option<usize>,
    /// Entry whose route is this node's path plus `/...`.
    wildcard: Option<usize>,
}

impl<T> Router<T> {
    /// Builds the table from the manifest's routes in manifest order.
    /// Private routes are left out; the first invalid route fails the build.
    pub fn build<R, I>(routes: I) -> Result<Self, RouteError>
    where
        R: IntoRoute,
        I: IntoIterator<Item = (R, T)>,
    {
        let mut slots: Vec<Entry<T>> = Vec::new();
        let mut by_text: HashMap<Box<str>, usize> = HashMap::new();
        let mut shadowed = Vec::new();
        for (index, (route, target)) in routes.into_iter().enumerate() {
            let Route::Pattern(pattern) = route.into_route()? else {
                continue;
            };
            let entry = Entry {
                pattern,
                target,
                index,
            };
            // Spin keys its table on the written text: a repeat replaces the
            // earlier target but keeps the earlier position.
            match by_text.get(entry.pattern.as_written()) {
                Some(&slot) => {
                    let old = std::mem::replace(&mut slots[slot], entry);
                    shadowed.push(ShadowedRoute {
                        route: old.pattern.written.into(),
                        unused: old.index,
                        used: index,
                    });
                }
                None => {
                    by_text.insert(entry.pattern.written.clone(), slots.len());
                    slots.push(entry);
                }
            }
        }

        let mut router = Self {
            entries: Vec::with_capacity(slots.len()),
            nodes: vec![Node::default()],
            shadowed,
        };
        for entry in slots {
            let node = router.node_for(&entry.pattern.segments);
            let terminal = if entry.pattern.trailing_wildcard {
                &mut router.nodes[node].wildcard
            } else {
                &mut router.nodes[node].exact
            };
            match *terminal {
                // Same shape as an earlier route: routefinder tries the
                // earlier one first and it matches every path this one does.
                Some(winner) => router.shadowed.push(ShadowedRoute {
                    route: entry.pattern.written.into(),
                    unused: entry.index,
                    used: router.entries[winner].index,
                }),
                None => {
                    *terminal = Some(router.entries.len());
                    router.entries.push(entry);
                }
            }
        }
        Ok(router)
    }

    /// Walks down the trie along `segments`, adding nodes as needed.
    fn node_for(&mut self, segments: &[Segment]) -> usize {
        let mut node = 0;
        for segment in segments {
            let existing = match segment {
                Segment::Param(_) => self.nodes[node].param,
                Segment::Literal(text) => {
                    let literals = &self.nodes[node].literals;
                    literals
                        .binary_search_by(|(t, _)| (**t).cmp(&**text))
                        .ok()
                        .map(|i| literals[i].1)
                }
            };
            node = match existing {
                Some(child) => child,
                None => {
                    let child = self.nodes.len();
                    self.nodes.push(Node::default());
                    match segment {
                        Segment::Param(_) => self.nodes[node].param = Some(child),
                        Segment::Literal(text) => {
                            let literals = &mut self.nodes[node].literals;
                            let at = literals
                                .binary_search_by(|(t, _)| (**t).cmp(&**text))
                                .unwrap_or_else(|at| at);
                            literals.insert(at, (text.clone(), child));
                        }
                    }
                    child
                }
            };
        }
        node
    }

    /// Finds the route for a request path. Pass the URI's path as received
    /// (percent-encoded, no query): that is what Spin matches, and what ends
    /// up in `spin-path-info` and the `spin-path-match-*` headers.
    pub fn route<'a>(&'a self, path: &'a str) -> Option<RouteMatch<'a, T>> {
        let entry = &self.entries[self.find(0, segments_of(path))?];
        let pattern = &entry.pattern;

        let mut params = Vec::with_capacity(pattern.params);
        let mut rest = segments_of(path);
        // Offset of `rest` in `path`, to hand the path info out as a slice.
        let mut offset = path.len() - path.trim_start_matches('/').len();
        for segment in pattern.segments.iter() {
            let Some(r) = rest else { break };
            let (value, after) = split_segment(r);
            if let Segment::Param(name) = segment {
                params.push((&**name, value));
            }
            offset += value.len() + 1;
            rest = after;
        }
        let path_info = if pattern.trailing_wildcard {
            path_info(path, rest, offset)
        } else {
            Cow::Borrowed("")
        };
        Some(RouteMatch {
            target: &entry.target,
            pattern,
            params,
            path_info,
        })
    }

    /// Depth-first in precedence order; see [`Node`]. `rest` is `None` once
    /// the path has no segments left. Recursion only follows trie edges, so
    /// its depth is bounded by the longest route, not by the request.
    fn find(&self, node: usize, rest: Option<&str>) -> Option<usize> {
        let node = &self.nodes[node];
        let Some(rest) = rest else {
            // The path ended here: a route ending here beats a wildcard
            // taking nothing, because routefinder prefers the shorter route.
            return node.exact.or(node.wildcard);
        };
        let (segment, after) = split_segment(rest);
        if let Ok(i) = node.literals.binary_search_by(|(t, _)| (**t).cmp(segment)) {
            if let Some(hit) = self.find(node.literals[i].1, after) {
                return Some(hit);
            }
        }
        if let Some(child) = node.param {
            if let Some(hit) = self.find(child, after) {
                return Some(hit);
            }
        }
        node.wildcard
    }

    /// Routes that will never be matched, to warn about at start-up.
    pub fn shadowed(&self) -> &[ShadowedRoute] {
        &self.shadowed
    }

    /// The reachable routes and their targets, in manifest order, for the
    /// start-up listing.
    pub fn routes(&self) -> impl Iterator<Item = (&RoutePattern, &T)> {
        self.entries.iter().map(|e| (&e.pattern, &e.target))
    }
}

/// The path without its leading and trailing `/`, or `None` for the root.
fn segments_of(path: &str) -> Option<&str> {
    let trimmed = path.trim_matches('/');
    (!trimmed.is_empty()).then_some(trimmed)
}

/// First segment and the rest. The rest is never `Some("")` because the
/// path was trimmed of trailing `/`, so only inner segments can be empty.
fn split_segment(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once('/') {
        Some((segment, after)) => (segment, Some(after)),
        None => (rest, None),
    }
}

/// Spin's path info: what the wildcard took, with a `/` in front and the
/// request's trailing `/` kept (`/test/...` gives `""` for `/test`, `/` for
/// `/test/`, `/hello/` for `/test/hello/`). Both slashes are already in the
/// path around the capture, so this borrows except for a path that does not
/// start with `/`.
fn path_info<'a>(path: &'a str, capture: Option<&'a str>, offset: usize) -> Cow<'a, str> {
    let slash = path.ends_with('/');
    let Some(capture) = capture else {
        return Cow::Borrowed(if slash { "/" } else { "" });
    };
    let end = offset + capture.len() + usize::from(slash);
    match offset.checked_sub(1).and_then(|start| path.get(start..end)) {
        Some(info) if info.starts_with('/') => Cow::Borrowed(info),
        _ if slash => Cow::Owned(format!("/{capture}/")),
        _ => Cow::Owned(format!("/{capture}")),
    }
}

/// The route a path matched, what it captured, and where it goes.
#[derive(Debug)]
pub struct RouteMatch<'a, T> {
    target: &'a T,
    pattern: &'a RoutePattern,
    params: Vec<(&'a str, &'a str)>,
    path_info: Cow<'a, str>,
}

impl<'a, T> RouteMatch<'a, T> {
    /// What the route was registered with (e.g. the component id).
    pub fn target(&self) -> &'a T {
        self.target
    }

    /// The route that matched.
    pub fn pattern(&self) -> &'a RoutePattern {
        self.pattern
    }

    /// `(name, value)` per `:name`, in route order, values as in the path
    /// (still percent-encoded).
    pub fn params(&self) -> &[(&'a str, &'a str)] {
        &self.params
    }

    /// The value of `:name`; the last one if the route repeats the name, as
    /// in Spin.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        self.params
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    /// What the trailing wildcard took (`spin-path-info`); empty for a route
    /// without one.
    pub fn path_info(&self) -> &str {
        &self.path_info
    }
}

/// The `spin-*` headers Spin adds to the request it hands the component, in
/// Spin's order. `full_url` is `scheme://host` plus the path and query as
/// received (Spin takes the host from the `Host` header, `localhost` if
/// there is none); `base_path` is `/` for Spin 3 applications. The caller
/// must replace, not append to, any header of these names the client sent.
pub fn spin_headers<'a, T>(
    matched: &'a RouteMatch<'a, T>,
    full_url: &'a str,
    base_path: &'a str,
    client_addr: SocketAddr,
) -> Vec<(Cow<'static, str>, Cow<'a, str>)> {
    let pattern = matched.pattern;
    let mut headers: Vec<(Cow<'static, str>, Cow<'a, str>)> = vec![
        (PATH_INFO.into(), matched.path_info().into()),
        (FULL_URL.into(), full_url.into()),
        (MATCHED_ROUTE.into(), pattern.normalized().into()),
        (BASE_PATH.into(), base_path.into()),
        (RAW_COMPONENT_ROUTE.into(), pattern.as_written().into()),
        (COMPONENT_ROUTE.into(), pattern.component_route().into()),
        (CLIENT_ADDR.into(), client_addr.to_string().into()),
    ];
    let fixed = headers.len();
    for &(name, value) in matched.params() {
        // Spin upper-cases the name into `SPIN_PATH_MATCH_<NAME>` and then
        // turns `_` into `-` and lower-cases the whole key.
        let name = format!("{PATH_MATCH_PREFIX}{}", name.to_ascii_lowercase()).replace('_', "-");
        match headers[fixed..].iter_mut().find(|(n, _)| *n == name) {
            // A repeated name: the later capture wins, as in Spin's map.
            Some(existing) => existing.1 = Cow::Borrowed(value),
            None => headers.push((name.into(), Cow::Borrowed(value))),
        }
    }
    headers
}

#[cfg(test)]
// Table tests read best as tuples of what goes in and what comes out.
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;

    type Table = &'static [(&'static str, &'static str)];

    fn router(routes: Table) -> Router<&'static str> {
        match Router::build(routes.iter().map(|&(route, target)| (route, target))) {
            Ok(router) => router,
            Err(e) => panic!("{e}"),
        }
    }

    /// Each case: what it shows, the table, the path, the expected target.
    fn check(cases: &[(&str, Table, &str, Option<&str>)]) {
        for &(case, routes, path, want) in cases {
            let got = router(routes).route(path).map(|m| *m.target());
            assert_eq!(got, want, "{case}: `{path}`");
        }
    }

    #[test]
    fn exact_beats_wildcard() {
        check(&[
            (
                "an exact route wins over the catch-all",
                &[("/...", "all"), ("/one", "one")],
                "/one",
                Some("one"),
            ),
            (
                "an exact route wins over its own prefix wildcard",
                &[
                    ("/users/...", "users"),
                    ("/users/admin", "admin"),
                    ("/...", "shop"),
                ],
                "/users/admin",
                Some("admin"),
            ),
            (
                "a wildcard route's bare prefix goes to the exact route if there is one",
                &[("/users/...", "users"), ("/users", "list")],
                "/users",
                Some("list"),
            ),
            (
                "the root route wins over the catch-all for `/`",
                &[("/...", "all"), ("/", "root")],
                "/",
                Some("root"),
            ),
        ]);
    }

    #[test]
    fn longest_prefix_wildcard_wins() {
        let one_two_three: Table = &[
            ("/one/...", "1"),
            ("/one/two/...", "12"),
            ("/one/two/three/...", "123"),
        ];
        let reversed: Table = &[
            ("/one/two/three/...", "123"),
            ("/one/two/...", "12"),
            ("/one/...", "1"),
        ];
        check(&[
            (
                "the deepest prefix wins",
                one_two_three,
                "/one/two/three/four",
                Some("123"),
            ),
            (
                "whatever the manifest order",
                reversed,
                "/one/two/three/four",
                Some("123"),
            ),
            (
                "a shorter path falls back a level",
                one_two_three,
                "/one/two/x",
                Some("12"),
            ),
            (
                "a wildcard takes its bare prefix",
                one_two_three,
                "/one/two",
                Some("12"),
            ),
            (
                "the docs' example: `/users/1` goes to `/users/...` not `/...`",
                &[
                    ("/users/...", "users"),
                    ("/users/admin", "admin"),
                    ("/...", "shop"),
                ],
                "/users/1",
                Some("users"),
            ),
        ]);
    }

    #[test]
    fn literal_beats_param_beats_wildcard_at_the_first_difference() {
        check(&[
            (
                "a literal segment wins over a parameter",
                &[("/users/:id", "param"), ("/users/me", "me")],
                "/users/me",
                Some("me"),
            ),
            (
                "a parameter wins over a wildcard",
                &[("/users/...", "wild"), ("/users/:id", "param")],
                "/users/42",
                Some("param"),
            ),
            (
                "a parameter route with a wildcard still beats a shorter wildcard",
                &[("/users/...", "wild"), ("/users/:id/...", "param")],
                "/users/42/orders",
                Some("param"),
            ),
            (
                "the leftmost difference decides, even against an all-exact route",
                &[("/:x/b", "param-first"), ("/a/...", "literal-first")],
                "/a/b",
                Some("literal-first"),
            ),
            (
                "a parameter first loses to a literal first",
                &[("/a/:y/c", "literal-first"), ("/:x/b/c", "param-first")],
                "/a/b/c",
                Some("literal-first"),
            ),
            (
                "backtracking: the literal branch dead-ends, the parameter one matches",
                &[("/a/x", "ax"), ("/:p/y", "py")],
                "/a/y",
                Some("py"),
            ),
        ]);
    }

    #[test]
    fn param_segments_capture_names() {
        let cases: &[(&str, &str, &str, &[(&str, &str)], &str)] = &[
            (
                "one parameter",
                "/users/:id",
                "/users/42",
                &[("id", "42")],
                "",
            ),
            (
                "a parameter between literals",
                "/users/:userid/edit",
                "/users/alice/edit",
                &[("userid", "alice")],
                "",
            ),
            (
                "parameters and a trailing wildcard",
                "/users/:userid/cart/...",
                "/users/1/cart/items/3/edit",
                &[("userid", "1")],
                "/items/3/edit",
            ),
            (
                "a parameter keeps dots and percent-escapes as sent",
                "/files/:name",
                "/files/a%20b.txt",
                &[("name", "a%20b.txt")],
                "",
            ),
            (
                "an empty inner segment is captured as empty",
                "/a/:x/b",
                "/a//b",
                &[("x", "")],
                "",
            ),
            (
                "a repeated name captures both",
                "/:a/:a",
                "/1/2",
                &[("a", "1"), ("a", "2")],
                "",
            ),
        ];
        for &(case, route, path, want, info) in cases {
            let r = match Router::build([(route, ())]) {
                Ok(r) => r,
                Err(e) => panic!("{case}: {e}"),
            };
            let m = r.route(path);
            let got = m.map(|m| (m.params().to_vec(), m.path_info().to_owned()));
            assert_eq!(got, Some((want.to_vec(), info.to_owned())), "{case}");
        }

        let r = router(&[("/:a/:a", "x")]);
        let last = r.route("/1/2").and_then(|m| m.param("a"));
        assert_eq!(last, Some("2"), "a repeated name reads as its last value");

        check(&[
            (
                "a parameter matches one segment only",
                &[("/users/:userid/edit", "edit")],
                "/users/1/edit/cart",
                None,
            ),
            (
                "a parameter needs a segment",
                &[("/users/:id", "user")],
                "/users",
                None,
            ),
            (
                "nor does an empty last segment count",
                &[("/users/:id", "user")],
                "/users/",
                None,
            ),
        ]);
    }

    #[test]
    fn catch_all_matches_everything_else() {
        let table: Table = &[("/...", "all"), ("/one", "one"), ("/two/...", "two")];
        check(&[
            ("the root", table, "/", Some("all")),
            ("an unknown path", table, "/foo/bar", Some("all")),
            ("a trailing slash", table, "/abc/", Some("all")),
            (
                "a path with a query, if the caller leaves it on",
                table,
                "/a/b?c=d",
                Some("all"),
            ),
            (
                "a sibling of an exact route",
                table,
                "/one/more",
                Some("all"),
            ),
            (
                "a prefix that only looks alike",
                table,
                "/twofold",
                Some("all"),
            ),
            (
                "but not what a longer prefix takes",
                table,
                "/two/x",
                Some("two"),
            ),
        ]);
        let r = router(&[("/...", "all")]);
        let infos: Vec<_> = ["/", "/1/2/3", "/1/2/3/"]
            .iter()
            .map(|p| r.route(p).map(|m| m.path_info().to_owned()))
            .collect();
        let want = ["/", "/1/2/3", "/1/2/3/"].map(|s| Some(s.to_owned()));
        assert_eq!(infos, want, "the catch-all's path info is the whole path");
    }

    #[test]
    fn unmatched_is_none() {
        check(&[
            ("an empty table", &[], "/", None),
            (
                "an exact route is only itself",
                &[("/cart", "cart")],
                "/cart/checkout",
                None,
            ),
            (
                "a literal must be the whole segment",
                &[("/cart", "cart")],
                "/carts",
                None,
            ),
            (
                "a wildcard needs its prefix",
                &[("/users/...", "u")],
                "/user",
                None,
            ),
            (
                "matching is case-sensitive",
                &[("/cart", "cart")],
                "/Cart",
                None,
            ),
            (
                "the root route is only the root",
                &[("/", "root")],
                "/x",
                None,
            ),
            (
                "an empty inner segment matches no literal",
                &[("/a/b", "ab")],
                "/a//b",
                None,
            ),
        ]);
    }

    #[test]
    fn private_routes_never_match() {
        let routes = [
            (Route::Private, "internal"),
            (
                Route::Pattern(RoutePattern::parse("/...").expect("valid")),
                "public",
            ),
        ];
        let r = Router::build(routes).expect("valid");
        for path in ["/", "/internal", "/anything/at/all"] {
            assert_eq!(r.route(path).map(|m| *m.target()), Some("public"), "{path}");
        }
        let only_private = Router::build([(Route::Private, "internal")]).expect("valid");
        assert!(only_private.route("/").is_none());
        assert_eq!(only_private.routes().count(), 0);
    }

    #[test]
    fn trailing_slashes_are_ignored_for_matching_but_kept_in_path_info() {
        check(&[
            (
                "a request's trailing slash",
                &[("/cart", "cart")],
                "/cart/",
                Some("cart"),
            ),
            (
                "several trailing slashes",
                &[("/cart", "cart")],
                "/cart///",
                Some("cart"),
            ),
            (
                "leading slashes",
                &[("/cart", "cart")],
                "//cart",
                Some("cart"),
            ),
            (
                "a route's trailing slash",
                &[("/cart/", "cart")],
                "/cart",
                Some("cart"),
            ),
            (
                "a relative route",
                &[("cart", "cart")],
                "/cart",
                Some("cart"),
            ),
            (
                "`...` with a slash after it",
                &[("/a/.../", "a")],
                "/a/b",
                Some("a"),
            ),
            ("`*` as the wildcard", &[("/a/*", "a")], "/a/b", Some("a")),
        ]);
        // Spin's own integration test (tests/integration.rs, `http-routing`).
        let r = router(&[("/users/:userid/...", "u")]);
        for (path, info) in [
            ("/users/42", ""),
            ("/users/42/", "/"),
            ("/users/42/hello", "/hello"),
            ("/users/42/hello/", "/hello/"),
        ] {
            let got = r
                .route(path)
                .map(|m| (m.param("userid"), m.path_info().to_owned()));
            assert_eq!(got, Some((Some("42"), info.to_owned())), "{path}");
        }
        let r = router(&[("/a/...", "a")]);
        let info = r.route("/a//b").map(|m| m.path_info().to_owned());
        assert_eq!(
            info.as_deref(),
            Some("//b"),
            "an inner empty segment stays in"
        );
        let r = router(&[("/...", "a")]);
        let info = r.route("x/y").map(|m| m.path_info().to_owned());
        assert_eq!(
            info.as_deref(),
            Some("/x/y"),
            "a path without a leading slash"
        );
    }

    #[test]
    fn a_route_written_twice_keeps_the_last_and_reports_the_first() {
        let r = router(&[("/", "root"), ("/foo", "first"), ("/foo", "second")]);
        assert_eq!(r.route("/foo").map(|m| *m.target()), Some("second"));
        let want = ShadowedRoute {
            route: "/foo".into(),
            unused: 1,
            used: 2,
        };
        assert_eq!(r.shadowed(), [want]);
        assert_eq!(r.routes().count(), 2);
    }

    #[test]
    fn routes_of_the_same_shape_keep_the_first() {
        let cases: &[(&str, Table, &str)] = &[
            (
                "different parameter names",
                &[("/:a", "first"), ("/:b", "second")],
                "/x",
            ),
            (
                "a trailing slash",
                &[("/foo", "first"), ("/foo/", "second")],
                "/foo",
            ),
            (
                "`...` and `*`",
                &[("/w/...", "first"), ("/w/*", "second")],
                "/w/x",
            ),
        ];
        for &(case, routes, path) in cases {
            let r = router(routes);
            assert_eq!(r.route(path).map(|m| *m.target()), Some("first"), "{case}");
            let unused: Vec<_> = r.shadowed().iter().map(|s| (s.unused, s.used)).collect();
            assert_eq!(unused, [(1, 0)], "{case}");
        }
        // A repeat takes the first occurrence's place, so it beats a
        // same-shaped route declared between the two.
        let r = router(&[("/:a", "a1"), ("/:b", "b"), ("/:a", "a2")]);
        assert_eq!(r.route("/x").map(|m| *m.target()), Some("a2"));
    }

    #[test]
    fn invalid_patterns_are_rejected_naming_the_route() {
        let cases = [
            ("/users/:", "`:` needs a name"),
            ("/files/*rest", "a wildcard takes no name"),
            ("/a/.../b", "`...` can only be the last segment"),
            ("/a/*/b", "`*` can only be the last segment"),
            ("/a/...//", "`...` can only be the last segment"),
            ("/files/:name.json", "a parameter must be a whole segment"),
            ("/v.:n", "a parameter must be a whole segment"),
            ("/f.*", "a parameter must be a whole segment"),
            ("/users/:user id", "may only use letters, digits"),
            ("/users/:ü", "may only use letters, digits"),
            ("/api/.well-known", "starts with `.` after another segment"),
            ("/a/..", "starts with `.` after another segment"),
        ];
        for (route, reason) in cases {
            let err = match RoutePattern::parse(route) {
                Ok(p) => panic!("`{route}` was accepted as {p:?}"),
                Err(e) => e.to_string(),
            };
            let named = format!("invalid route `{route}`: ");
            assert!(err.starts_with(&named), "{err}");
            assert!(err.contains(reason), "{err}");
        }
        let err = Router::build([("/ok", 1), ("/bad/:", 2)])
            .map(|_| ())
            .map_err(|e| e.route);
        assert_eq!(
            err,
            Err("/bad/:".to_owned()),
            "build fails on the bad route"
        );

        for route in [
            "",
            "/",
            "/.well-known/x",
            "/v1.0/x",
            "/a:b",
            "/foo...",
            "/a./b",
            "/:a*",
        ] {
            assert!(
                RoutePattern::parse(route).is_ok(),
                "`{route}` is a valid route"
            );
        }
    }

    #[test]
    fn patterns_are_normalized_as_spin_joins_base_and_route() {
        let cases = [
            // (base, route, normalized, component route)
            ("/", "/foo/...", "/foo/...", "/foo"),
            ("/", "/", "", "/"),
            ("/", "", "", ""),
            ("/", "/...", "/...", ""),
            ("/", "foo", "/foo", "foo"),
            ("/", "/foo/", "/foo", "/foo/"),
            ("/", "/foo/*", "/foo/*", "/foo/*"),
            ("/base", "/foo/...", "/base/foo/...", "/foo"),
            ("/base/", "/", "/base", "/"),
            ("base", "foo", "/base/foo", "foo"),
        ];
        for (base, route, normalized, component) in cases {
            let p = RoutePattern::with_base(base, route).expect("valid");
            let got = (p.as_written(), p.normalized(), p.component_route());
            assert_eq!(
                got,
                (route, normalized, component),
                "base `{base}`, route `{route}`"
            );
        }
        let r = Router::build([(
            RoutePattern::with_base("/base", "/foo/...").expect("valid"),
            1,
        )])
        .expect("valid");
        assert_eq!(
            r.route("/base/foo/bar")
                .map(|m| m.path_info().to_owned())
                .as_deref(),
            Some("/bar")
        );
        assert!(
            r.route("/foo/bar").is_none(),
            "the base is part of the match"
        );
    }

    #[test]
    fn spin_headers_match_spins_documented_examples() {
        let client: SocketAddr = ([127, 0, 0, 1], 53152).into();
        // (where the example is from, route, base, path, full URL, expected headers)
        let cases: &[(&str, &str, &str, &str, &str, &[(&str, &str)])] = &[
            (
                "the Spin 3 docs' table (spin-docs content/v3/http-trigger.md)",
                "/users/:userid/cart/...",
                "/",
                "/users/1/cart/items/3/edit",
                "https://example.com:8080/users/1/cart/items/3/edit?theme=pink",
                &[
                    (PATH_INFO, "/items/3/edit"),
                    (
                        FULL_URL,
                        "https://example.com:8080/users/1/cart/items/3/edit?theme=pink",
                    ),
                    (MATCHED_ROUTE, "/users/:userid/cart/..."),
                    (BASE_PATH, "/"),
                    (RAW_COMPONENT_ROUTE, "/users/:userid/cart/..."),
                    (COMPONENT_ROUTE, "/users/:userid/cart"),
                    (CLIENT_ADDR, "127.0.0.1:53152"),
                    ("spin-path-match-userid", "1"),
                ],
            ),
            (
                "Spin's headers.rs test: a prefix wildcard",
                "/foo/...",
                "/",
                "/foo/bar",
                "https://fermyon.dev/foo/bar?key1=value1&key2=value2",
                &[
                    (PATH_INFO, "/bar"),
                    (
                        FULL_URL,
                        "https://fermyon.dev/foo/bar?key1=value1&key2=value2",
                    ),
                    (MATCHED_ROUTE, "/foo/..."),
                    (BASE_PATH, "/"),
                    (RAW_COMPONENT_ROUTE, "/foo/..."),
                    (COMPONENT_ROUTE, "/foo"),
                    (CLIENT_ADDR, "127.0.0.1:53152"),
                ],
            ),
            (
                "Spin's headers.rs test: a parameter and a trailing wildcard",
                "/foo/:userid/...",
                "/",
                "/foo/42/bar",
                "https://fermyon.dev/foo/42/bar?key1=value1&key2=value2",
                &[
                    (PATH_INFO, "/bar"),
                    (
                        FULL_URL,
                        "https://fermyon.dev/foo/42/bar?key1=value1&key2=value2",
                    ),
                    (MATCHED_ROUTE, "/foo/:userid/..."),
                    (BASE_PATH, "/"),
                    (RAW_COMPONENT_ROUTE, "/foo/:userid/..."),
                    (COMPONENT_ROUTE, "/foo/:userid"),
                    (CLIENT_ADDR, "127.0.0.1:53152"),
                    ("spin-path-match-userid", "42"),
                ],
            ),
            (
                "a prefix wildcard requested with a query",
                "/api/...",
                "/",
                "/api/users/1",
                "http://localhost:3000/api/users/1?x=1",
                &[
                    (PATH_INFO, "/users/1"),
                    (FULL_URL, "http://localhost:3000/api/users/1?x=1"),
                    (MATCHED_ROUTE, "/api/..."),
                    (BASE_PATH, "/"),
                    (RAW_COMPONENT_ROUTE, "/api/..."),
                    (COMPONENT_ROUTE, "/api"),
                    (CLIENT_ADDR, "127.0.0.1:53152"),
                ],
            ),
            (
                "an exact route with a parameter has no path info",
                "/users/:id",
                "/",
                "/users/42",
                "http://localhost:3000/users/42",
                &[
                    (PATH_INFO, ""),
                    (FULL_URL, "http://localhost:3000/users/42"),
                    (MATCHED_ROUTE, "/users/:id"),
                    (BASE_PATH, "/"),
                    (RAW_COMPONENT_ROUTE, "/users/:id"),
                    (COMPONENT_ROUTE, "/users/:id"),
                    (CLIENT_ADDR, "127.0.0.1:53152"),
                    ("spin-path-match-id", "42"),
                ],
            ),
            (
                "a Spin 2 base is in the matched route only (Spin 2.7 lib.rs test)",
                "/foo/...",
                "/base",
                "/base/foo/bar",
                "https://fermyon.dev/base/foo/bar?key1=value1&key2=value2",
                &[
                    (PATH_INFO, "/bar"),
                    (
                        FULL_URL,
                        "https://fermyon.dev/base/foo/bar?key1=value1&key2=value2",
                    ),
                    (MATCHED_ROUTE, "/base/foo/..."),
                    (BASE_PATH, "/base"),
                    (RAW_COMPONENT_ROUTE, "/foo/..."),
                    (COMPONENT_ROUTE, "/foo"),
                    (CLIENT_ADDR, "127.0.0.1:53152"),
                ],
            ),
            (
                "the root route's matched route is empty, as Spin joins it",
                "/",
                "/",
                "/",
                "http://localhost:3000/",
                &[
                    (PATH_INFO, ""),
                    (FULL_URL, "http://localhost:3000/"),
                    (MATCHED_ROUTE, ""),
                    (BASE_PATH, "/"),
                    (RAW_COMPONENT_ROUTE, "/"),
                    (COMPONENT_ROUTE, "/"),
                    (CLIENT_ADDR, "127.0.0.1:53152"),
                ],
            ),
            (
                "the catch-all's component route is empty",
                "/...",
                "/",
                "/",
                "http://localhost:3000/",
                &[
                    (PATH_INFO, "/"),
                    (FULL_URL, "http://localhost:3000/"),
                    (MATCHED_ROUTE, "/..."),
                    (BASE_PATH, "/"),
                    (RAW_COMPONENT_ROUTE, "/..."),
                    (COMPONENT_ROUTE, ""),
                    (CLIENT_ADDR, "127.0.0.1:53152"),
                ],
            ),
            (
                "parameter names are lower-cased and `_` becomes `-`",
                "/orgs/:Org_ID/:a/:a",
                "/",
                "/orgs/7/x/y",
                "http://h/orgs/7/x/y",
                &[
                    (PATH_INFO, ""),
                    (FULL_URL, "http://h/orgs/7/x/y"),
                    (MATCHED_ROUTE, "/orgs/:Org_ID/:a/:a"),
                    (BASE_PATH, "/"),
                    (RAW_COMPONENT_ROUTE, "/orgs/:Org_ID/:a/:a"),
                    (COMPONENT_ROUTE, "/orgs/:Org_ID/:a/:a"),
                    (CLIENT_ADDR, "127.0.0.1:53152"),
                    ("spin-path-match-org-id", "7"),
                    ("spin-path-match-a", "y"),
                ],
            ),
        ];
        for &(case, route, base, path, url, want) in cases {
            let pattern = RoutePattern::with_base(base, route).expect("valid");
            let r = Router::build([(pattern, ())]).expect("valid");
            let Some(m) = r.route(path) else {
                panic!("{case}: `{path}` did not match `{route}`")
            };
            let got: Vec<(String, String)> = spin_headers(&m, url, base, client)
                .into_iter()
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect();
            let want: Vec<(String, String)> = want
                .iter()
                .map(|&(n, v)| (n.to_owned(), v.to_owned()))
                .collect();
            assert_eq!(got, want, "{case}");
        }
        let v6: SocketAddr = "[::1]:8777".parse().expect("valid");
        let r = router(&[("/", "root")]);
        let m = r.route("/").expect("matches");
        let addr = spin_headers(&m, "http://h/", "/", v6)
            .into_iter()
            .find(|(n, _)| n == CLIENT_ADDR)
            .map(|(_, v)| v.into_owned());
        assert_eq!(
            addr.as_deref(),
            Some("[::1]:8777"),
            "IPv6 peers in brackets"
        );
    }

    #[test]
    fn a_dot_leading_route_ranks_as_a_literal_whatever_the_manifest_order() {
        // Spin 3 answers the second of each pair differently; see the module
        // doc.
        check(&[
            (
                "a `.well-known` prefix beats the catch-all declared after it",
                &[("/.well-known/...", "wk"), ("/...", "all")],
                "/.well-known/acme",
                Some("wk"),
            ),
            (
                "and the one declared before it",
                &[("/...", "all"), ("/.well-known/...", "wk")],
                "/.well-known/acme",
                Some("wk"),
            ),
            (
                "an exact route still beats a parameter",
                &[("/a/b", "ab"), ("/.well-known/x", "wk"), ("/a/:x", "ax")],
                "/a/b",
                Some("ab"),
            ),
        ]);
    }

    #[test]
    fn the_trie_agrees_with_a_scan_in_routefinder_order() {
        // Reference: every route tested in routefinder's order (segment kinds
        // compared left to right, literal > parameter > wildcard, shorter
        // first when one runs out, then manifest order), first match wins.
        fn kinds(p: &RoutePattern) -> Vec<u8> {
            let mut k: Vec<u8> = p
                .segments
                .iter()
                .map(|s| match s {
                    Segment::Literal(_) => 2,
                    Segment::Param(_) => 1,
                })
                .collect();
            if p.trailing_wildcard {
                k.push(0);
            }
            k
        }
        fn rank(a: &RoutePattern, b: &RoutePattern) -> std::cmp::Ordering {
            let (ka, kb) = (kinds(a), kinds(b));
            ka.iter()
                .zip(&kb)
                .map(|(x, y)| y.cmp(x))
                .find(|o| o.is_ne())
                .unwrap_or_else(|| ka.len().cmp(&kb.len()))
        }
        fn scan(p: &RoutePattern, path: &str) -> Option<String> {
            let t = path.trim_matches('/');
            let ps: Vec<&str> = if t.is_empty() {
                vec![]
            } else {
                t.split('/').collect()
            };
            let k = p.segments.len();
            let fits = if p.trailing_wildcard {
                ps.len() >= k
            } else {
                ps.len() == k
            };
            let same = p.segments.iter().zip(&ps).all(|(s, v)| match s {
                Segment::Literal(l) => **l == **v,
                Segment::Param(_) => true,
            });
            if !(fits && same) {
                return None;
            }
            if !p.trailing_wildcard {
                return Some(String::new());
            }
            let rest = ps[k..].join("/");
            let slash = if path.ends_with('/') { "/" } else { "" };
            Some(match rest.is_empty() {
                true => slash.to_owned(),
                false => format!("/{rest}{slash}"),
            })
        }

        // A small deterministic generator: no dev-dependency for one test.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..200 {
            let mut routes = Vec::new();
            for i in 0..(1 + next(12)) {
                let mut route = String::new();
                for _ in 0..next(4) {
                    route.push('/');
                    route.push_str(["a", "b", ":x", ":y"][next(4) as usize]);
                }
                if next(2) == 0 {
                    route.push_str("/...");
                }
                routes.push((route, i));
            }
            let r = Router::build(routes.iter().map(|(p, i)| (p, *i))).expect("valid");
            let mut reference: Vec<_> = r.entries.iter().collect();
            reference.sort_by(|x, y| rank(&x.pattern, &y.pattern));
            for _ in 0..30 {
                let mut path = String::from(["/", "", "//"][next(3) as usize]);
                let segs: Vec<_> = (0..next(5))
                    .map(|_| ["a", "b", "c", ""][next(4) as usize])
                    .collect();
                path.push_str(&segs.join("/"));
                path.push_str(["", "/", "//"][next(3) as usize]);
                let want = reference
                    .iter()
                    .find_map(|e| scan(&e.pattern, &path).map(|info| (e.target, info)));
                let got = r
                    .route(&path)
                    .map(|m| (*m.target(), m.path_info().to_owned()));
                assert_eq!(got, want, "routes {routes:?}, path `{path}`");
            }
        }
    }
}
