//! What goes into a container image that runs an app under the containerd
//! shim (`wasmhost image app`): the files of the image's one layer and its
//! entrypoint.
//!
//! A component is `/<name>.wasm`, named by the entrypoint. A Spin manifest
//! (v2) becomes `/spin.toml`, self-contained: each component's local
//! `source` copied to `/components/<id>.wasm`, its `files` staged (as at
//! serve time: globs, placements, `exclude_files`) under `/files/<id>/`
//! and mounted from there at `/`; every other key as written. A runtime
//! config, when given, is `/runtime-config.toml`.

use std::path::Path;

use anyhow::{bail, Context as _, Result};

use super::manifest::{self, Source};
use super::pack::walk;

/// The layer's files and the image's entrypoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppImage {
    /// (path in the image without the leading `/`, bytes), sorted.
    pub files: Vec<(String, Vec<u8>)>,
    /// The entrypoint.
    pub entrypoint: Vec<String>,
}

/// The image contents for `app` (a `.wasm` or a `spin.toml`).
pub fn contents(app: &Path, runtime_config: Option<&Path>) -> Result<AppImage> {
    let mut image = if app.extension().is_some_and(|e| e == "toml") {
        spin_app(app)?
    } else {
        let name = app
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| n.ends_with(".wasm"))
            .context("the app must be a `.wasm` component or a `spin.toml`")?;
        let bytes =
            std::fs::read(app).with_context(|| format!("cannot read `{}`", app.display()))?;
        AppImage {
            files: vec![(name.to_owned(), bytes)],
            entrypoint: vec![format!("/{name}")],
        }
    };
    if let Some(rc) = runtime_config {
        let bytes = std::fs::read(rc).with_context(|| format!("cannot read `{}`", rc.display()))?;
        image.files.push(("runtime-config.toml".to_owned(), bytes));
    }
    image.files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(image)
}

