//! Pure logic of the exec family, as qemu-ga 7.2 computes it.

pub use base64_strict::decode_base64;

/// qemu's QERR_QGA_COMMAND_FAILED around GLib's spawn message.
pub fn command_failed(message: &str) -> String {
    format!("Guest agent command failed, error was '{message}'")
}

/// qemu's QERR_INVALID_PARAMETER for an unknown pid.
pub const INVALID_PID: &str = "Invalid parameter 'pid'";

mod base64_strict {
    /// qemu's qbase64_decode (see the file family's copy, whose tests cover it).
    pub fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
        fn value(c: u8) -> Option<u8> {
            Some(match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                _ => return None,
            })
        }
        let bytes = text.as_bytes();
        if !bytes.iter().all(|&c| c == b'=' || c == b'\n' || value(c).is_some()) {
            return Err("Base64 data contains invalid characters".to_owned());
        }
        let bad = || "Base64 data is incomplete or badly padded".to_owned();
        let compact: Vec<u8> = bytes.iter().copied().filter(|&c| c != b'\n').collect();
        if compact.len() % 4 != 0 {
            return Err(bad());
        }
        let quanta = compact.len() / 4;
        let mut out = Vec::with_capacity(quanta * 3);
        for (i, q) in compact.chunks_exact(4).enumerate() {
            let pad = q.iter().rev().take_while(|&&c| c == b'=').count();
            if pad > 2 || (pad > 0 && i + 1 != quanta) || q[..4 - pad].contains(&b'=') {
                return Err(bad());
            }
            let v = |k: usize| {
                if k >= 4 - pad {
                    0
                } else {
                    u32::from(value(q[k]).unwrap_or(0))
                }
            };
            let n = (v(0) << 18) | (v(1) << 12) | (v(2) << 6) | v(3);
            out.push((n >> 16) as u8);
            if pad < 2 {
                out.push((n >> 8) as u8);
            }
            if pad < 1 {
                out.push(n as u8);
            }
        }
        Ok(out)
    }
}

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
