//! The freeze state as dispatch sees it.

/// Whether filesystems are frozen (guest-fsfreeze-*): then only
/// qemu-ga's freeze allowlist runs. The freeze capability computes it,
/// dispatch gates on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezeGate {
    Thawed,
    /// Frozen by a guest-fsfreeze-freeze(-list) of this agent: the frozen
    /// reason replaces "disabled" even for blocked commands (qemu-ga's
    /// ga_set_frozen disables them again, with its reason).
    Frozen,
    /// Started frozen (state file left by a killed agent): blocked
    /// commands say only "has been disabled" (qemu-ga applies its block
    /// list after the frozen state at start-up).
    FrozenAtStart,
}
