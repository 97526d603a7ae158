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
    #[error("family {family}: {reason}")]
    Load { family: String, reason: LoadError },
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

/// Why a family or one of its commands cannot run (kept, and cloned to
/// every call that asks, until the next reload): the text follows
/// `X: handler unavailable: ` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LoadError {
    /// The artifact's header or metadata does not decode.
    #[error("{0}")]
    Artifact(String),
    #[error("cannot load the precompiled artifact: {0}")]
    Map(String),
    /// An artifact from the handlers directory that does not load.
    #[error("{reason}; compile {} again with this agent's `qga compile`", path.display())]
    Stale { reason: Box<LoadError>, path: PathBuf },
    #[error("cannot compile: {0}")]
    Compile(String),
    #[error("cannot load compiled code: {0}")]
    LoadCompiled(String),
    #[error("family {0}: this agent has no compiler; run `qga compile` with a qga built with the compiler feature")]
    NoCompiler(String),
    #[error("does not export {0}")]
    NoExport(String),
    #[error("export {0} is not an interface")]
    NotInterface(String),
    /// An export whose types the converter cannot map.
    #[error("{0}")]
    Signature(String),
    #[error("missing export {0}")]
    MissingExport(String),
    /// The policy refuses the command's grant.
    #[error("{0}")]
    Grant(String),
    #[error("cannot link: {0}")]
    Link(String),
}
