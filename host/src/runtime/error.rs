//! The runtime's errors.

use std::path::PathBuf;

use thiserror::Error;

use crate::trust::TrustError;

#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error("component for family {family} refused: {reason}")]
    Refused { family: String, reason: String },
    #[error("component for family {family} is invalid: {reason}")]
    BadComponent { family: String, reason: String },
    #[error("command {command} is exported by both family {first} and family {second}")]
    DuplicateCommand {
        command: String,
        first: String,
        second: String,
    },
    #[error("cannot set up the wasm engine: {0}")]
    Engine(String),
    #[error("family {family}: {reason}")]
    Compile { family: String, reason: String },
    #[error(
        "{path} is precompiled native code that the policy does not trust: pin its sha256 in the policy ([component.{family}] sha256 = \"…\", as `qga compile` prints it) or sign it with a key in [handlers] trusted-keys to load it"
    )]
    Untrusted { family: String, path: PathBuf },
    #[error(
        "{path} is a .wasm component and this agent has no compiler: run `qga compile {path}` (a qga built with the compiler feature) and pin the artifact's sha256 in the policy"
    )]
    NeedsCompiler { family: String, path: PathBuf },
    #[error("component for family {family} has sha256 {digest}, but the policy pins {pinned}")]
    PinMismatch {
        family: String,
        digest: String,
        pinned: String,
    },
}
