//! `spin.toml`, Spin manifest v2, read into plain values.
//!
//! The shape is Spin's (`crates/manifest/src/schema/v2.rs` and
//! `schema/common.rs` in spinframework/spin, the HTTP trigger config in
//! `crates/http/src/config.rs`), restated here:
//!
//! - `spin_manifest_version = 2` (an integer; v1 manifests said `"1"` and
//!   are converted first, see [`super::manifest_v1`]).
//! - `[application]`: `name`, optional `version`, `description`, `authors`.
//! - `[variables]`: `name = { default = "..", required = true, secret = true }`.
//! - `[[trigger.http]]`: `route` (a path, or `{ private = true }`),
//!   `component` (an id, or an inline component table), optional `id` and
//!   `executor = { type = "http" | "spin" | "wagi", argv, entrypoint }`.
//! - `[component.<id>]`: `source` (a path relative to the manifest,
//!   `{ url, digest }` or `{ registry, package, version }`), `files`,
//!   `exclude_files`, `environment`, `variables`, `allowed_outbound_hosts`,
//!   `key_value_stores`, `sqlite_databases`, `ai_models`, `description`,
//!   and `build`, which is `spin build`'s
//!   business, not ours.
//!
//! Inline components get the id Spin gives them (`normalize.rs`): a trigger
//! without an `id` is named `<component>-http-trigger` (references) or
//! `http-trigger<n>`, and its inline component `<trigger id>-component`,
//! or `inline-component<n>` when that is taken or not kebab-case. Matching
//! Spin matters because the id shows up in logs and in `spin-*` tooling.
//!
//! Keys Spin knows but this host does not implement, and keys nobody knows,
//! are warnings rather than errors: a manifest that runs under Spin should
//! at least load here, and the warning says what was dropped.
//!
//! Pure except for [`load`] reading the file and checking that local
//! component sources exist, so every rule is pinned by a test below.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::container::settings::{Cpus, Health, Settings, Start, RUNTIMES};
use crate::router::{Route, RouteError, RoutePattern};

/// Spin's Wagi entrypoint when `executor` names none.
pub const WAGI_DEFAULT_ENTRYPOINT: &str = "_start";
/// Spin's Wagi argv when `executor` gives none.
pub const WAGI_DEFAULT_ARGV: &str = "${SCRIPT_NAME} ${ARGS}";

/// A manifest that parsed and passed every check, with what was ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedManifest {
    /// The application.
    pub manifest: Manifest,
    /// The manifest's directory; `files` and local sources are relative to
    /// it, as in Spin.
    pub dir: PathBuf,
    /// Keys that were accepted but ignored, each naming its key path; the
    /// caller decides whether to print or refuse them.
    pub warnings: Vec<String>,
}

/// A Spin application, with inline components moved into `components`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `[application]`.
    pub application: Application,
    /// `[variables]`, by name.
    pub variables: BTreeMap<String, Variable>,
    /// `[[trigger.http]]`, in manifest order (route precedence does not
    /// depend on it, but duplicate routes do).
    pub http_triggers: Vec<HttpTrigger>,
    /// `[component.<id>]` plus the inline components, by id.
    pub components: BTreeMap<String, Component>,
}

/// `[application]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    /// `name`.
    pub name: String,
    /// `version`.
    pub version: Option<String>,
    /// `description`.
    pub description: Option<String>,
}

/// An application variable. Components see it only through their own
/// `variables` templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// Used when no provider gives a value.
    pub default: Option<String>,
    /// Loading fails at run time when no provider gives a value.
    pub required: bool,
    /// Never logged.
    pub secret: bool,
    /// `description`.
    pub description: Option<String>,
}

/// One `[[trigger.http]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTrigger {
    /// `id`, or the one Spin would generate.
    pub id: String,
    /// Already parsed, so a bad route fails at load, not at first request.
    pub route: Route,
    /// The id of a component in [`Manifest::components`].
    pub component: String,
    /// How the component is called.
    pub executor: Executor,
    /// `split = { <component> = <weight>, ... }`: requests shared between
    /// components by weight (a migration's traffic split); empty: all go
    /// to `component`.
    pub split: Vec<(String, u32)>,
    /// `mirror = { to = "<component>", compare_headers = [...], methods =
    /// [...] }`: a copy of each request (of those methods) goes to another component, whose answers are
    /// compared with the served ones.
    pub mirror: Option<MirrorTo>,
    /// `rollout = { from, to, steps, step_time, max_error_rate,
    /// max_p99_ratio, max_mismatch_rate, min_requests, mirror_methods,
    /// compare_headers }` (a wasmhost extension): the route moved from one
    /// component to another step by step while the figures hold.
    pub rollout: Option<crate::rollout::Policy>,
}

/// `mirror` of a trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorTo {
    /// The component that gets the copies.
    pub to: String,
    /// Response headers compared besides status and body.
    pub compare_headers: Vec<String>,
    /// Methods copied (uppercase); empty: every request.
    pub methods: Vec<String>,
}

/// `executor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Executor {
    /// The default (`type = "http"`, or Spin 1's `"spin"`): a component
    /// exporting `wasi:http` incoming-handler, any version.
    Http,
    /// `type = "wagi"`: a CGI-style command module.
    Wagi {
        /// `None` means [`WAGI_DEFAULT_ARGV`].
        argv: Option<String>,
        /// `None` means [`WAGI_DEFAULT_ENTRYPOINT`].
        entrypoint: Option<String>,
    },
}

/// A component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// Where the Wasm comes from.
    pub source: Source,
    /// Files made visible to the guest, relative to [`LoadedManifest::dir`].
    pub files: Vec<FileMount>,
    /// Globs removed from what `files` matched.
    pub exclude_files: Vec<String>,
    /// The guest's environment variables.
    pub environment: BTreeMap<String, String>,
    /// `scheme://host[:port]` patterns the guest may connect to.
    pub allowed_outbound_hosts: Vec<String>,
    /// Key-value store labels the guest may open.
    pub key_value_stores: Vec<String>,
    /// SQLite database labels the guest may open.
    pub sqlite_databases: Vec<String>,
    /// LLM models the guest may use.
    pub ai_models: Vec<String>,
    /// Component variables: templates over application variables.
    pub variables: BTreeMap<String, String>,
    /// `description`.
    pub description: Option<String>,
    /// `volumes = ["data:/data", "conf:/etc/app:ro"]` (a wasmhost
    /// extension): host directories, relative to the manifest, mounted into
    /// the container or, read-write unless `:ro`, into every instance of a
    /// Wasm component.
    pub volumes: Vec<crate::volume::Volume>,
}

/// `source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file, resolved against the manifest's directory.
    Local(PathBuf),
    /// A download, checked against `digest` (`sha256:` + 64 lowercase hex).
    Url {
        /// `url`.
        url: String,
        /// `digest`, already checked for form.
        digest: String,
    },
    /// A container image (`container = { image, port, ... }` instead of
    /// `source`): a native service behind the same routes.
    Container(ContainerSource),
    /// An HTTP service that runs elsewhere (`upstream =
    /// "http://legacy.internal:8080"` instead of `source`).
    Upstream(crate::upstream::Address),
    /// A package from a Wasm registry.
    Registry {
        /// `registry`; `None` means the user's default registry.
        registry: Option<String>,
        /// `package`, as in `example:component`.
        package: String,
        /// `version`.
        version: String,
    },
}

/// `container = { image, port, start, idle_timeout, memory_limit, cpus,
/// pids_limit, runtime, stop_grace, user_namespace, cap_add, cap_drop,
/// read_only_rootfs, init }`: how a container component runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSource {
    /// The image reference.
    pub image: String,
    /// The settings the table gives (`port`, `start = "eager" | "lazy"`,
    /// `idle_timeout = "5m"`, `memory_limit = "256MiB"`, `cpus = 0.5`,
    /// `pids_limit = 128`, `runtime = "embedded" | "runc" | "crun" |
    /// "youki"`, `stop_grace = "10s"`, `user_namespace = true`,
    /// `cap_add = ["NET_ADMIN"]`, `cap_drop = ["ALL"]`, `read_only_rootfs
    /// = true`, `init = false`), the
    /// defaults for the rest; the component's `environment` and `volumes`
    /// join them at assembly.
    pub settings: crate::container::settings::Settings,

    /// What the image resolved to once pulled (set by `app::sources`): its
    /// config and layers.
    pub pulled: Option<(
        crate::oci::media::Descriptor,
        Vec<crate::oci::media::Descriptor>,
    )>,
}

