//! qemu's qbase64_decode, strict: its alphabet check and message, then
//! (unlike GLib's decoder, which silently drops an incomplete last quantum)
//! complete, correctly padded quanta only. Newlines are ignored. Table
//! driven: this runs inside the sandbox on every guest-file-write and
//! guest-exec input-data, and in the host for `list<u8>` arguments.

const INVALID: u8 = 0xFF;

const TABLE: [u8; 256] = {
    let mut t = [INVALID; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut i = 0;
    while i < 64 {
        t[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    t
};

pub const INVALID_CHARS: &str = "Base64 data contains invalid characters";
pub const BAD_PADDING: &str = "Base64 data is incomplete or badly padded";

pub fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    if bytes
        .iter()
        .any(|&c| TABLE[c as usize] == INVALID && c != b'=' && c != b'\n')
    {
        return Err(INVALID_CHARS.to_owned());
    }
    let filtered;
    let compact: &[u8] = if bytes.contains(&b'\n') {
        filtered = bytes.iter().copied().filter(|&c| c != b'\n').collect::<Vec<u8>>();
        &filtered
    } else {
        bytes
    };
    if !compact.len().is_multiple_of(4) {
        return Err(BAD_PADDING.to_owned());
    }
    if compact.is_empty() {
        return Ok(Vec::new());
    }
    let (body, last) = compact.split_at(compact.len() - 4);
    let mut out = Vec::with_capacity(compact.len() / 4 * 3);
    for q in body.chunks_exact(4) {
        let (a, b, c, d) = (
            TABLE[q[0] as usize],
            TABLE[q[1] as usize],
            TABLE[q[2] as usize],
            TABLE[q[3] as usize],
        );
        if (a | b | c | d) & 0xC0 != 0 {
            // '=' before the last quantum.
            return Err(BAD_PADDING.to_owned());
        }
        let n = (u32::from(a) << 18) | (u32::from(b) << 12) | (u32::from(c) << 6) | u32::from(d);
        out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
    }
    let pad = last.iter().rev().take_while(|&&c| c == b'=').count();
    if pad > 2 || last[..4 - pad].contains(&b'=') {
        return Err(BAD_PADDING.to_owned());
    }
    let v = |k: usize| {
        if k >= 4 - pad {
            0
        } else {
            u32::from(TABLE[last[k] as usize])
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
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_strict() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVs\nbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("").unwrap(), b"");
        assert_eq!(decode_base64("AA==").unwrap(), [0]);
        assert_eq!(decode_base64("/+8=").unwrap(), [0xff, 0xef]);
        assert_eq!(
            decode_base64("!!!").unwrap_err(),
            "Base64 data contains invalid characters"
        );
        assert_eq!(
            decode_base64("aGVsbG8").unwrap_err(),
            "Base64 data is incomplete or badly padded"
        );
        assert!(decode_base64("AA==AAAA").is_err());
        assert!(decode_base64("A===").is_err());
        assert!(decode_base64("A=A=").is_err());
        let all: Vec<u8> = (0..=255).collect();
        let enc = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6PkJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmqq6ytrq+wsbKztLW2t7i5uru8vb6/wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj5OXm5+jp6uvs7e7v8PHy8/T19vf4+fr7/P3+/w==";
        assert_eq!(decode_base64(enc).unwrap(), all);
    }
}
