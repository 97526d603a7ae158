//! guest-get-cpustats from /proc/stat.

#[derive(Debug, Clone, PartialEq, Default)]
pub struct CpuStat {
    pub cpu: i64,
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: Option<u64>,
    pub irq: Option<u64>,
    pub softirq: Option<u64>,
    pub steal: Option<u64>,
    pub guest: Option<u64>,
    pub guestnice: Option<u64>,
}

/// strtoul as %lu converts one word (None when it does not start with a
/// number).
fn lu(word: &str) -> Option<u64> {
    let (neg, w) = match word.as_bytes().first() {
        Some(b'-') => (true, &word[1..]),
        Some(b'+') => (false, &word[1..]),
        _ => (false, word),
    };
    let n = w.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    let v = w[..n].parse::<u64>().unwrap_or(u64::MAX);
    Some(if neg { v.wrapping_neg() } else { v })
}

/// atoi.
fn atoi(s: &str) -> i64 {
    let s = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let (neg, w) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let n = w.bytes().take_while(u8::is_ascii_digit).count();
    let v = w[..n].parse::<i64>().unwrap_or(0) as i32;
    i64::from(if neg { v.wrapping_neg() } else { v })
}

/// guest-get-cpustats from /proc/stat: the "cpuN" lines, times in ms.
pub fn cpustats(stat: &[u8], clk_tck: u64) -> Vec<CpuStat> {
    let text = String::from_utf8_lossy(stat);
    let mut out = Vec::new();
    for line in text.split_inclusive('\n') {
        let mut words = line.split_ascii_whitespace();
        let Some(name) = words.next() else {
            continue; // sscanf returns EOF
        };
        if !name.starts_with("cpu") || name.len() == 3 {
            continue;
        }
        let mut nums = Vec::new();
        for w in words.take(10) {
            match lu(w) {
                Some(v) => nums.push(v),
                None => break,
            }
            // %lu stops a word at its first non-digit; the next conversion
            // then fails on the rest of it.
            if w.trim_start_matches(['-', '+']).bytes().any(|b| !b.is_ascii_digit()) {
                break;
            }
        }
        let converted = 1 + nums.len();
        if converted < 5 {
            break; // qemu-ga: "Parsing cpu stat from /proc/stat failed"
        }
        let ms = |v: u64| v.wrapping_mul(1000) / clk_tck;
        let at = |i: usize| nums.get(i).map(|v| ms(*v));
        out.push(CpuStat {
            cpu: atoi(&name[3..]),
            user: ms(nums[0]),
            nice: ms(nums[1]),
            system: ms(nums[2]),
            idle: ms(nums[3]),
            iowait: at(4),
            irq: at(5),
            softirq: at(6),
            steal: at(7),
            guest: at(8),
            guestnice: at(9),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpustats_skip_total_and_scale_to_ms() {
        let stat = b"cpu  10 20 30 40 50 60 70 80 90 100\ncpu0 100 200 300 400 500 600 700 800 0 0\ncpu1 1 2 3 4\nintr 1 2 3\n";
        let s = cpustats(stat, 100);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].cpu, 0);
        assert_eq!(s[0].user, 1000);
        assert_eq!(s[0].iowait, Some(5000));
        assert_eq!(s[0].guestnice, Some(0));
        assert_eq!(
            s[1],
            CpuStat {
                cpu: 1,
                user: 10,
                nice: 20,
                system: 30,
                idle: 40,
                ..Default::default()
            }
        );
        // a short line stops the parse
        let s = cpustats(b"cpu0 1 2 3\ncpu1 1 2 3 4\n", 100);
        assert!(s.is_empty());
    }
}
