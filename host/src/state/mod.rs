//! State that outlives a call, seen from both sides of the
//! [`crate::dispatch::Backend`] boundary, with no dependency on either:
//! the open files of guest-file-* and their persistent handle counter
//! ([`open_files`]), and the freeze gate dispatch reads and the freeze
//! capability sets ([`FreezeGate`]). Capabilities give this state its
//! meaning (what may be opened, how a freeze is done); the agent's
//! instance of it is bundled in [`crate::capabilities::HostState`] with the
//! tables whose behaviour cannot be told apart from their capability (the
//! guest-exec children, the freeze itself).

mod access;
mod freeze_gate;
pub mod open_files;

pub use access::Access;
pub use freeze_gate::FreezeGate;
