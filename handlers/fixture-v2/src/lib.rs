//! TEST FIXTURE: version 2 of the `fixture` family, swapped in by the
//! host's hot-swap tests (copied as `fixture.wasm`). Never embedded.

wit_bindgen::generate!({
    world: "fixture-v2-family",
    path: "wit",
});

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

export!(FixtureV2);
