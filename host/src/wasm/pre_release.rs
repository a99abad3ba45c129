//! Components built against WASI 0.2's last pre-release,
//! `0.2.0-rc-2023-11-10` (what Spin SDK 2's Rust and JS builds and
//! early componentize tools import), served as WASI 0.2.0 components.
//!
//! That pre-release and 0.2.0 differ in names, not shapes, for every
//! interface but three functions of `wasi:http/types` (`fields.has` is new
//! in 0.2.0; request-options' timeouts were `*-timeout-ms`;
//! `future-trailers.get` gained a `result`). So the component's top-level
//! import and export names are rewritten from `@0.2.0-rc-2023-11-10` to a
//! 0.2 patch version it does not already name (`@0.2.0` unless the WASI
//! adapter inside already imports that: a wasip1 module componentized
//! imports both) before it is compiled, and the engine links it as any 0.2
//! component (its linker resolves any 0.2 patch to the host's 0.2): every
//! interface it uses gets the host's 0.2 implementation, and a component
//! calling one of the three changed functions fails at instantiation with
//! the engine's type error naming it.
//!
//! The earlier pre-release `0.2.0-rc-2023-10-18` changed shapes throughout
//! (streams, polling, all of wasi:http), so renaming cannot serve it: it
//! has host bindings of its own ([`super::wasi_2023_10_18`]).

use wasm_encoder::reencode::{Error, Reencode, ReencodeComponent};

/// The version this module serves as 0.2.0.
const SERVED: &str = "@0.2.0-rc-2023-11-10";

/// How many 0.2 patch versions are tried for the renamed names.
const PATCHES: u32 = 100;

/// Rewrites names at the top level only: a nested component's imports are
/// named by its parent's `instantiate` arguments, which stay as they are.
struct Renamer {
    depth: usize,
    /// What `@0.2.0-rc-2023-11-10` becomes.
    version: String,
}

impl Renamer {
    fn rename(&self, name: &str) -> String {
        if self.depth == 0 {
            name.replace(SERVED, &self.version)
        } else {
            name.to_owned()
        }
    }
}

impl Reencode for Renamer {
    type Error = std::convert::Infallible;
}

impl ReencodeComponent for Renamer {
    fn push_depth(&mut self) {
        self.depth += 1;
    }

    fn pop_depth(&mut self) {
        self.depth -= 1;
    }

    fn parse_component_import_section(
        &mut self,
        imports: &mut wasm_encoder::ComponentImportSection,
        section: wasmparser::ComponentImportSectionReader<'_>,
    ) -> Result<(), Error<Self::Error>> {
        for import in section {
            let import = import?;
            let ty = self.component_type_ref(import.ty)?;
            imports.import(self.rename(import.name.name), ty);
        }
        Ok(())
    }

    fn parse_component_export(
        &mut self,
        exports: &mut wasm_encoder::ComponentExportSection,
        export: wasmparser::ComponentExport<'_>,
    ) -> Result<(), Error<Self::Error>> {
        let ty = export.ty.map(|t| self.component_type_ref(t)).transpose()?;
        let index = self.component_external_index(export.kind, export.index);
        exports.export(self.rename(export.name.name), export.kind.into(), index, ty);
        Ok(())
    }
}

/// The names of `component`'s top-level imports and exports. Only the top
/// level is read; nested modules and components are skipped.
fn top_level_names(component: &[u8]) -> Vec<String> {
    use wasmparser::{Chunk, Parser, Payload};
    let mut parser = Parser::new(0);
    let mut offset = 0;
    let mut names = Vec::new();
    while offset < component.len() {
        let Ok(Chunk::Parsed { consumed, payload }) = parser.parse(&component[offset..], true)
        else {
            break;
        };
        offset += consumed;
        match payload {
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => offset = unchecked_range.end,
            Payload::ComponentImportSection(imports) => names.extend(
                imports
                    .into_iter()
                    .flatten()
                    .map(|i| i.name.name.to_owned()),
            ),
            Payload::ComponentExportSection(exports) => names.extend(
                exports
                    .into_iter()
                    .flatten()
                    .map(|e| e.name.name.to_owned()),
            ),
            Payload::End(_) => break,
            _ => {}
        }
    }
    names
}

/// `component` with its `0.2.0-rc-2023-11-10` names made 0.2 ones, or
/// `None` when it names none (then it is left untouched).
pub fn adopt(component: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let names = top_level_names(component);
    if !names.iter().any(|n| n.contains(SERVED)) {
        return Ok(None);
    }
    let version = (0..PATCHES)
        .map(|patch| format!("@0.2.{patch}"))
        .find(|version| {
            names
                .iter()
                .filter(|n| n.contains(SERVED))
                .all(|n| !names.contains(&n.replace(SERVED, version)))
        })
        .ok_or("every 0.2 patch version of its pre-release imports is imported already")?;
    let mut encoded = wasm_encoder::Component::new();
    Renamer { depth: 0, version }
        .parse_component(&mut encoded, wasmparser::Parser::new(0), component)
        .map_err(|e| e.to_string())?;
    Ok(Some(encoded.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component importing `wasi:io/poll` at `version` (the instance
    /// type exporting the `pollable` resource) and exporting it again.
    fn component(version: &str) -> Vec<u8> {
        let wat = format!(
            r#"(component
                (import "wasi:io/poll@{version}" (instance $poll
                    (export "pollable" (type (sub resource)))))
                (export "wasi:io/poll@{version}" (instance $poll)))"#
        );
        wat::parse_str(wat).unwrap()
    }

    fn names(component: &[u8]) -> Vec<String> {
        let mut names = Vec::new();
        for payload in wasmparser::Parser::new(0).parse_all(component) {
            match payload.unwrap() {
                wasmparser::Payload::ComponentImportSection(s) => names.extend(
                    s.into_iter()
                        .map(|i| format!("import {}", i.unwrap().name.name)),
                ),
                wasmparser::Payload::ComponentExportSection(s) => names.extend(
                    s.into_iter()
                        .map(|e| format!("export {}", e.unwrap().name.name)),
                ),
                _ => {}
            }
        }
        names
    }

    #[test]
    fn the_2023_11_10_names_become_0_2_0_and_the_result_validates() {
        let adopted = adopt(&component("0.2.0-rc-2023-11-10")).unwrap().unwrap();
        assert_eq!(
            names(&adopted),
            ["import wasi:io/poll@0.2.0", "export wasi:io/poll@0.2.0"]
        );
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(&adopted)
            .unwrap();
    }

    #[test]
    fn a_name_the_component_already_imports_is_not_taken_twice() {
        let wat = r#"(component
            (import "wasi:io/poll@0.2.0" (instance (export "pollable" (type (sub resource)))))
            (import "wasi:io/poll@0.2.0-rc-2023-11-10" (instance (export "pollable" (type (sub resource))))))"#;
        let adopted = adopt(&wat::parse_str(wat).unwrap()).unwrap().unwrap();
        assert_eq!(
            names(&adopted),
            ["import wasi:io/poll@0.2.0", "import wasi:io/poll@0.2.1"]
        );
    }

    #[test]
    fn a_0_2_component_is_left_untouched() {
        assert_eq!(adopt(&component("0.2.6")).unwrap(), None);
    }

    #[test]
    fn the_2023_10_18_names_are_left_to_their_own_bindings() {
        assert_eq!(adopt(&component("0.2.0-rc-2023-10-18")).unwrap(), None);
    }
}
