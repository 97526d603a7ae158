//! Privilege separation for qga (issue 20), as building blocks.
//!
//! The agent is two processes: an unprivileged *main* process (transport,
//! protocol, dispatch, wasmtime, handlers) and a small privileged *broker*
//! forked before any input is read. This crate holds the pieces both need:
//!
//! - [`wire`]: the broker's typed message set and its bounded binary codec;
//! - [`broker`]: the broker's request loop and its freeze gate;
//! - [`channel`]: a `SOCK_SEQPACKET` socketpair carrying those frames and
//!   fds (`SCM_RIGHTS`);
//! - [`privilege`]: the main process's drop to an unprivileged user with no
//!   capabilities, and the broker's narrowing to a computed capability set;
//! - [`landlock`]: the main process's filesystem view;
//! - [`seccomp`]: the main process's syscall allowlist (violations return
//!   `EPERM`, never kill);
//! - [`lifecycle`]: forking the pair and each side exiting when the other dies;
//! - [`needs`]: the capabilities each broker operation needs.
//!
//! `docs/privsep.md` describes the design and what integration still has to do.
//! `unsafe` is denied outside the `sys.rs` modules.

#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod broker;
pub mod channel;
pub mod landlock;
pub mod lifecycle;
pub mod needs;
pub mod privilege;
pub mod seccomp;
pub mod status;
pub mod wire;