/// One `files` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileMount {
    /// `"static/**"`: matching files keep their relative paths in the guest.
    Pattern(String),
    /// `{ source = "assets", destination = "/" }`: a directory, mounted.
    Placement {
        /// The host directory, relative to the manifest.
        source: String,
        /// Where the guest sees it.
        destination: String,
    },
}

/// Why a manifest was refused. Every message names the manifest and the key,
/// and says what was expected.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read `{}`: {source}", .path.display())]
    Read {
        /// The manifest.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML at all (toml's message carries line, column and key,
    /// duplicate keys included).
    #[error("`{}` is not valid TOML: {message}", .path.display())]
    Syntax {
        /// The manifest.
        path: PathBuf,
        /// toml's message.
        message: String,
    },
    /// The same key twice, `[component.a]` included: toml finds it, but its
    /// message only points at it, so this names it.
    #[error(
        "`{}`: `{key}` in `{line}` is defined twice; component ids and other \
         keys must be unique\n{message}",
        .path.display()
    )]
    DuplicateKey {
        /// The manifest.
        path: PathBuf,
        /// The repeated key.
        key: String,
        /// The line it is repeated on, trimmed.
        line: String,
        /// toml's message, with line and column.
        message: String,
    },
    /// A v1 manifest that does not convert to v2.
    #[error("`{}` (a Spin manifest v1): {message}", .path.display())]
    V1 {
        /// The manifest.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Valid TOML, but not a v2 (or v1) manifest.
    #[error(
        "`{}`: `spin_manifest_version` is {}; wasmhost reads Spin manifest v2, \
         which starts with `spin_manifest_version = 2` (and v1, `\"1\"`)",
        .path.display(),
        .found.as_deref().map_or("missing".to_owned(), |v| format!("`{v}`"))
    )]
    Version {
        /// The manifest.
        path: PathBuf,
        /// The value written, as TOML; `None` if the key is missing.
        found: Option<String>,
    },
    /// A key of the wrong type, a missing key (toml's message, with line and
    /// column).
    #[error("`{}` is not a valid Spin manifest: {message}", .path.display())]
    Schema {
        /// The manifest.
        path: PathBuf,
        /// toml's message.
        message: String,
    },
    /// `[component.My_Thing]`.
    #[error(
        "`{}`: `[component.{id}]`: `{id}` is not a valid component id ({reason}); \
         use kebab-case such as `my-component`",
        .path.display()
    )]
    InvalidComponentId {
        /// The manifest.
        path: PathBuf,
        /// The id as written.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A trigger's `component` names no component.
    #[error(
        "`{}`: `{key}` (route {route}) names component `{id}`, which is not \
         defined; defined components: {}",
        .path.display(),
        backticked(.known)
    )]
    UnknownComponent {
        /// The manifest.
        path: PathBuf,
        /// `trigger.http[<i>].component`.
        key: String,
        /// The trigger's route, as written.
        route: String,
        /// The id as written.
        id: String,
        /// Every component id, inline ones included.
        known: Vec<String>,
    },
    /// A `{ url, digest }` source whose digest is not `sha256:<64 hex>`.
    #[error(
        "`{}`: `{key}` is `{digest}`; expected `sha256:` followed by 64 \
         lowercase hex digits (the SHA-256 of the Wasm file)",
        .path.display()
    )]
    InvalidDigest {
        /// The manifest.
        path: PathBuf,
        /// `component.<id>.source.digest`.
        key: String,
        /// The digest as written.
        digest: String,
    },
    /// A local source that is not a file.
    #[error(
        "`{}`: `{key}` is `{written}`, but `{}` {problem}",
        .path.display(),
        .resolved.display()
    )]
    MissingSource {
        /// The manifest.
        path: PathBuf,
        /// `component.<id>.source`.
        key: String,
        /// The path as written.
        written: String,
        /// The path resolved against the manifest's directory.
        resolved: PathBuf,
        /// What is wrong, with the fix.
        problem: String,
    },
    /// A trigger with more than one of `split`, `mirror` and `rollout`.
    #[error("`{}`: `{key}` has more than one of `split`, `mirror` and `rollout`; use one at a time (a rollout splits and mirrors by itself)", .path.display())]
    SplitAndMirror {
        /// The manifest.
        path: PathBuf,
        /// `trigger.http[<i>]`.
        key: String,
    },
    /// A `split` whose weights are all 0.
    #[error("`{}`: `{key}` gives every component weight 0; give at least one a positive weight", .path.display())]
    ZeroSplit {
        /// The manifest.
        path: PathBuf,
        /// `trigger.http[<i>].split`.
        key: String,
    },
    /// A component with more than one of `source`, `container` and
    /// `upstream`, or none.
    #[error(
        "`{}`: `{key}` needs exactly one of `source` (a Wasm component), \
         `container` (an image: `{{ image = \"...\", port = 8080 }}`) and \
         `upstream` (a service elsewhere: `\"http://host:port\"`)",
        .path.display()
    )]
    SourceOrContainer {
        /// The manifest.
        path: PathBuf,
        /// `component.<id>`.
        key: String,
    },
    /// A setting (`container`, `volumes`, `mirror.methods`) that does not parse.
    #[error("`{}`: `{key}` is `{written}`; expected {expected}", .path.display())]
    InvalidSetting {
        /// The manifest.
        path: PathBuf,
        /// `component.<id>.container.<field>`.
        key: String,
        /// As written.
        written: String,
        /// What would do.
        expected: String,
    },
    /// A route the router refuses.
    #[error("`{}`: `{key}`: {source}", .path.display())]
    InvalidRoute {
        /// The manifest.
        path: PathBuf,
        /// `trigger.http[<i>].route`.
        key: String,
        /// The router's reason.
        source: RouteError,
    },
    /// `route = { private = false }`, which Spin refuses too.
    #[error(
        "`{}`: `{key}` is `{{ private = false }}`; write a route such as \
         `\"/...\"`, or `{{ private = true }}` for a component reached only \
         by service chaining",
        .path.display()
    )]
    PrivateFalse {
        /// The manifest.
        path: PathBuf,
        /// `trigger.http[<i>].route`.
        key: String,
    },
    /// `executor = { type = "..." }` naming no executor.
    #[error(
        "`{}`: `{key}` is `{found}`; expected `http` (the default) or `wagi`",
        .path.display()
    )]
    UnknownExecutor {
        /// The manifest.
        path: PathBuf,
        /// `trigger.http[<i>].executor.type`.
        key: String,
        /// The type as written.
        found: String,
    },
}

fn backticked(ids: &[String]) -> String {
    if ids.is_empty() {
        return "none".to_owned();
    }
    ids.iter()
        .map(|id| format!("`{id}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads and checks the manifest at `path`.
pub fn load(path: &Path) -> Result<LoadedManifest, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_owned(),
        source,
    })?;
    let parsed = parse(&text, path)?;
    for (id, written) in &parsed.local_sources {
        let Some(Component {
            source: Source::Local(resolved),
            ..
        }) = parsed.loaded.manifest.components.get(id)
        else {
            continue;
        };
        let problem = match std::fs::metadata(resolved) {
            Ok(meta) if meta.is_file() => continue,
            Ok(_) => "is not a file".to_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                "does not exist; build the component first (`spin build`) or fix the path"
                    .to_owned()
            }
            Err(e) => format!("cannot be read: {e}"),
        };
        return Err(ManifestError::MissingSource {
            path: path.to_owned(),
            key: format!("{}.source", parsed.origins[id]),
            written: written.clone(),
            resolved: resolved.clone(),
            problem,
        });
    }
    Ok(parsed.loaded)
}

/// The pure part of [`load`].
struct Parsed {
    loaded: LoadedManifest,
    /// Component id to where it was written (`component.x`,
    /// `trigger.http[2].component`), for later messages.
    origins: BTreeMap<String, String>,
    /// Component id to its local source as written.
    local_sources: BTreeMap<String, String>,
}

