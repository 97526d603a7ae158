//! guest-get-diskstats: qemu-ga's parse of /proc/diskstats.

/// One /proc/diskstats line, with qemu-ga's field availability.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskStat {
    pub name: String,
    pub major: u64,
    pub minor: u64,
    pub read_sectors: Option<u64>,
    pub read_ios: Option<u64>,
    pub read_merges: Option<u64>,
    pub write_sectors: Option<u64>,
    pub write_ios: Option<u64>,
    pub write_merges: Option<u64>,
    pub discard_sectors: Option<u64>,
    pub discard_ios: Option<u64>,
    pub discard_merges: Option<u64>,
    pub flush_ios: Option<u64>,
    pub read_ticks: Option<u64>,
    pub write_ticks: Option<u64>,
    pub discard_ticks: Option<u64>,
    pub flush_ticks: Option<u64>,
    pub ios_pgr: Option<u64>,
    pub total_ticks: Option<u64>,
    pub weight_ticks: Option<u64>,
}

/// scanf's `%lu`: optional sign, decimal digits, saturating; negative
/// values negated modulo 2^64.
fn scan_ulong(s: &str) -> Option<u64> {
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v = digits.parse::<u64>().unwrap_or(u64::MAX);
    Some(if neg { v.wrapping_neg() } else { v })
}

/// scanf's `%u` into an unsigned int (truncated to 32 bits).
fn scan_uint(s: &str) -> Option<u64> {
    scan_ulong(s).map(|v| u64::from(v as u32))
}

/// qemu-ga's `guest_get_diskstats`: every line with at least 7 fields
/// scanned; 7 (old partition format), 14, 18 and 20 decide which members
/// are present.
pub fn parse_diskstats(text: &str) -> Vec<DiskStat> {
    let mut out = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        let mut values: Vec<u64> = Vec::new();
        let mut name = String::new();
        let mut count = 0;
        for (i, w) in words.iter().enumerate().take(20) {
            // "%u %u %s %lu %lu %lu %lu %lu %lu %lu %u %u %u %u %lu %lu %lu %u %lu %u"
            let v = match i {
                2 => {
                    name = (*w).to_owned();
                    Some(0)
                }
                0 | 1 | 10 | 11 | 12 | 13 | 17 | 19 => scan_uint(w),
                _ => scan_ulong(w),
            };
            match v {
                Some(v) => values.push(v),
                None => break,
            }
            count = i + 1;
        }
        if count < 7 {
            continue;
        }
        let f = |i: usize| values.get(i).copied();
        let mut d = DiskStat {
            name,
            major: f(0).unwrap_or(0),
            minor: f(1).unwrap_or(0),
            ..DiskStat::default()
        };
        if count == 7 {
            d.read_ios = f(3);
            d.read_sectors = f(4);
            d.write_ios = f(5);
            d.write_sectors = f(6);
        }
        if count >= 14 {
            d.read_ios = f(3);
            d.read_merges = f(4);
            d.read_sectors = f(5);
            d.read_ticks = f(6);
            d.write_ios = f(7);
            d.write_merges = f(8);
            d.write_sectors = f(9);
            d.write_ticks = f(10);
            d.ios_pgr = f(11);
            d.total_ticks = f(12);
            d.weight_ticks = f(13);
        }
        if count >= 18 {
            d.discard_ios = f(14);
            d.discard_merges = f(15);
            d.discard_sectors = f(16);
            d.discard_ticks = f(17);
        }
        if count >= 20 {
            d.flush_ios = f(18);
            d.flush_ticks = f(19);
        }
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diskstats_formats() {
        let text = "   8       0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n\
                    8 1 sda1 10 20 30 40\n\
                    8 2 short 1 2\n\
                    254 0 vda 1 2 3 4 5 6 7 8 9 10 11\n";
        let d = parse_diskstats(text);
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].name, "sda");
        assert_eq!(d[0].read_ios, Some(1));
        assert_eq!(d[0].read_merges, Some(2));
        assert_eq!(d[0].read_sectors, Some(3));
        assert_eq!(d[0].discard_ticks, Some(15));
        assert_eq!(d[0].flush_ios, Some(16));
        assert_eq!(d[0].flush_ticks, Some(17));
        assert_eq!(d[1].read_ios, Some(10));
        assert_eq!(d[1].read_sectors, Some(20));
        assert_eq!(d[1].write_ios, Some(30));
        assert_eq!(d[1].write_sectors, Some(40));
        assert_eq!(d[1].read_merges, None);
        assert_eq!(d[2].weight_ticks, Some(11));
        assert_eq!(d[2].discard_ios, None);
    }

    #[test]
    fn diskstats_uint_fields_truncate_like_scanf() {
        let text = "8 0 sda 1 2 3 4 5 6 7 4294967297 9 10 11\n";
        assert_eq!(parse_diskstats(text)[0].write_ticks, Some(1));
    }
}
