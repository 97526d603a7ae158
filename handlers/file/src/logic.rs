//! Pure logic of the file family, as qemu-ga 7.2 (qga/commands-posix.c,
//! qga/commands.c) computes it.

/// `guest-file-read` without `count`.
pub const READ_COUNT_DEFAULT: i64 = 4096;
/// qemu-ga's `GUEST_FILE_READ_COUNT_MAX`: 48 MiB.
pub const READ_COUNT_MAX: i64 = 48 << 20;

/// open(2) flags of a mode string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    pub read: bool,
    pub write: bool,
    pub append: bool,
    pub create: bool,
    pub truncate: bool,
}

/// qemu-ga's `guest_file_open_modes` table: the accepted spellings only.
pub fn parse_mode(mode: &str) -> Option<Mode> {
    let m = |read, write, append, create, truncate| Mode {
        read,
        write,
        append,
        create,
        truncate,
    };
    Some(match mode {
        "r" | "rb" => m(true, false, false, false, false),
        "w" | "wb" => m(false, true, false, true, true),
        "a" | "ab" => m(false, true, true, true, false),
        "r+" | "rb+" | "r+b" => m(true, true, false, false, false),
        "w+" | "wb+" | "w+b" => m(true, true, false, true, true),
        "a+" | "ab+" | "a+b" => m(true, true, true, true, false),
        _ => return None,
    })
}

pub fn invalid_mode(mode: &str) -> String {
    format!("invalid file open mode '{mode}'")
}

pub fn open_failed(path: &str, mode: &str, os: &str) -> String {
    format!("failed to open file '{path}' (mode: '{mode}'): {os}")
}

pub fn no_handle(handle: i64) -> String {
    format!("handle '{handle}' has not been found")
}

pub fn invalid_count(count: i64) -> String {
    format!("value '{count}' is invalid for argument count")
}

/// The byte count of a read: the default, or an error for one out of range.
pub fn read_count(count: Option<i64>) -> Result<u64, String> {
    match count {
        None => Ok(READ_COUNT_DEFAULT as u64),
        Some(c) if (0..=READ_COUNT_MAX).contains(&c) => Ok(c as u64),
        Some(c) => Err(invalid_count(c)),
    }
}

/// How many of `len` decoded bytes to write.
pub fn write_count(count: Option<i64>, len: usize) -> Result<usize, String> {
    match count {
        None => Ok(len),
        Some(c) if c >= 0 && (c as u64) <= len as u64 => Ok(c as usize),
        Some(c) => Err(invalid_count(c)),
    }
}

/// Whence of a seek, from QGASeek's integer code (0 set, 1 cur, 2 end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whence {
    Set,
    Cur,
    End,
}

pub fn whence_code(code: i64) -> Result<Whence, String> {
    match code {
        0 => Ok(Whence::Set),
        1 => Ok(Whence::Cur),
        2 => Ok(Whence::End),
        _ => Err(format!("invalid whence code {code}")),
    }
}

pub use qga_text::base64::decode_base64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_qemu_ga_spellings_only() {
        for m in [
            "r", "rb", "w", "wb", "a", "ab", "r+", "rb+", "r+b", "w+", "wb+", "w+b", "a+", "ab+", "a+b",
        ] {
            assert!(parse_mode(m).is_some(), "{m}");
        }
        for m in ["", "zz", "rw", "br", "r+bb", "R", "x", "+r", "b"] {
            assert!(parse_mode(m).is_none(), "{m}");
        }
        assert_eq!(
            parse_mode("a+").unwrap(),
            Mode {
                read: true,
                write: true,
                append: true,
                create: true,
                truncate: false
            }
        );
        assert_eq!(invalid_mode("zz"), "invalid file open mode 'zz'");
    }

    #[test]
    fn counts_as_qemu_ga_checks_them() {
        assert_eq!(read_count(None), Ok(4096));
        assert_eq!(read_count(Some(0)), Ok(0));
        assert_eq!(read_count(Some(50331648)), Ok(50331648));
        assert_eq!(
            read_count(Some(50331649)).unwrap_err(),
            "value '50331649' is invalid for argument count"
        );
        assert_eq!(
            read_count(Some(-1)).unwrap_err(),
            "value '-1' is invalid for argument count"
        );
        assert_eq!(write_count(None, 5), Ok(5));
        assert_eq!(write_count(Some(5), 5), Ok(5));
        assert_eq!(write_count(Some(0), 5), Ok(0));
        assert!(write_count(Some(6), 5).is_err());
        assert!(write_count(Some(-1), 5).is_err());
    }

    #[test]
    fn whence_codes() {
        assert_eq!(whence_code(0), Ok(Whence::Set));
        assert_eq!(whence_code(2), Ok(Whence::End));
        assert_eq!(whence_code(7).unwrap_err(), "invalid whence code 7");
        assert_eq!(whence_code(-1).unwrap_err(), "invalid whence code -1");
    }
}
