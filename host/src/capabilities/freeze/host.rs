//! The freeze interface as a call sees it: [`FreezeView`], its linking
//! and the WIT host impl (status, freeze, thaw out of the call's slot).

use wasmtime::component::{HasData, Linker};

use super::*;
use crate::capabilities::qga::agent::freeze::Host;
use crate::capabilities::{CallCtx, Capability, Grant};

/// What the freeze capability sees of a call: the command and its grant
/// and the agent's freeze state. Nothing of another capability.
pub struct FreezeView<'a> {
    command: &'a str,
    grant: &'a Grant,
    freeze: &'a FreezeState,
}

/// The freeze capability's store data, as a linker sees it.
pub struct Freeze;

impl HasData for Freeze {
    type Data<'a> = FreezeView<'a>;
}

/// Link the freeze interface: each call sees only [`FreezeView`].
pub fn add_to_linker(linker: &mut Linker<CallCtx>) -> wasmtime::Result<()> {
    crate::capabilities::qga::agent::freeze::add_to_linker::<CallCtx, Freeze>(linker, |c| FreezeView {
        command: &c.command,
        grant: &c.grant,
        freeze: &c.freeze,
    })
}

impl FreezeView<'_> {
    /// Freeze and thaw (and their hook) need the capability and at least
    /// one mount point: a grant without one (guest-fsfreeze-status's) can
    /// only read the state.
    fn require_mounts(&self) -> Result<(), Denied> {
        self.grant.require(self.command, Capability::Freeze)?;
        if self.grant.mounts.is_empty() {
            return Err(Denied::NoMounts {
                command: self.command.to_string(),
            });
        }
        Ok(())
    }
}

impl Host for FreezeView<'_> {
    fn is_frozen(&mut self) -> wasmtime::Result<bool> {
        self.grant.require(self.command, Capability::Freeze)?;
        Ok(self.freeze.is_frozen())
    }

    fn freeze(&mut self, mountpoints: Option<Vec<String>>) -> wasmtime::Result<Result<i64, QgaError>> {
        self.require_mounts()?;
        let grant = self.grant;
        // The hook and FIFREEZE run to completion, out of the call's slot.
        let frozen = {
            let _out = crate::call_slot::step_out();
            self.freeze
                .freeze(self.command, mountpoints.as_deref(), &|m| grant.allows_mount(m))
        };
        match frozen {
            Ok(n) => Ok(Ok(n)),
            Err(e) => qga_error(e),
        }
    }

    fn thaw(&mut self) -> wasmtime::Result<Result<i64, QgaError>> {
        self.require_mounts()?;
        let grant = self.grant;
        // Waits for a freeze in progress (its hook), then FITHAWs and runs
        // the hook: out of the call's slot.
        let thawed = {
            let _out = crate::call_slot::step_out();
            self.freeze.thaw(&|m| grant.allows_mount(m))
        };
        match thawed {
            Ok(n) => Ok(Ok(n)),
            Err(e) => qga_error(e),
        }
    }
}
