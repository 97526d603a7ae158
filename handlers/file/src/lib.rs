//! The `file` family: guest-file-open, guest-file-close, guest-file-read,
//! guest-file-write, guest-file-seek, guest-file-flush.
//!
//! The open-file table lives in the host (`qga:agent/files`), so it
//! survives this component being swapped; this component checks and
//! shapes arguments and errors exactly as qemu-ga 7.2 does, in its order
//! (the handle is looked up before anything else is checked).

pub mod logic;

// The bindings wit-bindgen generates are `unsafe` glue (exports, the
// canonical ABI); the code written here is safe Rust.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod component {
    wit_bindgen::generate!({
        world: "file-family",
        path: "../../wit",
    });

    use super::logic;
    use exports::qga::agent::file::{FileRead, FileSeek, FileWrite, Guest, GuestFileWhence, QgaSeek};
    use qga::agent::files::{self, FileError, OpenMode, Whence};
    use qga::agent::types::QgaError;

    struct File;

    fn err(desc: String) -> QgaError {
        QgaError { desc }
    }

    /// A failed file operation: "<what>: <strerror>", or the missing handle.
    fn failed(handle: i64, what: &str) -> impl Fn(FileError) -> QgaError + '_ {
        move |e| match e {
            FileError::NoHandle => err(logic::no_handle(handle)),
            FileError::Os(os) => err(format!("{what}: {os}")),
            FileError::Other(m) => err(m),
        }
    }

    fn require(handle: i64) -> Result<(), QgaError> {
        if files::exists(handle) {
            Ok(())
        } else {
            Err(err(logic::no_handle(handle)))
        }
    }

    /// qemu-ga's accepted spellings (see `logic::parse_mode`), as the WIT
    /// enum the host derives the open flags from.
    fn open_mode(name: &str) -> Option<OpenMode> {
        Some(match name {
            "r" => OpenMode::R,
            "rb" => OpenMode::Rb,
            "w" => OpenMode::W,
            "wb" => OpenMode::Wb,
            "a" => OpenMode::A,
            "ab" => OpenMode::Ab,
            "r+" => OpenMode::RPlus,
            "rb+" => OpenMode::RbPlus,
            "r+b" => OpenMode::RPlusB,
            "w+" => OpenMode::WPlus,
            "wb+" => OpenMode::WbPlus,
            "w+b" => OpenMode::WPlusB,
            "a+" => OpenMode::APlus,
            "ab+" => OpenMode::AbPlus,
            "a+b" => OpenMode::APlusB,
            _ => return None,
        })
    }

    impl Guest for File {
        fn guest_file_open(path: String, mode: Option<String>) -> Result<i64, QgaError> {
            let name = mode.unwrap_or_else(|| "r".to_owned());
            let mode = open_mode(&name).ok_or_else(|| err(logic::invalid_mode(&name)))?;
            files::open(&path, mode).map_err(|e| match e {
                FileError::Os(os) => err(logic::open_failed(&path, &name, &os)),
                FileError::Other(m) => err(m),
                FileError::NoHandle => err("failed to allocate a file handle".to_owned()),
            })
        }

        fn guest_file_close(handle: i64) -> Result<(), QgaError> {
            files::close(handle).map_err(failed(handle, "failed to close handle"))
        }

        fn guest_file_read(handle: i64, count: Option<i64>) -> Result<FileRead, QgaError> {
            require(handle)?;
            let count = logic::read_count(count).map_err(err)?;
            let chunk = files::read(handle, count).map_err(failed(handle, "failed to read file"))?;
            Ok(FileRead {
                count: chunk.count as i64,
                buf_b64: chunk.data,
                eof: chunk.eof,
            })
        }

        fn guest_file_write(handle: i64, buf_b64: String, count: Option<i64>) -> Result<FileWrite, QgaError> {
            require(handle)?;
            let mut data = logic::decode_base64(&buf_b64).map_err(err)?;
            drop(buf_b64);
            let n = logic::write_count(count, data.len()).map_err(err)?;
            data.truncate(n);
            let written = files::write(handle, &data).map_err(failed(handle, "failed to write to file"))?;
            Ok(FileWrite {
                count: written as i64,
                eof: false,
            })
        }

        fn guest_file_seek(handle: i64, offset: i64, whence: GuestFileWhence) -> Result<FileSeek, QgaError> {
            require(handle)?;
            let whence = match whence {
                GuestFileWhence::Name(QgaSeek::Set) => Whence::Set,
                GuestFileWhence::Name(QgaSeek::Cur) => Whence::Cur,
                GuestFileWhence::Name(QgaSeek::End) => Whence::End,
                GuestFileWhence::Value(code) => match logic::whence_code(code).map_err(err)? {
                    logic::Whence::Set => Whence::Set,
                    logic::Whence::Cur => Whence::Cur,
                    logic::Whence::End => Whence::End,
                },
            };
            let position = files::seek(handle, offset, whence).map_err(failed(handle, "failed to seek file"))?;
            Ok(FileSeek {
                position: position as i64,
                eof: false,
            })
        }

        fn guest_file_flush(handle: i64) -> Result<(), QgaError> {
            files::flush(handle).map_err(failed(handle, "failed to flush file"))
        }
    }

    export!(File);
}
