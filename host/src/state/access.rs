//! What an open file's recorded mode allows (the files capability derives
//! it from the WIT open mode, see `capabilities::files::access_of`).

/// What a mode allows and does at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub read: bool,
    pub write: bool,
    pub append: bool,
    pub create: bool,
    pub truncate: bool,
}

impl Access {
    /// Read-only, nothing created or truncated ("r").
    pub const READ: Access = Access {
        read: true,
        write: false,
        append: false,
        create: false,
        truncate: false,
    };
}
