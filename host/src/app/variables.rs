//! Spin application variables: `[variables]` give names, defaults and
//! whether a value is required; each component's `variables` table maps
//! its own keys to templates over them (`api_url = "https://{{ host }}"`);
//! a component reads its keys through `fermyon:spin/variables`.
//!
//! Values come, highest precedence first, from `--variable name=value`,
//! from `SPIN_VARIABLE_<NAME>` in the environment, then from the default.
//! Everything is resolved once at start-up: a required variable without a
//! value, or a template naming an unknown variable, stops the start with
//! its name. Pure, table-tested.

use std::collections::BTreeMap;

use super::manifest::Variable;

/// Values given from outside the manifest, by variable name.
#[derive(Debug, Clone, Default)]
pub struct Provided {
    /// `--variable name=value`.
    pub cli: BTreeMap<String, String>,
    /// `SPIN_VARIABLE_<NAME>=value`, with the name lower-cased.
    pub env: BTreeMap<String, String>,
}

impl Provided {
    /// The `SPIN_VARIABLE_*` variables of this process, plus `cli`.
    pub fn from_env(cli: BTreeMap<String, String>) -> Self {
        let env = std::env::vars()
            .filter_map(|(k, v)| Some((k.strip_prefix("SPIN_VARIABLE_")?.to_ascii_lowercase(), v)))
            .collect();
        Self { cli, env }
    }
}

/// Why variables could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VariableError {
    /// A required variable got no value.
    #[error(
        "variable `{0}` is required but has no value: give one with `--variable {0}=...` \
         or `SPIN_VARIABLE_{upper}`", upper = .0.to_ascii_uppercase()
    )]
    MissingRequired(String),
    /// A component template names something that has no value.
    #[error("component `{component}`: variable `{key}` uses `{{{{ {name} }}}}`, which is not an application variable with a value")]
    UnknownReference {
        /// The component.
        component: String,
        /// Its variable.
        key: String,
        /// The name the template used.
        name: String,
    },
    /// A template that does not parse.
    #[error("component `{component}`: variable `{key}` has an unclosed `{{{{` in `{template}`")]
    Unclosed {
        /// The component.
        component: String,
        /// Its variable.
        key: String,
        /// The template as written.
        template: String,
    },
}

/// The value of every application variable that has one.
pub fn resolve_app(
    declared: &BTreeMap<String, Variable>,
    provided: &Provided,
) -> Result<BTreeMap<String, String>, VariableError> {
    let mut values = BTreeMap::new();
    for (name, variable) in declared {
        let value = provided
            .cli
            .get(name)
            .or_else(|| provided.env.get(name))
            .or(variable.default.as_ref());
        match value {
            Some(value) => {
                values.insert(name.clone(), value.clone());
            }
            None if variable.required => return Err(VariableError::MissingRequired(name.clone())),
            None => {}
        }
    }
    Ok(values)
}

/// A component's variables, its templates rendered over `app`.
pub fn render(
    component: &str,
    templates: &BTreeMap<String, String>,
    app: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, VariableError> {
    templates
        .iter()
        .map(|(key, template)| Ok((key.clone(), render_one(component, key, template, app)?)))
        .collect()
}

/// One template (`https://{{ api_host }}`) rendered over application
/// variables; `key` names where it came from, for errors.
pub fn render_template(
    component: &str,
    key: &str,
    template: &str,
    app: &BTreeMap<String, String>,
) -> Result<String, VariableError> {
    render_one(component, key, template, app)
}

fn render_one(
    component: &str,
    key: &str,
    template: &str,
    app: &BTreeMap<String, String>,
) -> Result<String, VariableError> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            return Err(VariableError::Unclosed {
                component: component.into(),
                key: key.into(),
                template: template.into(),
            });
        };
        let name = rest[start + 2..start + end].trim();
        let value = app
            .get(name)
            .ok_or_else(|| VariableError::UnknownReference {
                component: component.into(),
                key: key.into(),
                name: name.into(),
            })?;
        out.push_str(value);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(default: Option<&str>, required: bool) -> Variable {
        Variable {
            default: default.map(String::from),
            required,
            secret: false,
            description: None,
        }
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_cli_beats_the_environment_which_beats_the_default() {
        let declared: BTreeMap<String, Variable> = [
            ("a".to_string(), var(Some("default-a"), false)),
            ("b".to_string(), var(Some("default-b"), false)),
            ("c".to_string(), var(Some("default-c"), false)),
        ]
        .into();
        let provided = Provided {
            cli: map(&[("a", "cli-a")]),
            env: map(&[("a", "env-a"), ("b", "env-b")]),
        };
        assert_eq!(
            resolve_app(&declared, &provided).unwrap(),
            map(&[("a", "cli-a"), ("b", "env-b"), ("c", "default-c")])
        );
    }

    #[test]
    fn a_required_variable_without_a_value_is_named() {
        let declared: BTreeMap<String, Variable> =
            [("api_key".to_string(), var(None, true))].into();
        let err = resolve_app(&declared, &Provided::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "variable `api_key` is required but has no value: give one with `--variable api_key=...` or `SPIN_VARIABLE_API_KEY`"
        );
        let provided = Provided {
            cli: BTreeMap::new(),
            env: map(&[("api_key", "k")]),
        };
        assert_eq!(
            resolve_app(&declared, &provided).unwrap(),
            map(&[("api_key", "k")])
        );
    }

    #[test]
    fn templates_render_over_application_variables() {
        let app = map(&[("host", "example.com"), ("port", "8080")]);
        let templates = map(&[
            ("url", "https://{{ host }}:{{port}}/x"),
            ("plain", "literal"),
        ]);
        assert_eq!(
            render("web", &templates, &app).unwrap(),
            map(&[("plain", "literal"), ("url", "https://example.com:8080/x")])
        );
    }

    #[test]
    fn a_template_naming_an_unknown_variable_is_refused() {
        let err = render("web", &map(&[("url", "{{ nope }}")]), &BTreeMap::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "component `web`: variable `url` uses `{{ nope }}`, which is not an application variable with a value"
        );
        let err = render("web", &map(&[("url", "{{ open")]), &BTreeMap::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "component `web`: variable `url` has an unclosed `{{` in `{{ open`"
        );
    }
}
