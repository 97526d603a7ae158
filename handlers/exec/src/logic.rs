//! Pure logic of the exec family, as qemu-ga 7.2 computes it.

pub use qga_text::base64::decode_base64;

/// qemu's QERR_QGA_COMMAND_FAILED around GLib's spawn message.
pub fn command_failed(message: &str) -> String {
    format!("Guest agent command failed, error was '{message}'")
}

/// qemu's QERR_INVALID_PARAMETER for an unknown pid.
pub const INVALID_PID: &str = "Invalid parameter 'pid'";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        assert_eq!(
            command_failed("Failed to execute child process \u{201c}x\u{201d} (No such file or directory)"),
            "Guest agent command failed, error was 'Failed to execute child process \u{201c}x\u{201d} (No such file or directory)'"
        );
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(
            decode_base64("!!").unwrap_err(),
            "Base64 data contains invalid characters"
        );
        assert!(decode_base64("aGVsbG8").is_err());
    }
}