fn parse(text: &str, path: &Path) -> Result<Parsed, ManifestError> {
    let syntax = |e: toml::de::Error| {
        let message = e.to_string().trim_end().to_owned();
        match e.span().filter(|_| message.ends_with("duplicate key")) {
            Some(span) => {
                let start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
                let end = text[span.end..]
                    .find('\n')
                    .map_or(text.len(), |i| span.end + i);
                ManifestError::DuplicateKey {
                    path: path.to_owned(),
                    key: text[span].trim_matches(['"', '\'']).to_owned(),
                    line: text[start..end].trim().to_owned(),
                    message,
                }
            }
            None => ManifestError::Syntax {
                path: path.to_owned(),
                message,
            },
        }
    };
    // The version first: a v1 manifest would otherwise fail on the first
    // v2 key it lacks, which hides the real problem.
    let table: toml::Table = toml::from_str(text).map_err(syntax)?;
    match table.get("spin_manifest_version") {
        Some(toml::Value::Integer(2)) => {}
        _ if super::manifest_v1::is_v1(&table) => {
            // Read as Spin reads it: converted to v2, then checked as v2.
            let v1_error = |message: String| ManifestError::V1 {
                path: path.to_owned(),
                message,
            };
            let v2 = super::manifest_v1::to_v2(table).map_err(|e| v1_error(e.to_string()))?;
            let text = toml::to_string(&v2).map_err(|e| v1_error(e.to_string()))?;
            return parse(&text, path);
        }
        other => {
            return Err(ManifestError::Version {
                path: path.to_owned(),
                found: other.map(ToString::to_string),
            })
        }
    }

    let mut ignored = Vec::new();
    let deserializer = toml::Deserializer::parse(text).map_err(syntax)?;
    let raw: RawManifest = serde_ignored::deserialize(deserializer, |p| {
        ignored.push(key_path(&p));
    })
    .map_err(|e| ManifestError::Schema {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    // Sorted: serde reports them in field order, not manifest order.
    ignored.sort();
    let mut warnings: Vec<String> = ignored.iter().map(|k| describe_ignored(k)).collect();

    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut cx = Cx {
        path,
        dir: &dir,
        warnings: &mut warnings,
        origins: BTreeMap::new(),
        local_sources: BTreeMap::new(),
    };

    let mut components = BTreeMap::new();
    for (id, raw_component) in raw.component {
        check_kebab(&id).map_err(|reason| ManifestError::InvalidComponentId {
            path: path.to_owned(),
            id: id.clone(),
            reason,
        })?;
        let component = cx.component(&id, format!("component.{id}"), raw_component)?;
        components.insert(id, component);
    }

    let trigger_ids = trigger_ids(&raw.trigger.http);
    let mut http_triggers = Vec::with_capacity(raw.trigger.http.len());
    for (i, (trigger, id)) in raw.trigger.http.into_iter().zip(trigger_ids).enumerate() {
        let key = format!("trigger.http[{i}]");
        let route = match trigger.route {
            StringOr::String(route) => {
                Route::Pattern(RoutePattern::parse(&route).map_err(|source| {
                    ManifestError::InvalidRoute {
                        path: path.to_owned(),
                        key: format!("{key}.route"),
                        source,
                    }
                })?)
            }
            StringOr::Table(RawPrivate { private: true }) => Route::Private,
            StringOr::Table(RawPrivate { private: false }) => {
                return Err(ManifestError::PrivateFalse {
                    path: path.to_owned(),
                    key: format!("{key}.route"),
                })
            }
        };
        let component = match trigger.component {
            StringOr::String(reference) => reference,
            StringOr::Table(inline) => {
                let inline_id = inline_component_id(&id, &components);
                let component = cx.component(&inline_id, format!("{key}.component"), *inline)?;
                components.insert(inline_id.clone(), component);
                inline_id
            }
        };
        let executor = match trigger.executor {
            None => Executor::Http,
            Some(RawExecutor {
                kind,
                argv,
                entrypoint,
            }) => match kind.as_str() {
                "http" | "spin" => Executor::Http,
                "wagi" => Executor::Wagi { argv, entrypoint },
                _ => {
                    return Err(ManifestError::UnknownExecutor {
                        path: path.to_owned(),
                        key: format!("{key}.executor.type"),
                        found: kind,
                    })
                }
            },
        };
        let rollout = match trigger.rollout {
            Some(raw) => Some(rollout(path, &key, &component, raw)?),
            None => None,
        };
        http_triggers.push(HttpTrigger {
            id,
            route,
            component,
            executor,
            rollout,
            split: trigger.split.unwrap_or_default().into_iter().collect(),
            mirror: trigger
                .mirror
                .map(|m| mirror_to(path, &key, m))
                .transpose()?,
        });
    }

    // After every inline component has its id, as in Spin, where a
    // reference may name a generated id.
    for (i, trigger) in http_triggers.iter().enumerate() {
        // Every component the trigger names: its own, then the ones its
        // `split` and `mirror` name.
        let named = std::iter::once((&trigger.component, "component"))
            .chain(trigger.split.iter().map(|(id, _)| (id, "split")))
            .chain(trigger.mirror.iter().map(|m| (&m.to, "mirror.to")))
            .chain(trigger.rollout.iter().map(|r| (&r.from, "rollout.from")))
            .chain(trigger.rollout.iter().map(|r| (&r.to, "rollout.to")));
        for (id, field) in named {
            if !components.contains_key(id) {
                return Err(ManifestError::UnknownComponent {
                    path: path.to_owned(),
                    key: format!("trigger.http[{i}].{field}"),
                    route: match &trigger.route {
                        Route::Pattern(p) => format!("`{}`", p.as_written()),
                        Route::Private => "`{ private = true }`".to_owned(),
                    },
                    id: id.clone(),
                    known: components.keys().cloned().collect(),
                });
            }
        }
        let ways = usize::from(!trigger.split.is_empty())
            + usize::from(trigger.mirror.is_some())
            + usize::from(trigger.rollout.is_some());
        if ways > 1 {
            return Err(ManifestError::SplitAndMirror {
                path: path.to_owned(),
                key: format!("trigger.http[{i}]"),
            });
        }
        if !trigger.split.is_empty() && trigger.split.iter().all(|(_, w)| *w == 0) {
            return Err(ManifestError::ZeroSplit {
                path: path.to_owned(),
                key: format!("trigger.http[{i}].split"),
            });
        }
    }

    let Cx {
        origins,
        local_sources,
        ..
    } = cx;
    let variables = raw
        .variables
        .into_iter()
        .map(|(name, v)| {
            let variable = Variable {
                default: v.default,
                required: v.required,
                secret: v.secret,
                description: v.description,
            };
            (name, variable)
        })
        .collect();
    Ok(Parsed {
        loaded: LoadedManifest {
            manifest: Manifest {
                application: Application {
                    name: raw.application.name,
                    version: raw.application.version,
                    description: raw.application.description,
                },
                variables,
                http_triggers,
                components,
            },
            dir,
            warnings,
        },
        origins,
        local_sources,
    })
}

/// `mirror = { ... }`, its methods checked.
fn mirror_to(path: &Path, key: &str, raw: RawMirror) -> Result<MirrorTo, ManifestError> {
    let mut methods = Vec::new();
    for method in raw.methods {
        let upper = method.to_ascii_uppercase();
        if http::Method::from_bytes(upper.as_bytes()).is_err() {
            return Err(ManifestError::InvalidSetting {
                path: path.to_owned(),
                key: format!("{key}.mirror.methods"),
                written: method,
                expected: "an HTTP method such as `GET`".to_owned(),
            });
        }
        methods.push(upper);
    }
    Ok(MirrorTo {
        to: raw.to,
        compare_headers: raw.compare_headers,
        methods,
    })
}

/// `rollout = { ... }`: every value checked, defaults from
/// [`crate::limits`]; `from` is the trigger's component unless given.
fn rollout(
    path: &Path,
    key: &str,
    component: &str,
    raw: RawRollout,
) -> Result<crate::rollout::Policy, ManifestError> {
    let bad = |field: &str, written: String, expected: &str| ManifestError::InvalidSetting {
        path: path.to_owned(),
        key: format!("{key}.rollout.{field}"),
        written,
        expected: expected.to_owned(),
    };
    let from = raw.from.unwrap_or_else(|| component.to_owned());
    let mut policy = crate::rollout::Policy::new(&from, &raw.to);
    if from == raw.to {
        return Err(bad("to", raw.to, "a component other than `from`"));
    }
    if let Some(steps) = raw.steps {
        crate::rollout::Policy::check_steps(&steps).map_err(|why| {
            bad(
                "steps",
                format!("{steps:?}"),
                &format!("increasing percentages such as `[1, 5, 25, 50, 100]` ({why})"),
            )
        })?;
        policy.steps = steps;
    }
    if let Some(text) = raw.step_time {
        policy.step_time = crate::parse::duration(&text)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| bad("step_time", text, "a duration above 0 such as `2m` or `1s`"))?;
    }
    let rate = |field: &str, value: Option<f64>, default: f64| match value {
        None => Ok(default),
        Some(v) if v.is_finite() && (0.0..=1.0).contains(&v) => Ok(v),
        Some(v) => Err(bad(
            field,
            v.to_string(),
            "a rate from 0 to 1, such as `0.01`",
        )),
    };
    policy.max_error_rate = rate("max_error_rate", raw.max_error_rate, policy.max_error_rate)?;
    policy.max_mismatch_rate = rate(
        "max_mismatch_rate",
        raw.max_mismatch_rate,
        policy.max_mismatch_rate,
    )?;
    if let Some(ratio) = raw.max_p99_ratio {
        if !ratio.is_finite() || ratio <= 0.0 {
            return Err(bad(
                "max_p99_ratio",
                ratio.to_string(),
                "a ratio above 0, such as `1.5`",
            ));
        }
        policy.max_p99_ratio = ratio;
    }
    if let Some(min) = raw.min_requests {
        policy.min_requests = min;
    }
    if let Some(methods) = raw.mirror_methods {
        policy.mirror_methods = Vec::new();
        for method in methods {
            let upper = method.to_ascii_uppercase();
            if http::Method::from_bytes(upper.as_bytes()).is_err() {
                return Err(bad(
                    "mirror_methods",
                    method,
                    "an HTTP method such as `GET`",
                ));
            }
            policy.mirror_methods.push(upper);
        }
    }
    policy.compare_headers = raw.compare_headers;
    Ok(policy)
}

/// What converting components needs besides the component.
struct Cx<'a> {
    path: &'a Path,
    dir: &'a Path,
    warnings: &'a mut Vec<String>,
    origins: BTreeMap<String, String>,
    local_sources: BTreeMap<String, String>,
}

