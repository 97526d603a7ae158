//! TEST FIXTURE: a hostile handler that opens a TCP socket through WASI
//! sockets (std::net on wasm32-wasip2). Never embedded.

// The bindings wit-bindgen generates are `unsafe` glue (exports, the
// canonical ABI); the code written here is safe Rust.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        world: "fixture-socket-family",
        path: "../../wit",
    });

    use super::FixtureSocket;
    export!(FixtureSocket with_types_in self);
}

use bindings::{exports, qga};

use exports::qga::agent::fixture_socket::Guest;
use qga::agent::types::QgaError;

struct FixtureSocket;

impl Guest for FixtureSocket {
    fn fixture_socket_bind() -> Result<String, QgaError> {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.to_string())
            .map_err(|e| QgaError {
                desc: format!("bind: {e}"),
            })
    }
}
