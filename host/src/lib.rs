//! qga: a QEMU guest agent whose command handlers run in WebAssembly
//! sandboxes. The binary is `main.rs`; everything else lives here so tests
//! and tools can use it.

pub mod audit;
pub mod call_slot;
pub mod capabilities;
pub mod cli;
pub mod config;
pub mod convert;
pub mod dispatch;
pub mod errno_text;
pub mod limits;
pub mod logfile;
pub mod pidfile;
pub mod policy;
pub mod policy_report;
pub mod protocol;
pub mod qemu_ga_facts;
pub mod qobject;
pub mod runtime;
pub mod state;
pub mod transport;
pub mod trust;
pub mod write_gate;
