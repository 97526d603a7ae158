//! What a capability's host implementation sees of a call (the Ctx/View
//! split of wasmtime-wasi's `WasiCtxView` and Spin's factors).
//!
//! The store data of a call is one [`CallCtx`]; no capability implements
//! its WIT host trait on it. Each is linked with a [`HasData`] type whose
//! data is a view projected out of the `CallCtx` by its `add_to_linker`
//! closure: files, process and freeze have their own views (their tables
//! and state, in their modules); the capabilities that hold no state of
//! their own see [`GrantView`] (the command and its grant), and the
//! `blob` resource sees [`BlobView`] (the call's resource table and
//! budget). A host impl can reach nothing its view does not hold.

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use super::qga::agent::types::{Blob, Host as TypesHost, HostBlob};
use super::{BlobData, CallCtx, Grant};
use crate::limits::CallLimiter;

/// The command a call runs and its grant: all a stateless capability sees.
pub struct GrantView<'a> {
    pub command: &'a str,
    pub grant: &'a Grant,
}

/// [`GrantView`] as a linker sees it.
pub struct Granted;

impl HasData for Granted {
    type Data<'a> = GrantView<'a>;
}

/// The `add_to_linker` projection to [`GrantView`].
pub fn grant_view(c: &mut CallCtx) -> GrantView<'_> {
    GrantView {
        command: &c.command,
        grant: &c.grant,
    }
}

/// What the `blob` resource sees: the call's resource table and budget.
pub struct BlobView<'a> {
    table: &'a mut ResourceTable,
    limiter: &'a mut CallLimiter,
}

/// [`BlobView`] as a linker sees it.
pub struct Blobs;

impl HasData for Blobs {
    type Data<'a> = BlobView<'a>;
}

/// Define the types interface (the `blob` resource) in `linker`.
pub fn add_types_to_linker(linker: &mut Linker<CallCtx>) -> wasmtime::Result<()> {
    super::qga::agent::types::add_to_linker::<CallCtx, Blobs>(linker, |c| BlobView {
        table: &mut c.table,
        limiter: &mut c.limiter,
    })
}

impl TypesHost for BlobView<'_> {}

impl HostBlob for BlobView<'_> {
    fn drop(&mut self, blob: Resource<Blob>) -> wasmtime::Result<()> {
        if let Some(data) = BlobData::take(self.table, blob) {
            self.limiter.release_host(data.len());
        }
        Ok(())
    }
}
