//! A component's `files`: the host files it may read, staged into one
//! directory that every instance sees read-only at `/`.
//!
//! As in Spin: `"static/**/*"` mounts each matching file at its path
//! relative to the manifest's directory; `{ source = "assets", destination =
//! "/www" }` mounts a directory's tree under `destination`;
//! `exclude_files` globs (relative to the manifest's directory) remove files
//! from either. Files are copied when the app starts, so a guest can never
//! reach past them, and editing them afterwards does not change what a
//! running app serves.

use std::path::{Component as PathPart, Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use glob::Pattern;

use super::manifest::FileMount;

/// Copies the files component `id` mounts into `staging`. `dir` is the
/// manifest's directory.
pub fn stage(
    id: &str,
    dir: &Path,
    files: &[FileMount],
    exclude: &[String],
    staging: &Path,
) -> Result<()> {
    let exclude = exclude
        .iter()
        .map(|p| {
            Pattern::new(p)
                .with_context(|| format!("component `{id}`: invalid `exclude_files` glob `{p}`"))
        })
        .collect::<Result<Vec<_>>>()?;
    for mount in files {
        for (from, relative, to) in entries(id, dir, mount)? {
            if exclude.iter().any(|p| p.matches_path(&relative)) {
                continue;
            }
            let target = staging.join(guest_relative(id, &to)?);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(&from, &target).with_context(|| {
                format!(
                    "component `{id}`: cannot copy `{}` for `files`",
                    from.display()
                )
            })?;
        }
    }
    Ok(())
}

/// Every file a mount names: (host path, path relative to the manifest's
/// directory, guest path).
fn entries(id: &str, dir: &Path, mount: &FileMount) -> Result<Vec<(PathBuf, PathBuf, PathBuf)>> {
    let mut found = Vec::new();
    match mount {
        FileMount::Pattern(pattern) => {
            let full = dir.join(pattern);
            let full = full
                .to_str()
                .with_context(|| format!("component `{id}`: `files` path is not UTF-8"))?;
            for path in glob::glob(full)
                .with_context(|| format!("component `{id}`: invalid `files` glob `{pattern}`"))?
            {
                let path = path?;
                if path.is_file() {
                    let relative = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
                    found.push((path, relative.clone(), relative));
                }
            }
        }
        FileMount::Placement {
            source,
            destination,
        } => {
            let root = dir.join(source);
            if !root.is_dir() {
                bail!(
                    "component `{id}`: `files` source `{source}` is not a directory (looked for `{}`)",
                    root.display()
                );
            }
            let full = root.join("**").join("*");
            let full = full
                .to_str()
                .with_context(|| format!("component `{id}`: `files` path is not UTF-8"))?;
            for path in glob::glob(full)? {
                let path = path?;
                if path.is_file() {
                    let inside = path.strip_prefix(&root).unwrap_or(&path).to_path_buf();
                    let relative = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
                    found.push((path, relative, Path::new(destination).join(inside)));
                }
            }
        }
    }
    Ok(found)
}

/// `to` as a path below the staging root: leading `/` dropped, and no `..`
/// that could climb out of it.
fn guest_relative(id: &str, to: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for part in to.components() {
        match part {
            PathPart::Normal(p) => out.push(p),
            PathPart::RootDir | PathPart::CurDir => {}
            PathPart::ParentDir | PathPart::Prefix(_) => {
                bail!(
                    "component `{id}`: `files` destination `{}` leaves the mount root",
                    to.display()
                )
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(dir: &Path, files: &[&str]) {
        for f in files {
            let p = dir.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, f).unwrap();
        }
    }

    fn staged(staging: &Path) -> Vec<String> {
        let mut out: Vec<String> = glob::glob(staging.join("**/*").to_str().unwrap())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .map(|p| {
                p.strip_prefix(staging)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn patterns_keep_relative_paths_and_placements_move_trees_and_excludes_win() {
        let app = tempfile::tempdir().unwrap();
        tree(
            app.path(),
            &[
                "static/a.txt",
                "static/sub/b.txt",
                "static/secret.key",
                "assets/c.css",
                "other.txt",
            ],
        );
        let staging = tempfile::tempdir().unwrap();
        let files = vec![
            FileMount::Pattern("static/**/*".into()),
            FileMount::Placement {
                source: "assets".into(),
                destination: "/www".into(),
            },
        ];
        stage(
            "web",
            app.path(),
            &files,
            &["**/*.key".into()],
            staging.path(),
        )
        .unwrap();
        assert_eq!(
            staged(staging.path()),
            ["static/a.txt", "static/sub/b.txt", "www/c.css"]
        );
        assert_eq!(
            std::fs::read_to_string(staging.path().join("www/c.css")).unwrap(),
            "assets/c.css"
        );
    }

    #[test]
    fn a_destination_that_climbs_out_is_refused() {
        let app = tempfile::tempdir().unwrap();
        tree(app.path(), &["assets/c.css"]);
        let staging = tempfile::tempdir().unwrap();
        let files = vec![FileMount::Placement {
            source: "assets".into(),
            destination: "/../../etc".into(),
        }];
        let err = stage("web", app.path(), &files, &[], staging.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "component `web`: `files` destination `/../../etc/c.css` leaves the mount root"
        );
    }

    #[test]
    fn a_missing_placement_source_is_named() {
        let app = tempfile::tempdir().unwrap();
        let staging = tempfile::tempdir().unwrap();
        let files = vec![FileMount::Placement {
            source: "nope".into(),
            destination: "/".into(),
        }];
        let err = stage("web", app.path(), &files, &[], staging.path()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("component `web`: `files` source `nope` is not a directory"),
            "{err}"
        );
    }
}
