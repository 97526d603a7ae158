//! What a qemu-ga open mode means, derived by the host from the WIT enum
//! alone (the component sends no flags).

use super::super::resolve::OFlag;
use super::OpenMode;
use crate::state::Access;

/// qemu-ga's guest_file_open_modes table, by base mode.
pub fn access_of(mode: OpenMode) -> Access {
    let a = |read, write, append, create, truncate| Access {
        read,
        write,
        append,
        create,
        truncate,
    };
    match base(mode) {
        "r" => Access::READ,
        "w" => a(false, true, false, true, true),
        "a" => a(false, true, true, true, false),
        "r+" => a(true, true, false, false, false),
        "w+" => a(true, true, false, true, true),
        // "a+", the one base left.
        _ => a(true, true, true, true, false),
    }
}

/// The access mode and O_APPEND (O_CREAT and O_TRUNC are applied by
/// the caller after the grant check).
pub fn open_flags(access: Access) -> OFlag {
    let flags = match (access.read, access.write) {
        (true, true) => OFlag::O_RDWR,
        (false, true) => OFlag::O_WRONLY,
        (true, false) | (false, false) => OFlag::O_RDONLY,
    };
    if access.append { flags | OFlag::O_APPEND } else { flags }
}

/// The mode as spelled on the wire.
pub fn mode_name(mode: OpenMode) -> &'static str {
    match mode {
        OpenMode::R => "r",
        OpenMode::Rb => "rb",
        OpenMode::W => "w",
        OpenMode::Wb => "wb",
        OpenMode::A => "a",
        OpenMode::Ab => "ab",
        OpenMode::RPlus => "r+",
        OpenMode::RbPlus => "rb+",
        OpenMode::RPlusB => "r+b",
        OpenMode::WPlus => "w+",
        OpenMode::WbPlus => "wb+",
        OpenMode::WPlusB => "w+b",
        OpenMode::APlus => "a+",
        OpenMode::AbPlus => "ab+",
        OpenMode::APlusB => "a+b",
    }
}

/// The base mode (without `b`), as grants name it.
pub fn base(mode: OpenMode) -> &'static str {
    match mode {
        OpenMode::R | OpenMode::Rb => "r",
        OpenMode::W | OpenMode::Wb => "w",
        OpenMode::A | OpenMode::Ab => "a",
        OpenMode::RPlus | OpenMode::RbPlus | OpenMode::RPlusB => "r+",
        OpenMode::WPlus | OpenMode::WbPlus | OpenMode::WPlusB => "w+",
        OpenMode::APlus | OpenMode::AbPlus | OpenMode::APlusB => "a+",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_come_from_the_mode_alone() {
        assert_eq!(access_of(OpenMode::R), Access::READ);
        assert_eq!(open_flags(access_of(OpenMode::Rb)), OFlag::O_RDONLY);
        let w = access_of(OpenMode::WbPlus);
        assert!(w.read && w.write && w.create && w.truncate && !w.append);
        assert_eq!(open_flags(w), OFlag::O_RDWR);
        let a = access_of(OpenMode::Ab);
        assert!(!a.read && a.write && a.append && a.create && !a.truncate);
        assert_eq!(open_flags(a), OFlag::O_WRONLY | OFlag::O_APPEND);
        assert_eq!(mode_name(OpenMode::RPlusB), "r+b");
        assert_eq!(base(OpenMode::RPlusB), "r+");
    }
}
