//! Spin manifest v1 (`spin_manifest_version = "1"`), read as Spin reads
//! it: converted to a v2 document (Spin's `compat.rs` rules, restated)
//! which [`super::manifest`] then checks like any other.
//!
//! - top-level `name`, `version`, `description`, `authors` → `[application]`;
//! - `trigger = { type = "http", base = "/x" }`: HTTP only; routes are
//!   prefixed with `base`;
//! - each `[[component]]` (`id` made kebab-case as Spin does) →
//!   `[component.<id>]`, its `[component.trigger]` (`route`, `executor`) →
//!   a `[[trigger.http]]`, its `[component.config]` → `variables`;
//! - `allowed_http_hosts` → `allowed_outbound_hosts` (`http://` and
//!   `https://` for each host, `insecure:allow-all` → every HTTP host, and,
//!   when a component has no `allowed_outbound_hosts` of its own, any Redis,
//!   MySQL and PostgreSQL server, the v1 default).

use toml::{Table, Value};

/// A v1 document that cannot be converted, with why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct V1Error(String);

fn err(message: impl Into<String>) -> V1Error {
    V1Error(message.into())
}

/// Whether `table` is a v1 manifest.
pub fn is_v1(table: &Table) -> bool {
    matches!(table.get("spin_manifest_version"), Some(Value::String(v)) if v == "1")
}

/// The v2 document a v1 manifest means.
pub fn to_v2(mut v1: Table) -> Result<Table, V1Error> {
    let mut application = Table::new();
    for key in ["name", "version", "description", "authors"] {
        if let Some(value) = v1.remove(key) {
            application.insert(key.into(), value);
        }
    }
    let trigger = match v1.remove("trigger") {
        Some(Value::Table(t)) => t,
        _ => {
            return Err(err(
                "`trigger` must be a table such as `{ type = \"http\" }`",
            ))
        }
    };
    match trigger.get("type").and_then(Value::as_str) {
        Some("http") => {}
        Some(other) => {
            return Err(err(format!(
                "`trigger.type` is `{other}`; wasmhost runs only HTTP triggers"
            )))
        }
        None => return Err(err("`trigger` has no `type`")),
    }
    let base = trigger
        .get("base")
        .and_then(Value::as_str)
        .unwrap_or("/")
        .trim_end_matches('/')
        .to_owned();
    let mut components = Table::new();
    let mut triggers = Vec::new();
    let entries = match v1.remove("component") {
        Some(Value::Array(entries)) => entries,
        None => Vec::new(),
        Some(_) => return Err(err("`component` must be an array: `[[component]]`")),
    };
    for (i, entry) in entries.into_iter().enumerate() {
        let Value::Table(mut component) = entry else {
            return Err(err(format!("`component[{i}]` is not a table")));
        };
        let id = match component.remove("id") {
            Some(Value::String(id)) => id.replace('_', "-").to_lowercase(),
            _ => return Err(err(format!("`component[{i}]` has no `id`"))),
        };
        let mut http = match component.remove("trigger") {
            Some(Value::Table(t)) => t,
            _ => {
                return Err(err(format!(
                    "component `{id}` has no `[component.trigger]`"
                )))
            }
        };
        if let Some(Value::String(route)) = http.get("route") {
            let route = format!("{base}{route}");
            http.insert("route".into(), Value::String(route));
        }
        http.insert("component".into(), Value::String(id.clone()));
        if let Some(config) = component.remove("config") {
            component.insert("variables".into(), config);
        }
        allowed_hosts(&id, &mut component)?;
        triggers.push(Value::Table(http));
        components.insert(id, Value::Table(component));
    }
    let mut v2 = Table::new();
    v2.insert("spin_manifest_version".into(), Value::Integer(2));
    v2.insert("application".into(), Value::Table(application));
    if let Some(variables) = v1.remove("variables") {
        v2.insert("variables".into(), variables);
    }
    let mut trigger = Table::new();
    trigger.insert("http".into(), Value::Array(triggers));
    v2.insert("trigger".into(), Value::Table(trigger));
    v2.insert("component".into(), Value::Table(components));
    // Anything left is unknown to v1 too: keep it, so the v2 reader warns.
    v1.remove("spin_manifest_version");
    for (key, value) in v1 {
        v2.insert(key, value);
    }
    Ok(v2)
}

fn strings(id: &str, key: &str, value: Option<Value>) -> Result<Option<Vec<String>>, V1Error> {
    match value {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(err(format!("component `{id}`: `{key}` must list strings"))),
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(_) => Err(err(format!("component `{id}`: `{key}` must be a list"))),
    }
}

fn allowed_hosts(id: &str, component: &mut Table) -> Result<(), V1Error> {
    let http = strings(
        id,
        "allowed_http_hosts",
        component.remove("allowed_http_hosts"),
    )?
    .unwrap_or_default();
    let own = strings(
        id,
        "allowed_outbound_hosts",
        component.remove("allowed_outbound_hosts"),
    )?;
    let mut hosts = Vec::new();
    if own.is_none() {
        hosts.extend(["redis://*:*", "mysql://*:*", "postgres://*:*"].map(String::from));
    }
    for entry in http {
        if entry == "insecure:allow-all" {
            hosts.extend(["http://*:*", "https://*:*", "http://self"].map(String::from));
            continue;
        }
        let host = entry
            .split_once("://")
            .map_or(entry.as_str(), |(_, rest)| rest)
            .trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return Err(err(format!(
                "component `{id}`: `allowed_http_hosts` entry `{entry}` is not a host"
            )));
        }
        if host == "self" {
            hosts.push("http://self".into());
        } else {
            hosts.push(format!("http://{host}"));
            hosts.push(format!("https://{host}"));
        }
    }
    if let Some(own) = own {
        hosts.extend(own);
    }
    if !hosts.is_empty() {
        component.insert(
            "allowed_outbound_hosts".into(),
            Value::Array(hosts.into_iter().map(Value::String).collect()),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v1_manifest_becomes_the_v2_document_spin_makes_of_it() {
        let v1: Table = toml::from_str(
            r#"
spin_manifest_version = "1"
name = "app"
version = "0.1.0"
trigger = { type = "http", base = "/base" }
[variables]
greeting = { default = "hi" }
[[component]]
id = "Hello_World"
source = "hello.wasm"
allowed_http_hosts = ["example.com:8080", "self"]
key_value_stores = ["default"]
[component.trigger]
route = "/hello/..."
executor = { type = "wagi" }
[component.config]
message = "{{ greeting }}"
"#,
        )
        .unwrap();
        let v2 = to_v2(v1).unwrap();
        let expected: Table = toml::from_str(
            r#"
spin_manifest_version = 2
[application]
name = "app"
version = "0.1.0"
[variables]
greeting = { default = "hi" }
[[trigger.http]]
route = "/base/hello/..."
executor = { type = "wagi" }
component = "hello-world"
[component.hello-world]
source = "hello.wasm"
key_value_stores = ["default"]
variables = { message = "{{ greeting }}" }
allowed_outbound_hosts = ["redis://*:*", "mysql://*:*", "postgres://*:*", "http://example.com:8080", "https://example.com:8080", "http://self"]
"#,
        )
        .unwrap();
        assert_eq!(v2, expected);
    }

    #[test]
    fn only_http_triggers_convert() {
        let v1: Table = toml::from_str(
            "spin_manifest_version = \"1\"\nname = \"x\"\ntrigger = { type = \"redis\" }\n",
        )
        .unwrap();
        assert_eq!(
            to_v2(v1).unwrap_err().to_string(),
            "`trigger.type` is `redis`; wasmhost runs only HTTP triggers"
        );
    }
}
