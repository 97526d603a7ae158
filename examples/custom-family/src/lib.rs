//! The `hello` family: what a command handler written outside the qga tree
//! looks like. The logic is plain Rust, tested natively; the component glue
//! only moves values. qga converts the request's JSON to these arguments
//! (and reports qemu-ga's argument errors) before this code runs.

pub fn greeting(name: Option<&str>) -> String {
    format!("Hello, {}!", name.unwrap_or("world"))
}

pub fn count_words(text: &str) -> Result<u64, String> {
    match text.split_whitespace().count() {
        0 => Err("text has no words".to_owned()),
        n => Ok(n as u64),
    }
}

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        world: "hello-family",
        path: "wit",
    });

    use exports::qga::agent::hello::{Greeting, Guest};
    use qga::agent::read_file::{self, ReadError};
    use qga::agent::types::QgaError;

    struct Hello;

    impl Guest for Hello {
        fn guest_hello(name: Option<String>) -> Result<Greeting, QgaError> {
            let text = super::greeting(name.as_deref());
            Ok(Greeting { length: text.chars().count() as u32, text })
        }

        fn guest_count_words(text: String) -> Result<u64, QgaError> {
            super::count_words(&text).map_err(|desc| QgaError { desc })
        }

        // A path the grant does not name never returns: the host fails the
        // call with a permission error.
        fn guest_hello_file(path: String) -> Result<String, QgaError> {
            match read_file::read(&path) {
                Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
                Err(ReadError::NotFound) => Err(QgaError { desc: format!("{path}: no such file") }),
                Err(ReadError::Other(desc)) => Err(QgaError { desc }),
            }
        }
    }

    export!(Hello);
}

#[cfg(test)]
mod tests {
    #[test]
    fn greets_by_name_or_the_world() {
        assert_eq!(super::greeting(Some("qga")), "Hello, qga!");
        assert_eq!(super::greeting(None), "Hello, world!");
    }

    #[test]
    fn counts_words_and_refuses_none() {
        assert_eq!(super::count_words(" a b\tc\n"), Ok(3));
        assert!(super::count_words("  ").is_err());
    }
}