impl Cx<'_> {
    fn component(
        &mut self,
        id: &str,
        key: String,
        mut raw: RawComponent,
    ) -> Result<Component, ManifestError> {
        if raw.build.is_some() {
            self.warnings.push(format!(
                "`{key}.build` ignored: wasmhost does not build components; \
                 run `spin build` first"
            ));
        }
        let source = match (raw.source.take(), raw.container.take(), raw.upstream.take()) {
            (Some(source), None, None) => self.wasm_source(id, &key, source)?,
            (None, Some(container), None) => Source::Container(self.container(&key, container)?),
            (None, None, Some(url)) => {
                Source::Upstream(crate::upstream::Address::parse(&url).map_err(|why| {
                    ManifestError::InvalidSetting {
                        path: self.path.to_owned(),
                        key: format!("{key}.upstream"),
                        written: url.clone(),
                        expected: format!("`http://host:port` ({why})"),
                    }
                })?)
            }
            _ => {
                return Err(ManifestError::SourceOrContainer {
                    path: self.path.to_owned(),
                    key,
                })
            }
        };
        let volumes = raw
            .volumes
            .iter()
            .map(|v| {
                crate::volume::Volume::parse(v, self.dir).map_err(|e| {
                    ManifestError::InvalidSetting {
                        path: self.path.to_owned(),
                        key: format!("{key}.volumes"),
                        written: v.clone(),
                        expected: format!("HOST:PATH[:ro] ({e:#})"),
                    }
                })
            })
            .collect::<Result<_, _>>()?;
        self.origins.insert(id.to_owned(), key);
        Ok(Component {
            source,
            files: raw
                .files
                .into_iter()
                .map(|f| match f {
                    StringOr::String(pattern) => FileMount::Pattern(pattern),
                    StringOr::Table(RawPlacement {
                        source,
                        destination,
                    }) => FileMount::Placement {
                        source,
                        destination,
                    },
                })
                .collect(),
            exclude_files: raw.exclude_files,
            environment: raw.environment,
            allowed_outbound_hosts: raw.allowed_outbound_hosts,
            key_value_stores: raw.key_value_stores,
            sqlite_databases: raw.sqlite_databases,
            ai_models: raw.ai_models,
            variables: raw.variables,
            description: raw.description,
            volumes,
        })
    }

    fn wasm_source(
        &mut self,
        id: &str,
        key: &str,
        raw: StringOr<RawSource>,
    ) -> Result<Source, ManifestError> {
        Ok(match raw {
            StringOr::String(written) => {
                self.local_sources.insert(id.to_owned(), written.clone());
                Source::Local(self.dir.join(written))
            }
            StringOr::Table(RawSource::Url { url, digest }) => {
                if !is_sha256_digest(&digest) {
                    return Err(ManifestError::InvalidDigest {
                        path: self.path.to_owned(),
                        key: format!("{key}.source.digest"),
                        digest,
                    });
                }
                Source::Url { url, digest }
            }
            StringOr::Table(RawSource::Registry {
                registry,
                package,
                version,
            }) => Source::Registry {
                registry,
                package,
                version,
            },
        })
    }

    /// `container = { ... }`, its sizes and durations parsed.
    fn container(&self, key: &str, raw: RawContainer) -> Result<ContainerSource, ManifestError> {
        let bad = |field: &str, written: String, expected: &str| ManifestError::InvalidSetting {
            path: self.path.to_owned(),
            key: format!("{key}.container.{field}"),
            written,
            expected: expected.to_owned(),
        };
        let start = match raw.start.as_deref() {
            None | Some("lazy") => Start::Lazy,
            Some("eager") => Start::Eager,
            Some(other) => {
                return Err(bad(
                    "start",
                    other.to_owned(),
                    "`lazy` (the default) or `eager`",
                ))
            }
        };
        let idle_timeout = raw
            .idle_timeout
            .map(|t| {
                crate::parse::duration(&t)
                    .map_err(|_| bad("idle_timeout", t, "a duration such as `5m`"))
            })
            .transpose()?;
        let health = match raw.health {
            None => None,
            Some(h) => {
                let duration = |field: &str, text: Option<String>, default| match text {
                    None => Ok(default),
                    Some(t) => crate::parse::duration(&t)
                        .map_err(|_| bad(field, t, "a duration such as `5s`")),
                };
                if !h.path.starts_with('/') {
                    return Err(bad("health.path", h.path, "a path such as `/healthz`"));
                }
                Some(Health {
                    path: h.path,
                    interval: duration("health.interval", h.interval, Health::DEFAULT_INTERVAL)?,
                    timeout: duration("health.timeout", h.timeout, Health::DEFAULT_TIMEOUT)?,
                    retries: h.retries.unwrap_or(Health::DEFAULT_RETRIES).max(1),
                })
            }
        };
        let stop_grace = raw
            .stop_grace
            .map(|t| {
                crate::parse::duration(&t)
                    .map_err(|_| bad("stop_grace", t, "a duration such as `10s`"))
            })
            .transpose()?;
        let memory_limit = raw
            .memory_limit
            .map(|m| {
                crate::parse::size(&m)
                    .map_err(|_| bad("memory_limit", m, "a size such as `256MiB`"))
            })
            .transpose()?;
        let cpus = match raw.cpus {
            None => None,
            Some(cpus) => Some(Cpus::from_f64(cpus).ok_or_else(|| {
                bad(
                    "cpus",
                    cpus.to_string(),
                    "a number of CPUs above 0, such as `0.5`",
                )
            })?),
        };
        if let Some(runtime) = &raw.runtime {
            if !RUNTIMES.contains(&runtime.as_str()) {
                return Err(bad(
                    "runtime",
                    runtime.clone(),
                    "`embedded` (the default), `runc`, `crun` or `youki`",
                ));
            }
        }
        let capabilities = |field: &str, names: Vec<String>| {
            names
                .into_iter()
                .map(|name| {
                    crate::container::capabilities::canonical(&name).map_err(|_| {
                        bad(
                            field,
                            name,
                            "a Linux capability such as `NET_ADMIN` (or `ALL`)",
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let outbound = match raw.network.as_deref() {
            None | Some("loopback") => false,
            Some("outbound") => true,
            Some(other) => {
                return Err(bad(
                    "network",
                    other.to_owned(),
                    "`loopback` (the default) or `outbound`",
                ))
            }
        };
        let cap_add = capabilities("cap_add", raw.cap_add)?;
        let cap_drop = capabilities("cap_drop", raw.cap_drop)?;
        let default = Settings::default();
        Ok(ContainerSource {
            image: raw.image,
            settings: Settings {
                port: raw.port,
                runtime: raw.runtime.unwrap_or(default.runtime),
                memory_limit: memory_limit.unwrap_or(default.memory_limit),
                pids_limit: raw.pids_limit.unwrap_or(default.pids_limit),
                cpus: cpus.unwrap_or(default.cpus),
                start,
                idle_timeout,
                ready_timeout: default.ready_timeout,
                stop_grace: stop_grace.unwrap_or(default.stop_grace),
                environment: Vec::new(),
                volumes: Vec::new(),
                user_namespace: raw.user_namespace.unwrap_or(false),
                cap_add,
                cap_drop,
                read_only_rootfs: raw.read_only_rootfs.unwrap_or(default.read_only_rootfs),
                init: raw.init.unwrap_or(default.init),
                outbound,
                health,
                healthcheck: raw.healthcheck.unwrap_or(default.healthcheck),
                // The component's `allowed_outbound_hosts`, rendered at
                // assembly.
                allowed_outbound_hosts: Vec::new(),
                outbound_resolve_interval: default.outbound_resolve_interval,
            },
            pulled: None,
        })
    }
}

fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Spin's trigger ids (`normalize_trigger_ids`): the written `id`; else
/// `<component>-http-trigger` for a reference, if free; else the first free
/// `http-trigger<n>`, the counter carrying over from trigger to trigger.
fn trigger_ids(triggers: &[RawHttpTrigger]) -> Vec<String> {
    let written = |t: &RawHttpTrigger| t.id.clone().filter(|id| !id.is_empty());
    let mut taken: HashSet<String> = triggers.iter().filter_map(written).collect();
    let mut counter = 1;
    triggers
        .iter()
        .map(|t| {
            if let Some(id) = written(t) {
                return id;
            }
            if let StringOr::String(component) = &t.component {
                let natural = format!("{component}-http-trigger");
                if taken.insert(natural.clone()) {
                    return natural;
                }
            }
            loop {
                let id = format!("http-trigger{counter}");
                if taken.insert(id.clone()) {
                    return id;
                }
                counter += 1;
            }
        })
        .collect()
}

/// Spin's inline component id (`normalize_inline_components`):
/// `<trigger id>-component` if that is kebab-case and free, else the first
/// free `inline-component<n>`.
fn inline_component_id(trigger_id: &str, components: &BTreeMap<String, Component>) -> String {
    let natural = format!("{trigger_id}-component");
    if check_kebab(&natural).is_ok() && !components.contains_key(&natural) {
        return natural;
    }
    (1..)
        .map(|n| format!("inline-component{n}"))
        .find(|id| !components.contains_key(id))
        .expect("an unbounded range always finds a free id")
}

/// Spin's `KebabId` rules (`crates/serde/src/id.rs`): `-`-separated words,
/// each starting with a letter (or, after the first, a digit), then letters,
/// digits or `:`, each word all lowercase or all uppercase.
fn check_kebab(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("it is empty".to_owned());
    }
    if id.contains('_') {
        return Err("words must be separated with `-`, not `_`".to_owned());
    }
    for (i, word) in id.split('-').enumerate() {
        let mut chars = word.chars();
        let Some(first) = chars.next() else {
            return Err("`-`-separated words must not be empty".to_owned());
        };
        if !(first.is_ascii_alphabetic() || (i > 0 && first.is_ascii_digit())) {
            return Err(format!(
                "`-`-separated words must start with an ASCII letter; got `{first}`"
            ));
        }
        let upper = first.is_ascii_uppercase();
        for ch in chars {
            if ch.is_ascii_digit() || ch == ':' {
                continue;
            }
            if !ch.is_ascii_alphanumeric() {
                return Err(format!(
                    "words may only contain ASCII letters and digits; got `{ch}`"
                ));
            }
            if ch.is_ascii_uppercase() != upper {
                return Err(format!(
                    "words must be all lowercase or all uppercase; got `{word}`"
                ));
            }
        }
    }
    Ok(())
}

/// A key path as TOML users read it: `trigger.http[0].colour`.
fn key_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", key_path(parent)),
        P::Map { parent, key } => match key_path(parent) {
            parent if parent.is_empty() => key.clone(),
            parent => format!("{parent}.{key}"),
        },
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            key_path(parent)
        }
    }
}

/// Spin keys this host does not implement: named as such in the warning,
/// so nobody hunts for a typo.
const UNSUPPORTED_SPIN_KEYS: &[&str] = &[
    "allowed_http_hosts",
    "components",
    "dependencies",
    "dependencies_inherit_configuration",
    "profile",
    "static_response",
];

fn describe_ignored(key: &str) -> String {
    if let Some(kind) = key.strip_prefix("trigger.") {
        if !kind.contains(['.', '[']) {
            return format!("`{key}` ignored: wasmhost runs only `[[trigger.http]]`");
        }
    }
    let last = key.rsplit('.').next().unwrap_or(key);
    if UNSUPPORTED_SPIN_KEYS.contains(&last) || key == "application.trigger" {
        format!("`{key}` ignored: wasmhost does not support it yet")
    } else {
        format!("`{key}` ignored: not a Spin manifest v2 key")
    }
}

// The raw, serde-shaped manifest. Unknown keys are not denied: they reach
// `serde_ignored` and become warnings.

#[derive(Deserialize)]
struct RawManifest {
    #[allow(dead_code)] // Checked before this parse; named so it is not "unknown".
    spin_manifest_version: i64,
    application: RawApplication,
    #[serde(default)]
    variables: BTreeMap<String, RawVariable>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize)]
