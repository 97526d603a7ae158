//! The broker's freeze gate. While any filesystem is frozen the broker
//! admits only what cannot block on a frozen filesystem and is needed to
//! get out of the freeze: freezing further mount points, thawing, and
//! reopening the channel the thaw will arrive on. Everything else is
//! refused, so the (single-threaded) broker never blocks while frozen and
//! always serves the thaw.

use std::collections::BTreeSet;

use crate::wire::{Reply, Request};

/// What the gate answers for a refused request.
pub const FROZEN_ERRNO: i32 = libc::EBUSY;
pub const FROZEN_MESSAGE: &str = "refused while filesystems are frozen";

#[derive(Debug, Default)]
pub struct FreezeGate {
    frozen: BTreeSet<Vec<u8>>,
}

impl FreezeGate {
    pub fn is_frozen(&self) -> bool {
        !self.frozen.is_empty()
    }

    /// The mount points frozen through this broker.
    pub fn frozen(&self) -> impl Iterator<Item = &[u8]> {
        self.frozen.iter().map(Vec::as_slice)
    }

    /// `None` if `request` may run now, else the refusal to send.
    pub fn refuses(&self, request: &Request) -> Option<Reply> {
        if !self.is_frozen() {
            return None;
        }
        let admitted = match request {
            Request::Freeze { .. } | Request::Thaw { .. } | Request::ReopenChannel => true,
            Request::OpenFile { .. }
            | Request::Spawn(_)
            | Request::Trim { .. }
            | Request::SetTime { .. }
            | Request::WriteSysfs { .. }
            | Request::AuthorizedKeys { .. }
            | Request::Chpasswd { .. }
            | Request::Shutdown { .. } => false,
        };
        (!admitted).then(|| Reply::Failed {
            errno: FROZEN_ERRNO,
            message: FROZEN_MESSAGE.into(),
        })
    }

    /// Records the outcome of an admitted request. A thaw the kernel
    /// answers `EINVAL` (not frozen: thawed by someone else) also clears.
    pub fn record(&mut self, request: &Request, reply: &Reply) {
        let succeeded = matches!(reply, Reply::Done);
        let not_frozen = matches!(
            reply,
            Reply::Failed {
                errno: libc::EINVAL,
                ..
            }
        );
        match request {
            Request::Freeze { mountpoint } => {
                if succeeded {
                    self.frozen.insert(mountpoint.as_bytes().to_vec());
                }
            }
            Request::Thaw { mountpoint } => {
                if succeeded || not_frozen {
                    self.frozen.remove(mountpoint.as_bytes());
                }
            }
            Request::OpenFile { .. }
            | Request::ReopenChannel
            | Request::Spawn(_)
            | Request::Trim { .. }
            | Request::SetTime { .. }
            | Request::WriteSysfs { .. }
            | Request::AuthorizedKeys { .. }
            | Request::Chpasswd { .. }
            | Request::Shutdown { .. } => {}
        }
    }
}