fn spin_app(path: &Path) -> Result<AppImage> {
    let loaded = manifest::load(path)?;
    let text = std::fs::read_to_string(path)?;
    let mut doc: toml::Table = toml::from_str(&text)?;
    if doc
        .get("spin_manifest_version")
        .and_then(toml::Value::as_integer)
        != Some(2)
    {
        bail!(
            "`{}` is not a manifest v2: images are built from v2 manifests",
            path.display()
        );
    }
    let mut files = Vec::new();
    // Where each component's table is: `[component.<id>]`, or inline in
    // the n-th `[[trigger.http]]`.
    let inline: Vec<(usize, String)> = loaded
        .manifest
        .http_triggers
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            doc.get("trigger")
                .and_then(|t| t.get("http"))
                .and_then(|h| h.get(*i))
                .and_then(|t| t.get("component"))
                .is_some_and(toml::Value::is_table)
        })
        .map(|(i, t)| (i, t.component.clone()))
        .collect();
    for (id, component) in &loaded.manifest.components {
        if !component.volumes.is_empty() {
            bail!("component `{id}`: `volumes` name host directories, which an image cannot hold");
        }
        let table = match inline.iter().find(|(_, c)| c == id) {
            Some((i, _)) => doc
                .get_mut("trigger")
                .and_then(|t| t.get_mut("http"))
                .and_then(|h| h.get_mut(*i))
                .and_then(|t| t.get_mut("component")),
            None => doc
                .get_mut("component")
                .and_then(|c| c.get_mut(id.as_str())),
        }
        .and_then(toml::Value::as_table_mut)
        .with_context(|| format!("component `{id}` is not where the manifest was read from"))?;
        match &component.source {
            Source::Local(local) => {
                let bytes = std::fs::read(local).with_context(|| {
                    format!("component `{id}`: cannot read `{}`", local.display())
                })?;
                let inside = format!("components/{id}.wasm");
                files.push((inside.clone(), bytes));
                table.insert("source".into(), inside.into());
            }
            Source::Container(_) => {
                bail!("component `{id}` is a container, which the containerd shim does not run")
            }
            // Downloaded or pulled when the pod starts, as under `serve`;
            // an upstream is reached from the pod.
            Source::Url { .. } | Source::Registry { .. } | Source::Upstream(_) => {}
        }
        if !component.files.is_empty() {
            let staging = tempfile::tempdir().context("cannot create a staging directory")?;
            super::files::stage(
                id,
                &loaded.dir,
                &component.files,
                &component.exclude_files,
                staging.path(),
            )?;
            for (relative, bytes) in walk(staging.path())? {
                files.push((format!("files/{id}/{relative}"), bytes));
            }
            let mut placement = toml::Table::new();
            placement.insert("source".into(), format!("files/{id}").into());
            placement.insert("destination".into(), "/".into());
            table.insert("files".into(), vec![toml::Value::Table(placement)].into());
            table.remove("exclude_files");
        }
    }
    files.push(("spin.toml".to_owned(), toml::to_string(&doc)?.into_bytes()));
    Ok(AppImage {
        files,
        // containerd-shim-spin's convention: the app is /spin.toml.
        entrypoint: vec!["/".to_owned()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spin_app_becomes_self_contained() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("app/static/css")).unwrap();
        std::fs::create_dir_all(d.join("build")).unwrap();
        std::fs::write(d.join("build/a.wasm"), b"\0asm-a").unwrap();
        std::fs::write(d.join("build/b.wasm"), b"\0asm-b").unwrap();
        std::fs::write(d.join("app/static/index.html"), b"<p>").unwrap();
        std::fs::write(d.join("app/static/css/x.css"), b"p{}").unwrap();
        std::fs::write(d.join("app/static/skip.tmp"), b"no").unwrap();
        std::fs::write(
            d.join("app/spin.toml"),
            r#"spin_manifest_version = 2
[application]
name = "t"
[variables]
greeting = { default = "hi" }
[[trigger.http]]
route = "/static/..."
component = "files"
[[trigger.http]]
route = "/b"
component = { source = "../build/b.wasm" }
[component.files]
source = "../build/a.wasm"
files = ["static/**/*"]
exclude_files = ["static/*.tmp"]
variables = { g = "{{ greeting }}" }
"#,
        )
        .unwrap();
        let image = contents(&d.join("app/spin.toml"), None).unwrap();
        let names: Vec<&str> = image.files.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"components/files.wasm"), "{names:?}");
        assert!(
            names.contains(&"files/files/static/index.html"),
            "{names:?}"
        );
        assert!(names.contains(&"files/files/static/css/x.css"), "{names:?}");
        assert!(!names.iter().any(|n| n.ends_with("skip.tmp")), "{names:?}");
        assert_eq!(image.entrypoint, ["/"]);
        // Laid out as in the image, the manifest loads and points inside.
        let out = tempfile::tempdir().unwrap();
        for (name, bytes) in &image.files {
            let path = out.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        let loaded = manifest::load(&out.path().join("spin.toml")).unwrap();
        assert_eq!(loaded.manifest.components.len(), 2);
        for component in loaded.manifest.components.values() {
            let Source::Local(path) = &component.source else {
                panic!("not local")
            };
            assert!(path.starts_with(out.path()), "{}", path.display());
            assert!(path.is_file());
        }
        assert_eq!(
            loaded.manifest.components["files"].variables["g"],
            "{{ greeting }}"
        );
    }

    #[test]
    fn a_component_is_its_own_entrypoint() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("hello.wasm");
        std::fs::write(&wasm, b"\0asm").unwrap();
        let rc = dir.path().join("rc.toml");
        std::fs::write(&rc, b"").unwrap();
        let image = contents(&wasm, Some(&rc)).unwrap();
        assert_eq!(image.entrypoint, ["/hello.wasm"]);
        assert_eq!(image.files[0].0, "hello.wasm");
        assert_eq!(image.files[1].0, "runtime-config.toml");
    }
}
