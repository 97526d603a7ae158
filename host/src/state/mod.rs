//! State that outlives a call and is seen from both sides of the
//! [`crate::dispatch::Backend`] boundary: what dispatch reads of it (the
//! freeze gate) is defined here, so that neither dispatch nor the
//! capabilities import the other. The tables themselves (open files and
//! their persistent handle counter, guest-exec children, the freeze state)
//! are owned by their capability modules and bundled per agent in
//! [`crate::capabilities::HostState`].

mod freeze_gate;

pub use freeze_gate::FreezeGate;
