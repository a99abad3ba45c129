//! From a file on disk to component bytes the engine can compile: read,
//! recognise, componentize wasip1 modules, and find the HTTP handler the
//! component exports. Every failure names the file and says what to do.

use std::path::{Path, PathBuf};

use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER,
    WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wasmparser::{Chunk, Parser, Payload};

/// Interface-name prefix of the wasi:http 0.2 handler: any 0.2 patch
/// version is accepted (wasmtime matches semver-compatible versions).
const P2_HANDLER: &str = "wasi:http/incoming-handler@0.2";

/// Interface-name prefix of the wasi:http 0.3 handler.
const P3_HANDLER: &str = "wasi:http/handler@0.3";

/// The wasi:http handler of the WASI `0.2.0-rc-2023-10-18` pre-release
/// (it starts with [`P2_HANDLER`] too, so it is looked for first).
const RC_2023_10_18_HANDLER: &str = "wasi:http/incoming-handler@0.2.0-rc-2023-10-18";

/// Which `wasi:http` handler a component exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandlerKind {
    /// `wasi:http/incoming-handler@0.2.x`.
    P2,
    /// `wasi:http/handler@0.3.x` (needs the engine's concurrency support).
    P3,
    /// `wasi:http/incoming-handler@0.2.0-rc-2023-10-18`, the pre-release
    /// Spin SDK 2 was built on: served over the 0.2 host through
    /// [`super::wasi_2023_10_18`].
    P2Rc20231018,
}

impl HandlerKind {
    /// Whether this is a wasi:http 0.2 handler (a release or the
    /// 2023-10-18 pre-release): served one call per request, without the
    /// engine's concurrency support, and from baseline code at first.
    pub fn is_p2(self) -> bool {
        matches!(self, HandlerKind::P2 | HandlerKind::P2Rc20231018)
    }
}

/// Why a file cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        /// The file the user named.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not WebAssembly at all.
    #[error("`{}` is not a WebAssembly file (it does not start with the `\\0asm` magic bytes)", path.display())]
    NotWasm {
        /// The file the user named.
        path: PathBuf,
    },
    /// A core module without the type information needed to wrap it.
    #[error(
        "`{}` is a core WebAssembly module without component type information; \
         build it with a wit-bindgen based SDK (which embeds `component-type` sections) \
         or for the wasm32-wasip2 target", path.display()
    )]
    NoComponentType {
        /// The file the user named.
        path: PathBuf,
    },
    /// Wrapping a wasip1 module into a component failed.
    #[error("cannot turn the wasip1 module `{}` into a component: {detail}", path.display())]
    Componentize {
        /// The file the user named.
        path: PathBuf,
        /// wit-component's explanation.
        detail: String,
    },
    /// The binary is malformed.
    #[error("`{}` is not a valid WebAssembly binary: {detail}", path.display())]
    Invalid {
        /// The file the user named.
        path: PathBuf,
        /// The parser's explanation.
        detail: String,
    },
    /// Renaming a pre-release component's imports failed.
    #[error("cannot adapt the WASI 0.2.0-rc-2023-11-10 component `{}`: {detail}", path.display())]
    Adapt {
        /// The file the user named.
        path: PathBuf,
        /// The encoder's explanation.
        detail: String,
    },
    /// The component serves no HTTP.
    #[error(
        "`{}` exports no HTTP handler: expected `wasi:http/incoming-handler@0.2.x` (or \
         `@0.2.0-rc-2023-10-18`) or `wasi:http/handler@0.3.x`, found {}", path.display(), list(exports)
    )]
    NoHandler {
        /// The file the user named.
        path: PathBuf,
        /// What it exports instead.
        exports: Vec<String>,
    },
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "no exports".to_string()
    } else {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A component ready to compile.
pub struct ComponentBytes {
    /// The component binary (componentized when the file was a module).
    pub bytes: Vec<u8>,
    /// The handler it exports.
    pub kind: HandlerKind,
    /// Whether the file was a wasip1 module wrapped at load time.
    pub componentized: bool,
}

/// Reads `path` and prepares it for compilation.
pub fn read_component(path: &Path) -> Result<ComponentBytes, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    prepare(path, bytes)
}

