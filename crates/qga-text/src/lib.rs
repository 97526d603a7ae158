//! Linux text formats (and qemu-ga's strict base64) that both sides of the sandbox read: the host's
//! capabilities and the wasm handlers. One copy, built for both targets,
//! so the host (which decides what to freeze) and the handlers (which
//! report it) cannot disagree. No dependencies, no I/O.

pub mod base64;
pub mod civil;
pub mod mountinfo;
pub mod path;