struct RawApplication {
    name: String,
    version: Option<String>,
    description: Option<String>,
    // Spin's own keys that change nothing here; named so they are not
    // reported as unknown.
    #[allow(dead_code)]
    authors: Option<toml::Value>,
    #[allow(dead_code)]
    targets: Option<toml::Value>,
    #[allow(dead_code)]
    tool: Option<toml::Value>,
}

#[derive(Deserialize)]
struct RawVariable {
    default: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    secret: bool,
    description: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<RawHttpTrigger>,
}

#[derive(Deserialize)]
struct RawHttpTrigger {
    id: Option<String>,
    component: StringOr<Box<RawComponent>>,
    route: StringOr<RawPrivate>,
    executor: Option<RawExecutor>,
    split: Option<BTreeMap<String, u32>>,
    mirror: Option<RawMirror>,
    rollout: Option<RawRollout>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRollout {
    from: Option<String>,
    to: String,
    steps: Option<Vec<f64>>,
    step_time: Option<String>,
    max_error_rate: Option<f64>,
    max_p99_ratio: Option<f64>,
    max_mismatch_rate: Option<f64>,
    min_requests: Option<u64>,
    mirror_methods: Option<Vec<String>>,
    #[serde(default)]
    compare_headers: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMirror {
    to: String,
    #[serde(default)]
    compare_headers: Vec<String>,
    #[serde(default)]
    methods: Vec<String>,
}

#[derive(Deserialize)]
struct RawPrivate {
    private: bool,
}

#[derive(Deserialize)]
struct RawExecutor {
    #[serde(rename = "type")]
    kind: String,
    argv: Option<String>,
    entrypoint: Option<String>,
}

#[derive(Deserialize)]
struct RawComponent {
    source: Option<StringOr<RawSource>>,
    container: Option<RawContainer>,
    upstream: Option<String>,
    description: Option<String>,
    #[serde(default)]
    volumes: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    files: Vec<StringOr<RawPlacement>>,
    #[serde(default)]
    exclude_files: Vec<String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    ai_models: Vec<String>,
    build: Option<toml::Value>,
    #[allow(dead_code)] // Spin ignores it too; named so it is not "unknown".
    tool: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContainer {
    image: String,
    port: Option<u16>,
    start: Option<String>,
    idle_timeout: Option<String>,
    memory_limit: Option<String>,
    cpus: Option<f64>,
    pids_limit: Option<i64>,
    runtime: Option<String>,
    stop_grace: Option<String>,
    user_namespace: Option<bool>,
    #[serde(default)]
    cap_add: Vec<String>,
    #[serde(default)]
    cap_drop: Vec<String>,
    read_only_rootfs: Option<bool>,
    init: Option<bool>,
    network: Option<String>,
    health: Option<RawHealth>,
    healthcheck: Option<bool>,
}

/// `health = { path, interval, timeout, retries }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    path: String,
    interval: Option<String>,
    timeout: Option<String>,
    retries: Option<u32>,
}

#[derive(Deserialize)]
struct RawPlacement {
    source: String,
    destination: String,
}

/// `source = { ... }`, its form decided by which keys are present.
#[derive(Deserialize)]
#[serde(try_from = "RawSourceKeys")]
enum RawSource {
    Url {
        url: String,
        digest: String,
    },
    Registry {
        registry: Option<String>,
        package: String,
        version: String,
    },
}

#[derive(Deserialize)]
struct RawSourceKeys {
    url: Option<String>,
    digest: Option<String>,
    registry: Option<String>,
    package: Option<String>,
    version: Option<String>,
}

impl TryFrom<RawSourceKeys> for RawSource {
    type Error = String;

    fn try_from(k: RawSourceKeys) -> Result<Self, String> {
        match k {
            RawSourceKeys {
                url: Some(url),
                digest: Some(digest),
                registry: None,
                package: None,
                version: None,
            } => Ok(Self::Url { url, digest }),
            RawSourceKeys {
                url: None,
                digest: None,
                registry,
                package: Some(package),
                version: Some(version),
            } => Ok(Self::Registry {
                registry,
                package,
                version,
            }),
            _ => Err(
                "expected a path, `{ url = \"...\", digest = \"sha256:...\" }` or \
                 `{ package = \"...\", version = \"...\" }` (with an optional `registry`)"
                    .to_owned(),
            ),
        }
    }
}

/// A key that is either a string or a table (`source`, `route`, `files`
/// entries, a trigger's `component`). Written by hand rather than as an
/// untagged enum so toml keeps its line numbers and `serde_ignored` still
/// sees inside the table.
enum StringOr<T> {
    String(String),
    Table(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for StringOr<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = StringOr<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a table")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(StringOr::String(s.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(StringOr::Table)
            }
        }
        deserializer.deserialize_any(V(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `spin.toml` (and the named empty files) into a fresh temp dir.
    fn manifest_in(text: &str, files: &[&str]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        for f in files {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().expect("has parent")).expect("mkdir");
            std::fs::write(p, b"").expect("write file");
        }
        let path = dir.path().join("spin.toml");
        std::fs::write(&path, text).expect("write manifest");
        (dir, path)
    }

    fn load_ok(text: &str, files: &[&str]) -> LoadedManifest {
        let (_dir, path) = manifest_in(text, files);
        load(&path).expect("manifest loads")
    }

    /// The error message with the temp dir replaced by `$DIR`.
    fn load_err(text: &str, files: &[&str]) -> String {
        let (dir, path) = manifest_in(text, files);
        let err = load(&path).expect_err("manifest is refused");
        err.to_string()
            .replace(&dir.path().display().to_string(), "$DIR")
    }

    const HEAD: &str = "spin_manifest_version = 2\n[application]\nname = \"app\"\n";

    fn with_head(rest: &str) -> String {
        format!("{HEAD}{rest}")
    }

    const FULL: &str = r#"
spin_manifest_version = 2

[application]
name = "shop"
version = "1.2.0"
description = "A shop"
authors = ["Ann <ann@example.com>"]

[variables]
api_host = { default = "api.example.com" }
api_key = { required = true, secret = true }

[[trigger.http]]
route = "/cart/..."
component = "cart"

[[trigger.http]]
route = { private = true }
component = "internal"

[[trigger.http]]
route = "/cgi/:name"
component = "legacy"
executor = { type = "wagi", argv = "${SCRIPT_NAME} -v" }

[[trigger.http]]
route = "/inline"
component = { source = "inline.wasm", allowed_outbound_hosts = ["https://example.com"] }

[component.cart]
source = "target/cart.wasm"
description = "The cart"
files = ["static/**", { source = "assets", destination = "/assets" }]
exclude_files = ["static/secret.txt"]
environment = { RUST_LOG = "info" }
allowed_outbound_hosts = ["https://{{ api_host }}"]
key_value_stores = ["default"]
variables = { key = "{{ api_key }}" }

[component.internal]
source = { url = "https://example.com/internal.wasm", digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }

[component.legacy]
source = { registry = "ghcr.io", package = "shop:legacy", version = "0.1.0" }
"#;

    fn bare(source: Source) -> Component {
        Component {
            source,
            files: vec![],
            exclude_files: vec![],
            environment: BTreeMap::new(),
            allowed_outbound_hosts: vec![],
            key_value_stores: vec![],
            sqlite_databases: vec![],
            ai_models: vec![],
            variables: BTreeMap::new(),
            description: None,
            volumes: vec![],
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn map(items: &[(&str, &str)]) -> BTreeMap<String, String> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_full_manifest_loads_into_plain_values() {
        let (dir, path) = manifest_in(FULL, &["target/cart.wasm", "inline.wasm"]);
        let loaded = load(&path).expect("loads");
        let d = dir.path();
        let pattern = |r: &str| Route::Pattern(RoutePattern::parse(r).expect("valid"));
        let expected = Manifest {
            application: Application {
                name: "shop".into(),
                version: Some("1.2.0".into()),
                description: Some("A shop".into()),
            },
            variables: [
                (
                    "api_host".to_string(),
                    Variable {
                        default: Some("api.example.com".into()),
                        required: false,
                        secret: false,
                        description: None,
                    },
                ),
                (
                    "api_key".to_string(),
                    Variable {
                        default: None,
                        required: true,
                        secret: true,
                        description: None,
                    },
                ),
            ]
            .into(),
            http_triggers: vec![
                HttpTrigger {
                    id: "cart-http-trigger".into(),
                    route: pattern("/cart/..."),
                    component: "cart".into(),
                    executor: Executor::Http,
                    split: Vec::new(),
                    mirror: None,
                    rollout: None,
                },
                HttpTrigger {
                    id: "internal-http-trigger".into(),
                    route: Route::Private,
                    component: "internal".into(),
                    executor: Executor::Http,
                    split: Vec::new(),
                    mirror: None,
                    rollout: None,
                },
                HttpTrigger {
                    id: "legacy-http-trigger".into(),
                    route: pattern("/cgi/:name"),
                    component: "legacy".into(),
                    executor: Executor::Wagi {
                        argv: Some("${SCRIPT_NAME} -v".into()),
                        entrypoint: None,
                    },
                    split: Vec::new(),
                    mirror: None,
                    rollout: None,
                },
                HttpTrigger {
                    id: "http-trigger1".into(),
                    route: pattern("/inline"),
                    component: "http-trigger1-component".into(),
                    executor: Executor::Http,
                    split: Vec::new(),
                    mirror: None,
                    rollout: None,
                },
            ],
            components: [
                (
                    "cart".to_string(),
                    Component {
                        source: Source::Local(d.join("target/cart.wasm")),
                        files: vec![
                            FileMount::Pattern("static/**".into()),
                            FileMount::Placement {
                                source: "assets".into(),
                                destination: "/assets".into(),
                            },
                        ],
                        exclude_files: strings(&["static/secret.txt"]),
                        environment: map(&[("RUST_LOG", "info")]),
                        allowed_outbound_hosts: strings(&["https://{{ api_host }}"]),
                        key_value_stores: strings(&["default"]),
                        sqlite_databases: vec![],
                        ai_models: vec![],
                        variables: map(&[("key", "{{ api_key }}")]),
                        description: Some("The cart".into()),
                        volumes: vec![],
                    },
                ),
                (
                    "internal".to_string(),
                    bare(Source::Url {
                        url: "https://example.com/internal.wasm".into(),
                        digest: format!("sha256:{}", "0123456789abcdef".repeat(4)),
                    }),
                ),
                (
                    "legacy".to_string(),
                    bare(Source::Registry {
                        registry: Some("ghcr.io".into()),
                        package: "shop:legacy".into(),
                        version: "0.1.0".into(),
                    }),
                ),
                (
                    "http-trigger1-component".to_string(),
                    Component {
                        allowed_outbound_hosts: strings(&["https://example.com"]),
                        ..bare(Source::Local(d.join("inline.wasm")))
                    },
                ),
            ]
            .into(),
        };
        assert_eq!(loaded.manifest, expected);
        assert_eq!(loaded.dir, d);
        assert_eq!(loaded.warnings, Vec::<String>::new());
    }

    #[test]
    fn inline_components_get_the_ids_spin_generates() {
        // (triggers and extra components, the inline component's id)
        let cases = [
            ("id = \"api\"\n", "", "api-component"),
            ("", "", "http-trigger1-component"),
            ("id = \"my_api\"\n", "", "inline-component1"),
            (
                "",
                "[component.http-trigger1-component]\nsource = \"a.wasm\"\n",
                "inline-component1",
            ),
        ];
        for (trigger_extra, components, expected) in cases {
            let text = with_head(&format!(
                "[[trigger.http]]\nroute = \"/\"\n{trigger_extra}\
                 component = {{ source = \"a.wasm\" }}\n{components}"
            ));
            let loaded = load_ok(&text, &["a.wasm"]);
            assert_eq!(
                loaded.manifest.http_triggers[0].component, expected,
                "for {text}"
            );
            assert!(loaded.manifest.components.contains_key(expected));
        }
    }

    #[test]
    fn generated_trigger_ids_skip_taken_ones_and_count_on() {
        let text = with_head(
            r#"
[[trigger.http]]
route = "/a"
component = "a"
[[trigger.http]]
route = "/b"
component = "a"
[[trigger.http]]
id = "http-trigger1"
route = "/c"
component = "a"
[[trigger.http]]
route = "/d"
component = { source = "a.wasm" }
[component.a]
source = "a.wasm"
"#,
        );
        let loaded = load_ok(&text, &["a.wasm"]);
        let ids: Vec<_> = loaded
            .manifest
            .http_triggers
            .iter()
            .map(|t| t.id.as_str())
            .collect();
        assert_eq!(
            ids,
            [
                "a-http-trigger",
                "http-trigger2",
                "http-trigger1",
                "http-trigger3"
            ]
        );
        assert_eq!(
            loaded.manifest.http_triggers[3].component,
            "http-trigger3-component"
        );
    }

    #[test]
    fn unknown_and_unsupported_keys_are_warnings_not_errors() {
        let text = with_head(
            r#"colour = "red"
[[trigger.http]]
route = "/"
component = "a"
colour = "red"
[[trigger.redis]]
channel = "x"
component = "a"
[component.a]
source = "a.wasm"
colour = "red"
static_response = { status_code = 200 }
[component.a.tool.lint]
level = 3
"#,
        );
        let loaded = load_ok(&text, &["a.wasm"]);
        assert_eq!(
            loaded.warnings,
            strings(&[
                "`application.colour` ignored: not a Spin manifest v2 key",
                "`component.a.colour` ignored: not a Spin manifest v2 key",
                "`component.a.static_response` ignored: wasmhost does not support it yet",
                "`trigger.http[0].colour` ignored: not a Spin manifest v2 key",
                "`trigger.redis` ignored: wasmhost runs only `[[trigger.http]]`",
            ])
        );
        assert!(loaded.manifest.components.contains_key("a"));
    }

    #[test]
    fn a_build_section_is_accepted_with_a_warning() {
        let text = with_head(
            r#"
[[trigger.http]]
route = "/"
component = { source = "b.wasm", build = { command = "make" } }
[component.a]
source = "a.wasm"
[component.a.build]
command = "cargo build --target wasm32-wasip2 --release"
watch = ["src/**/*.rs"]
"#,
        );
        let loaded = load_ok(&text, &["a.wasm", "b.wasm"]);
        assert_eq!(
            loaded.warnings,
            strings(&[
                "`component.a.build` ignored: wasmhost does not build components; \
                 run `spin build` first",
                "`trigger.http[0].component.build` ignored: wasmhost does not build \
                 components; run `spin build` first",
            ])
        );
    }

    #[test]
    fn an_unknown_manifest_version_is_refused_naming_the_version_found() {
        assert_eq!(
            load_err("spin_manifest_version = \"3\"\nname = \"x\"\n", &[]),
            "`$DIR/spin.toml`: `spin_manifest_version` is `\"3\"`; wasmhost reads \
             Spin manifest v2, which starts with `spin_manifest_version = 2` (and v1, `\"1\"`)"
        );
        assert_eq!(
            load_err("[application]\nname = \"x\"\n", &[]),
            "`$DIR/spin.toml`: `spin_manifest_version` is missing; wasmhost reads \
             Spin manifest v2, which starts with `spin_manifest_version = 2` (and v1, `\"1\"`)"
        );
    }

    #[test]
    fn a_v1_manifest_is_read_as_its_v2_equivalent() {
        let loaded = load_ok(
            "spin_manifest_version = \"1\"\nname = \"old\"\ntrigger = { type = \"http\", base = \"/\" }\n\
             [[component]]\nid = \"hello\"\nsource = \"a.wasm\"\n[component.trigger]\nroute = \"/hello\"\n",
            &["a.wasm"],
        );
        assert_eq!(loaded.manifest.application.name, "old");
        assert_eq!(loaded.manifest.http_triggers[0].component, "hello");
        assert_eq!(
            loaded.manifest.components["hello"].allowed_outbound_hosts,
            strings(&["redis://*:*", "mysql://*:*", "postgres://*:*"])
        );
        assert_eq!(
            load_err("spin_manifest_version = \"1\"\nname = \"x\"\ntrigger = { type = \"redis\" }\n", &[]),
            "`$DIR/spin.toml` (a Spin manifest v1): `trigger.type` is `redis`; wasmhost runs only HTTP triggers"
        );
    }

    #[test]
    fn a_toml_syntax_error_keeps_line_and_column() {
        assert_eq!(
            load_err(&with_head("[component.a\nsource = \"a.wasm\"\n"), &[]),
            "`$DIR/spin.toml` is not valid TOML: TOML parse error at line 4, column 13\n  \
             |\n4 | [component.a\n  |             ^\nunclosed table, expected `]`"
        );
    }

    #[test]
    fn a_duplicate_component_id_is_a_toml_error_naming_the_key() {
        assert_eq!(
            load_err(
                &with_head(
                    "[component.a]\nsource = \"a.wasm\"\n[component.a]\nsource = \"b.wasm\"\n"
                ),
                &[]
            ),
            "`$DIR/spin.toml`: `a` in `[component.a]` is defined twice; component ids \
             and other keys must be unique\nTOML parse error at line 6, column 12\n  \
             |\n6 | [component.a]\n  |            ^\nduplicate key"
        );
    }

    #[test]
    fn a_wrong_type_is_a_schema_error_with_line_and_column() {
        assert_eq!(
            load_err(
                &with_head("[component.a]\nsource = \"a.wasm\"\nfiles = 3\n"),
                &[]
            ),
            "`$DIR/spin.toml` is not a valid Spin manifest: TOML parse error at line 6, \
             column 9\n  |\n6 | files = 3\n  |         ^\ninvalid type: integer `3`, \
             expected a sequence"
        );
        assert_eq!(
            load_err(
                &with_head("[component.a]\nsource = { url = \"https://x/a.wasm\" }\n"),
                &[]
            ),
            "`$DIR/spin.toml` is not a valid Spin manifest: TOML parse error at line 5, \
             column 10\n  |\n5 | source = { url = \"https://x/a.wasm\" }\n  |          \
             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^\nexpected a path, `{ url = \"...\", digest = \
             \"sha256:...\" }` or `{ package = \"...\", version = \"...\" }` (with an \
             optional `registry`)"
        );
    }

    #[test]
    fn a_trigger_naming_no_component_lists_the_known_ids() {
        assert_eq!(
            load_err(
                &with_head(
                    "[[trigger.http]]\nroute = \"/hello\"\ncomponent = \"helo\"\n\
                     [component.hello]\nsource = \"a.wasm\"\n\
                     [component.world]\nsource = \"a.wasm\"\n"
                ),
                &["a.wasm"]
            ),
            "`$DIR/spin.toml`: `trigger.http[0].component` (route `/hello`) names \
             component `helo`, which is not defined; defined components: `hello`, `world`"
        );
    }

    #[test]
    fn a_digest_that_is_not_sha256_hex_is_refused() {
        assert_eq!(
            load_err(
                &with_head(
                    "[component.a]\nsource = { url = \"https://x/a.wasm\", digest = \"sha256:ABC\" }\n"
                ),
                &[]
            ),
            "`$DIR/spin.toml`: `component.a.source.digest` is `sha256:ABC`; expected \
             `sha256:` followed by 64 lowercase hex digits (the SHA-256 of the Wasm file)"
        );
    }

    #[test]
    fn a_missing_local_source_names_the_path_written_and_resolved() {
        assert_eq!(
            load_err(
                &with_head("[component.a]\nsource = \"target/a.wasm\"\n"),
                &[]
            ),
            "`$DIR/spin.toml`: `component.a.source` is `target/a.wasm`, but \
             `$DIR/target/a.wasm` does not exist; build the component first \
             (`spin build`) or fix the path"
        );
    }

    #[test]
    fn a_route_the_router_refuses_carries_its_reason() {
        assert_eq!(
            load_err(
                &with_head(
                    "[[trigger.http]]\nroute = \"/users/:\"\ncomponent = \"a\"\n\
                     [component.a]\nsource = \"a.wasm\"\n"
                ),
                &["a.wasm"]
            ),
            "`$DIR/spin.toml`: `trigger.http[0].route`: invalid route `/users/:`: \
             `:` needs a name, as in `/users/:id`"
        );
    }

    #[test]
    fn private_false_is_refused_as_spin_does() {
        assert_eq!(
            load_err(
                &with_head(
                    "[[trigger.http]]\nroute = { private = false }\ncomponent = \"a\"\n\
                     [component.a]\nsource = \"a.wasm\"\n"
                ),
                &["a.wasm"]
            ),
            "`$DIR/spin.toml`: `trigger.http[0].route` is `{ private = false }`; write \
             a route such as `\"/...\"`, or `{ private = true }` for a component \
             reached only by service chaining"
        );
    }

    #[test]
    fn an_unknown_executor_type_is_refused() {
        assert_eq!(
            load_err(
                &with_head(
                    "[[trigger.http]]\nroute = \"/\"\ncomponent = \"a\"\n\
                     executor = { type = \"cgi\" }\n[component.a]\nsource = \"a.wasm\"\n"
                ),
                &["a.wasm"]
            ),
            "`$DIR/spin.toml`: `trigger.http[0].executor.type` is `cgi`; expected \
             `http` (the default) or `wagi`"
        );
    }

    #[test]
    fn a_component_id_that_is_not_kebab_case_is_refused() {
        assert_eq!(
            load_err(
                &with_head("[component.my_thing]\nsource = \"a.wasm\"\n"),
                &[]
            ),
            "`$DIR/spin.toml`: `[component.my_thing]`: `my_thing` is not a valid \
             component id (words must be separated with `-`, not `_`); use kebab-case \
             such as `my-component`"
        );
    }

    #[test]
    fn a_manifest_that_cannot_be_read_names_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = load(&dir.path().join("spin.toml")).expect_err("missing");
        assert_eq!(
            err.to_string()
                .replace(&dir.path().display().to_string(), "$DIR"),
            "cannot read `$DIR/spin.toml`: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn sha256_digests_are_checked_for_form() {
        let hex = "0123456789abcdef".repeat(4);
        assert!(is_sha256_digest(&format!("sha256:{hex}")));
        assert!(!is_sha256_digest(&hex));
        assert!(!is_sha256_digest(&format!("sha256:{}", hex.to_uppercase())));
        assert!(!is_sha256_digest(&format!("sha256:{hex}0")));
        assert!(!is_sha256_digest(&format!("sha512:{hex}")));
    }

    /// A two-component app whose route has `rollout = { <keys> }`.
    fn rollout_manifest(keys: &str) -> String {
        with_head(&format!(
            "[[trigger.http]]\nroute = \"/...\"\ncomponent = \"old\"\nrollout = {{ {keys} }}\n\
             [component.old]\nupstream = \"http://legacy.internal:8080\"\n\
             [component.new]\nsource = \"new.wasm\"\n"
        ))
    }

    #[test]
    fn a_rollout_takes_the_trigger_component_as_from_and_defaults_from_limits() {
        let loaded = load_ok(
            &rollout_manifest(r#"to = "new", steps = [10, 100], step_time = "1s""#),
            &["new.wasm"],
        );
        let policy = loaded.manifest.http_triggers[0].rollout.clone().unwrap();
        assert_eq!((policy.from.as_str(), policy.to.as_str()), ("old", "new"));
        assert_eq!(policy.steps, [10.0, 100.0]);
        assert_eq!(policy.step_time, std::time::Duration::from_secs(1));
        assert_eq!(policy.max_error_rate, crate::limits::ROLLOUT_MAX_ERROR_RATE);
        assert_eq!(policy.min_requests, crate::limits::ROLLOUT_MIN_REQUESTS);
        assert_eq!(policy.mirror_methods, ["GET", "HEAD"]);
        let Source::Upstream(address) = &loaded.manifest.components["old"].source else {
            panic!("not an upstream")
        };
        assert_eq!(
            (address.host.as_str(), address.port),
            ("legacy.internal", 8080)
        );
    }

    #[test]
    fn rollout_values_that_cannot_work_are_refused_by_key() {
        for (keys, key, expected) in [
            (
                r#"to = "new", steps = [50, 10]"#,
                "rollout.steps",
                "steps must increase",
            ),
            (
                r#"to = "new", steps = [0, 100]"#,
                "rollout.steps",
                "above 0",
            ),
            (
                r#"to = "new", step_time = "0s""#,
                "rollout.step_time",
                "above 0",
            ),
            (
                r#"to = "new", max_error_rate = 2.0"#,
                "rollout.max_error_rate",
                "from 0 to 1",
            ),
            (
                r#"to = "new", max_p99_ratio = 0.0"#,
                "rollout.max_p99_ratio",
                "above 0",
            ),
            (r#"to = "old""#, "rollout.to", "other than `from`"),
        ] {
            let err = load_err(&rollout_manifest(keys), &["new.wasm"]);
            assert!(err.contains(key) && err.contains(expected), "{keys}: {err}");
        }
        let err = load_err(&rollout_manifest(r#"to = "nope""#), &["new.wasm"]);
        assert!(err.contains("`trigger.http[0].rollout.to`"), "{err}");
    }

    #[test]
    fn a_rollout_beside_a_split_is_refused() {
        let text = rollout_manifest(r#"to = "new""#)
            .replace("rollout =", "split = { old = 1, new = 1 }\nrollout =");
        let err = load_err(&text, &["new.wasm"]);
        assert!(
            err.contains("more than one of `split`, `mirror` and `rollout`"),
            "{err}"
        );
    }

    #[test]
    fn an_https_upstream_is_refused_naming_the_key() {
        let text = rollout_manifest(r#"to = "new""#).replace("http://legacy", "https://legacy");
        let err = load_err(&text, &["new.wasm"]);
        assert!(err.contains("`component.old.upstream`"), "{err}");
        assert!(err.contains("not supported yet"), "{err}");
    }

    #[test]
    fn a_container_component_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spin.toml");
        let write = |component: &str| {
            std::fs::write(
                &path,
                format!(
                    "spin_manifest_version = 2\n[application]\nname = \"c\"\n\
                     [[trigger.http]]\nroute = \"/...\"\ncomponent = \"legacy\"\n\
                     [component.legacy]\n{component}\n"
                ),
            )
            .unwrap();
        };
        write(
            r#"container = { image = "example.com/legacy:1", port = 8080, start = "eager", idle_timeout = "5m", memory_limit = "64MiB", cpus = 0.5, user_namespace = true }"#,
        );
        let loaded = load(&path).unwrap();
        let Source::Container(c) = &loaded.manifest.components["legacy"].source else {
            panic!("not a container");
        };
        assert_eq!(c.image, "example.com/legacy:1");
        let s = &c.settings;
        assert_eq!(
            (s.port, s.start, s.cpus),
            (Some(8080), Start::Eager, Cpus(500))
        );
        assert_eq!(s.idle_timeout, Some(std::time::Duration::from_secs(300)));
        assert_eq!(s.memory_limit, 64 << 20);
        assert!(s.user_namespace);
        // What the table leaves out has the defaults.
        let defaults = Settings::default();
        assert_eq!(
            (&s.runtime, s.pids_limit, s.stop_grace),
            (&defaults.runtime, defaults.pids_limit, defaults.stop_grace)
        );
        assert!(s.init && !s.read_only_rootfs && s.cap_add.is_empty() && s.cap_drop.is_empty());
        assert!(s.healthcheck, "the image's HEALTHCHECK runs unless turned off");

        // Capabilities as Docker spells them, canonical; the init off.
        write(
            r#"container = { image = "example.com/legacy:1", cap_add = ["cap_net_admin"], cap_drop = ["ALL"], read_only_rootfs = true, init = false, health = { path = "/healthz", interval = "5s" }, healthcheck = false }"#,
        );
        let loaded = load(&path).unwrap();
        let Source::Container(c) = &loaded.manifest.components["legacy"].source else {
            panic!("not a container");
        };
        let s = &c.settings;
        assert_eq!(
            (s.cap_add.as_slice(), s.cap_drop.as_slice()),
            (&["NET_ADMIN".to_owned()][..], &["ALL".to_owned()][..])
        );
        assert!(s.read_only_rootfs && !s.init && !s.healthcheck);
        assert_eq!(
            s.health,
            Some(Health {
                path: "/healthz".into(),
                interval: std::time::Duration::from_secs(5),
                timeout: Health::DEFAULT_TIMEOUT,
                retries: Health::DEFAULT_RETRIES,
            })
        );
        write(r#"container = { image = "example.com/legacy:1", cap_add = ["NET_MAGIC"] }"#);
        let err = load(&path).unwrap_err().to_string();
        assert!(
            err.contains("`component.legacy.container.cap_add` is `NET_MAGIC`"),
            "{err}"
        );

        write(
            r#"source = "x.wasm"
container = { image = "example.com/legacy:1" }"#,
        );
        let err = load(&path).unwrap_err().to_string();
        assert!(
            err.contains("`component.legacy` needs exactly one of `source`"),
            "{err}"
        );
        write(r#"container = { image = "example.com/legacy:1", start = "now" }"#);
        let err = load(&path).unwrap_err().to_string();
        assert!(
            err.contains("`component.legacy.container.start` is `now`; expected"),
            "{err}"
        );
    }
}