/// Recognises `bytes` (read from `path`, named in errors), wraps a wasip1
/// module into a component, and finds its handler.
pub fn prepare(path: &Path, bytes: Vec<u8>) -> Result<ComponentBytes, LoadError> {
    if !bytes.starts_with(b"\0asm") {
        return Err(LoadError::NotWasm {
            path: path.to_owned(),
        });
    }
    let (mut bytes, componentized) = if Parser::is_core_wasm(&bytes) {
        (componentize(path, &bytes)?, true)
    } else {
        (bytes, false)
    };
    if let Some(adopted) = super::pre_release::adopt(&bytes).map_err(|detail| LoadError::Adapt {
        path: path.to_owned(),
        detail,
    })? {
        bytes = adopted;
    }
    let exports = top_level_exports(&bytes).map_err(|e| LoadError::Invalid {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    let kind = handler_kind(&exports).ok_or_else(|| LoadError::NoHandler {
        path: path.to_owned(),
        exports,
    })?;
    Ok(ComponentBytes {
        bytes,
        kind,
        componentized,
    })
}

fn componentize(path: &Path, module: &[u8]) -> Result<Vec<u8>, LoadError> {
    if !has_component_type(module) {
        return Err(LoadError::NoComponentType {
            path: path.to_owned(),
        });
    }
    let fail = |e: anyhow::Error| LoadError::Componentize {
        path: path.to_owned(),
        detail: format!("{e:#}"),
    };
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(module)
        .map_err(fail)?
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )
        .map_err(fail)?
        .encode()
        .map_err(fail)
}

/// Wraps a wasip1 command module (`_start`) into a component exporting
/// `wasi:cli/run`, with the command adapter: how WAGI programs run. No
/// component type information is needed: a command's interface is fixed.
pub fn componentize_command(module: &[u8]) -> anyhow::Result<Vec<u8>> {
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(module)?
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER,
        )?
        .encode()
}

fn has_component_type(module: &[u8]) -> bool {
    Parser::new(0).parse_all(module).any(|payload| {
        matches!(payload, Ok(Payload::CustomSection(s)) if s.name().starts_with("component-type"))
    })
}

/// Names the component exports at its top level. Nested modules and
/// components are skipped over unparsed: they hold nearly all of the bytes
/// and none of the top-level exports.
fn top_level_exports(component: &[u8]) -> wasmparser::Result<Vec<String>> {
    let mut parser = Parser::new(0);
    let mut offset = 0;
    let mut names = Vec::new();
    while offset < component.len() {
        let (consumed, payload) = match parser.parse(&component[offset..], true)? {
            Chunk::Parsed { consumed, payload } => (consumed, payload),
            // With `eof` set the parser reports truncation as an error
            // instead; stop rather than loop.
            Chunk::NeedMoreData(_) => break,
        };
        offset += consumed;
        match payload {
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => offset = unchecked_range.end,
            Payload::ComponentExportSection(exports) => {
                for export in exports {
                    names.push(export?.name.name.to_string());
                }
            }
            Payload::End(_) => break,
            _ => {}
        }
    }
    Ok(names)
}

fn handler_kind(exports: &[String]) -> Option<HandlerKind> {
    if exports.iter().any(|e| e == RC_2023_10_18_HANDLER) {
        Some(HandlerKind::P2Rc20231018)
    } else if exports.iter().any(|e| e.starts_with(P2_HANDLER)) {
        Some(HandlerKind::P2)
    } else if exports.iter().any(|e| e.starts_with(P3_HANDLER)) {
        Some(HandlerKind::P3)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_0_2_patch_version_is_a_p2_handler() {
        let exports = vec!["wasi:http/incoming-handler@0.2.6".to_string()];
        assert_eq!(handler_kind(&exports), Some(HandlerKind::P2));
    }

    #[test]
    fn the_2023_10_18_pre_release_handler_is_its_own_kind() {
        let exports = vec!["wasi:http/incoming-handler@0.2.0-rc-2023-10-18".to_string()];
        assert_eq!(handler_kind(&exports), Some(HandlerKind::P2Rc20231018));
        // Its prefix is not taken for a later pre-release or release.
        let exports = vec!["wasi:http/incoming-handler@0.2.0-rc-2023-11-10".to_string()];
        assert_eq!(handler_kind(&exports), Some(HandlerKind::P2));
    }

    #[test]
    fn a_0_3_handler_is_p3() {
        let exports = vec!["wasi:http/handler@0.3.0-rc-2025-09-16".to_string()];
        assert_eq!(handler_kind(&exports), Some(HandlerKind::P3));
    }

    #[test]
    fn a_cli_command_is_no_handler_and_the_error_lists_its_exports() {
        let exports = vec!["wasi:cli/run@0.2.0".to_string()];
        assert_eq!(handler_kind(&exports), None);
        let err = LoadError::NoHandler {
            path: "cmd.wasm".into(),
            exports,
        };
        assert!(
            err.to_string().contains("found `wasi:cli/run@0.2.0`"),
            "{err}"
        );
    }

    #[test]
    fn text_is_not_wasm() {
        let err = prepare(Path::new("x.txt"), b"hello".to_vec())
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("`x.txt` is not a WebAssembly file (it does not start with the `\\0asm` magic bytes)")
        );
    }

    #[test]
    fn a_core_module_without_component_type_is_refused_by_name() {
        // The smallest core module: magic and version 1.
        let module = b"\0asm\x01\0\0\0".to_vec();
        let err = prepare(Path::new("m.wasm"), module)
            .err()
            .map(|e| e.to_string());
        assert!(err
            .unwrap_or_default()
            .contains("without component type information"));
    }
}
