//! What the agent reads from a family's component without compiling it:
//! the commands its `qga:agent/<family>` interface exports and the
//! interfaces it imports. Read from the `.wasm` (at build time for the
//! embedded families, by `qga compile` for custom ones) and carried beside
//! the compiled code in the artifact (see [`crate::artifact`]).

use wasmtime::wasmparser::component_types::{ComponentDefinedType, ComponentEntityType, ComponentValType};
use wasmtime::wasmparser::{BinaryReaderError, Parser, Payload, Validator, WasmFeatures};

/// The WIT package every family exports its interface from.
pub const PACKAGE: &str = "qga:agent";

/// One exported command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedCommand {
    pub name: String,
    /// False for a command whose success sends no reply (its result is
    /// `result<no-reply, qga-error>`).
    pub success_response: bool,
}

/// A family's exports and imports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    /// In the interface's order.
    pub commands: Vec<ExportedCommand>,
    /// Every interface imported at the top level, sorted, no duplicates.
    pub imports: Vec<String>,
    /// Lower-case hex sha256 of the `.wasm` it was read from: which build
    /// of the component an artifact was compiled from (two builds that
    /// compile to the same code are still two artifacts).
    pub source_sha256: String,
}

/// Read a family's metadata from its component (validating it).
pub fn read(family: &str, wasm: &[u8]) -> Result<Metadata, String> {
    use sha2::Digest as _;
    Ok(Metadata {
        commands: exported_commands(family, wasm)?,
        imports: imported_interfaces(wasm)?,
        source_sha256: sha2::Sha256::digest(wasm).iter().map(|b| format!("{b:02x}")).collect(),
    })
}

/// A parser's complaint about a component, on one line (some of
/// wasmparser's messages span several: they go to the log).
fn invalid(e: BinaryReaderError) -> String {
    let text = e.to_string();
    format!(
        "not a valid component: {}",
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    )
}

/// The commands a family component exports (the functions of its
/// `qga:agent/<family>` interface), read from its type section.
fn exported_commands(family: &str, wasm: &[u8]) -> Result<Vec<ExportedCommand>, String> {
    let types = Validator::new_with_features(WasmFeatures::all())
        .validate_all(wasm)
        .map_err(invalid)?;
    let types = types.as_ref();
    let export = format!("{PACKAGE}/{family}");
    let item = types
        .component_item_for_export(&export)
        .ok_or_else(|| format!("does not export interface {export}"))?;
    let ComponentEntityType::Instance(instance) = item.ty else {
        return Err(format!("export {export} is not an interface"));
    };
    let mut commands = Vec::new();
    for (name, item) in &types[instance].exports {
        let ComponentEntityType::Func(func) = item.ty else {
            continue;
        };
        let no_reply = match types[func].result {
            Some(ComponentValType::Type(id)) => match &types[id] {
                ComponentDefinedType::Result {
                    ok: Some(ComponentValType::Type(ok)),
                    ..
                } => matches!(&types[*ok], ComponentDefinedType::Enum(cases)
                        if cases.len() == 1 && cases.iter().all(|c| c.as_str() == "no-reply")),
                ComponentDefinedType::Result { .. } => false,
                _ => return Err(format!("{name} must return result<T, qga-error>")),
            },
            _ => return Err(format!("{name} must return result<T, qga-error>")),
        };
        commands.push(ExportedCommand {
            name: name.clone(),
            success_response: !no_reply,
        });
    }
    Ok(commands)
}

/// Every interface a component imports (its top-level import section).
fn imported_interfaces(wasm: &[u8]) -> Result<Vec<String>, String> {
    let mut depth = 0usize;
    let mut out = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(invalid)? {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import = import.map_err(invalid)?;
                    out.push(import.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}
