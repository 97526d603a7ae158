//! Which Linux capabilities the broker needs for each operation: the input
//! to [`crate::privilege::keep_only`], computed from what the policy grants,
//! and what `qga policy audit` can show per command.
//!
//! The broker runs as uid 0, so root-owned files with owner write bits
//! (`/etc/shadow`, sysfs attributes) need no capability; capabilities cover
//! what the owner bits do not.

use crate::privilege::CapSet;
use crate::wire::Operation;

const CAP_CHOWN: u32 = 0;
const CAP_DAC_OVERRIDE: u32 = 1;
const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_FOWNER: u32 = 3;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_SYS_BOOT: u32 = 22;
const CAP_SYS_TIME: u32 = 25;
const CAP_AUDIT_WRITE: u32 = 29;

/// Every capability the last cap of the kernels qga supports (40), for the
/// operations that hand the guest a root process.
const ALL: u64 = (1 << 41) - 1;

/// The capabilities one operation needs in the broker.
pub fn capabilities_for(operation: Operation) -> CapSet {
    let caps: &[u32] = match operation {
        // Files owned by other users, directories root cannot search by mode.
        Operation::OpenFile => &[CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH],
        // The channel device is root's: owner bits suffice.
        Operation::ReopenChannel => &[],
        // guest-exec children get what qemu-ga gives them: root with every
        // capability. They inherit the broker's bounding set, so granting
        // guest-exec keeps them all (an operator narrows this by not granting
        // guest-exec, or by a program allowlist of helpers that need less).
        Operation::Spawn => return CapSet::from_bits(ALL),
        // FIFREEZE, FITHAW, FITRIM: CAP_SYS_ADMIN.
        Operation::Freeze | Operation::Thaw | Operation::Trim => &[CAP_SYS_ADMIN],
        // clock_settime and the RTC (hwclock's RTC_SET_TIME).
        Operation::SetTime => &[CAP_SYS_TIME],
        // sysfs online attributes are root 0644.
        Operation::WriteSysfs => &[],
        // Writing into a user's 0700 ~/.ssh, chown and chmod of their file.
        Operation::AuthorizedKeys => &[CAP_DAC_OVERRIDE, CAP_CHOWN, CAP_FOWNER],
        // chpasswd through PAM: /etc/shadow is root's; PAM logs to audit.
        Operation::Chpasswd => &[CAP_AUDIT_WRITE],
        // reboot(2) through systemd or directly.
        Operation::Shutdown => &[CAP_SYS_BOOT],
    };
    caps.iter().fold(CapSet::EMPTY, |set, &cap| set.with(cap))
}

/// The union over every granted operation: what the broker keeps.
pub fn broker_capabilities(granted: impl IntoIterator<Item = Operation>) -> CapSet {
    granted.into_iter().fold(CapSet::EMPTY, |set, op| {
        CapSet::from_bits(set.bits() | capabilities_for(op).bits())
    })
}
