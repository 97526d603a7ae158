//! The qga artifact (`.cwasm`): a family's compiled code and the metadata
//! the agent needs without loading it, in one file, so that one sha256
//! (a policy pin) covers both. The embedded families and `qga compile`
//! write the same format:
//!
//! ```text
//! qga-artifact 1
//! source sha256 <hex>               (the .wasm it was compiled from)
//! command <name> reply|no-reply     (one line per exported command, in order)
//! import <interface>                (one line per imported interface)
//! <empty line>
//! <the output of Engine::precompile_component>
//! ```

use crate::metadata::{ExportedCommand, Metadata};

const MAGIC: &str = "qga-artifact 1\n";

/// Why bytes are not a qga artifact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    #[error("not a qga artifact (made by `qga compile`)")]
    NotAnArtifact,
    #[error("corrupt qga artifact header: {0}")]
    BadHeader(String),
    #[error("name {0:?} cannot be written in an artifact header")]
    BadName(String),
}

/// Whether `bytes` start like a qga artifact.
pub fn is_artifact(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC.as_bytes())
}

/// Header and compiled code in one artifact.
pub fn encode(metadata: &Metadata, compiled: &[u8]) -> Result<Vec<u8>, ArtifactError> {
    let plain = |name: &str| {
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
            Err(ArtifactError::BadName(name.to_owned()))
        } else {
            Ok(())
        }
    };
    let mut header = String::from(MAGIC);
    plain(&metadata.source_sha256)?;
    header.push_str(&format!("source sha256 {}\n", metadata.source_sha256));
    for command in &metadata.commands {
        plain(&command.name)?;
        let reply = if command.success_response { "reply" } else { "no-reply" };
        header.push_str(&format!("command {} {reply}\n", command.name));
    }
    for import in &metadata.imports {
        plain(import)?;
        header.push_str(&format!("import {import}\n"));
    }
    header.push('\n');
    let mut out = header.into_bytes();
    out.extend_from_slice(compiled);
    Ok(out)
}

/// The metadata and the compiled code (a sub-slice of `bytes`).
pub fn decode(bytes: &[u8]) -> Result<(Metadata, &[u8]), ArtifactError> {
    if !is_artifact(bytes) {
        return Err(ArtifactError::NotAnArtifact);
    }
    let end = bytes
        .windows(2)
        .position(|w| w == b"\n\n")
        .ok_or_else(|| ArtifactError::BadHeader("no end of header".into()))?;
    let header =
        std::str::from_utf8(&bytes[MAGIC.len()..=end]).map_err(|_| ArtifactError::BadHeader("not UTF-8".into()))?;
    let mut metadata = Metadata::default();
    for line in header.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["command", name, "reply"] => metadata.commands.push(ExportedCommand {
                name: (*name).to_owned(),
                success_response: true,
            }),
            ["command", name, "no-reply"] => metadata.commands.push(ExportedCommand {
                name: (*name).to_owned(),
                success_response: false,
            }),
            ["import", name] => metadata.imports.push((*name).to_owned()),
            ["source", "sha256", digest] => metadata.source_sha256 = (*digest).to_owned(),
            _ => return Err(ArtifactError::BadHeader(format!("unknown line {line:?}"))),
        }
    }
    Ok((metadata, &bytes[end + 2..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_what_it_cannot_hold() {
        let metadata = Metadata {
            commands: vec![
                ExportedCommand {
                    name: "guest-a".into(),
                    success_response: true,
                },
                ExportedCommand {
                    name: "guest-b".into(),
                    success_response: false,
                },
            ],
            imports: vec!["wasi:cli/environment@0.2.6".into()],
            source_sha256: "ab".repeat(32),
        };
        let bytes = encode(&metadata, b"\x7fELF\n\ncode").unwrap();
        let (read, code) = decode(&bytes).unwrap();
        assert_eq!(read, metadata);
        assert_eq!(code, b"\x7fELF\n\ncode");
        assert_eq!(decode(b"\x7fELF"), Err(ArtifactError::NotAnArtifact));
        assert!(matches!(
            decode(b"qga-artifact 1\ncommand x\n\n"),
            Err(ArtifactError::BadHeader(_))
        ));
        assert!(matches!(
            decode(b"qga-artifact 1\nimport x"),
            Err(ArtifactError::BadHeader(_))
        ));
        let bad = Metadata {
            commands: vec![],
            imports: vec!["a\nb".into()],
            source_sha256: "ab".repeat(32),
        };
        assert_eq!(encode(&bad, b""), Err(ArtifactError::BadName("a\nb".into())));
    }
}
