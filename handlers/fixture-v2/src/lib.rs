//! TEST FIXTURE: version 2 of the `fixture` family, swapped in by the
//! host's hot-swap tests (copied as `fixture.wasm`). Never embedded.

// The bindings wit-bindgen generates are `unsafe` glue (exports, the
// canonical ABI); the code written here is safe Rust.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        world: "fixture-v2-family",
        path: "wit",
    });

    use super::FixtureV2;
    export!(FixtureV2 with_types_in self);
}

use bindings::{exports, qga};

use exports::qga::agent::fixture::Guest;
use qga::agent::types::QgaError;

struct FixtureV2;

impl Guest for FixtureV2 {
    fn fixture_version() -> Result<i64, QgaError> {
        Ok(2)
    }

    fn fixture_added() -> Result<i64, QgaError> {
        Ok(42)
    }
}
