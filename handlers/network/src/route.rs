//! qemu-ga 9.1's qmp_guest_network_get_route (qga/commands-linux.c): one
//! route per line of /proc/net/route (after its header) and of
//! /proc/net/ipv6_route, read with that function's sscanf formats. A line
//! the format does not fit, or whose destination does not decode, is
//! skipped, as qemu-ga skips it.

/// One route, every member as qemu-ga fills it for its IP version.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub iface: String,
    pub destination: String,
    pub metric: i64,
    pub gateway: Option<String>,
    pub mask: Option<String>,
    pub irtt: Option<i64>,
    pub flags: Option<u64>,
    pub refcnt: Option<i64>,
    pub use_count: Option<i64>,
    pub window: Option<i64>,
    pub mtu: Option<i64>,
    pub desprefixlen: Option<String>,
    pub source: Option<String>,
    pub srcprefixlen: Option<String>,
    pub nexthop: Option<String>,
    pub version: i64,
}

/// The routes of /proc/net/route's text.
pub fn ipv4_routes(text: &[u8]) -> Vec<Route> {
    lines(text).skip(1).filter_map(ipv4_route).collect()
}

/// The routes of /proc/net/ipv6_route's text (it has no header).
pub fn ipv6_routes(text: &[u8]) -> Vec<Route> {
    lines(text).filter_map(ipv6_route).collect()
}

/// getline's lines: each up to and including its newline.
fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split_inclusive(|b| *b == b'\n')
}

/// `"%s %X %X %x %d %d %d %X %d %d %d"`: iface, destination, gateway,
/// flags, refcnt, use, metric, mask, mtu, window, irtt.
fn ipv4_route(line: &[u8]) -> Option<Route> {
    let mut s = Scanner::new(line);
    let iface = s.string(usize::MAX)?;
    let destination = s.hex()?;
    let gateway = s.hex()?;
    let flags = s.hex()?;
    let refcnt = s.decimal()?;
    let use_count = s.decimal()?;
    let metric = s.decimal()?;
    let mask = s.hex()?;
    let mtu = s.decimal()?;
    let window = s.decimal()?;
    let irtt = s.decimal()?;
    Some(Route {
        iface,
        destination: ipv4_text(destination),
        metric: i64::from(metric),
        gateway: Some(ipv4_text(gateway)),
        mask: Some(ipv4_text(mask)),
        irtt: Some(i64::from(irtt)),
        flags: Some(u64::from(flags)),
        refcnt: Some(i64::from(refcnt)),
        use_count: Some(i64::from(use_count)),
        window: Some(i64::from(window)),
        mtu: Some(i64::from(mtu)),
        desprefixlen: None,
        source: None,
        srcprefixlen: None,
        nexthop: None,
        version: 4,
    })
}

/// `"%32s %x %32s %x %32s %x %x %x %x %s"`: destination, its prefix
/// length, source, its prefix length, next hop, metric, refcnt, use,
/// flags, iface. The numbers land in C `int`s: flags 0x80200001 becomes a
/// negative int and then a uint64 of 18446744071564165121, as in qemu-ga.
fn ipv6_route(line: &[u8]) -> Option<Route> {
    let mut s = Scanner::new(line);
    let destination = s.string(32)?;
    let des_prefixlen = s.hex()? as i32;
    let source = s.string(32)?;
    let src_prefixlen = s.hex()? as i32;
    let next_hop = s.string(32)?;
    let metric = s.hex()? as i32;
    let refcnt = s.hex()? as i32;
    let use_count = s.hex()? as i32;
    let flags = s.hex()? as i32;
    let iface = s.string(usize::MAX)?;
    Some(Route {
        iface,
        destination: ipv6_text(&destination)?,
        metric: i64::from(metric),
        gateway: None,
        mask: None,
        irtt: None,
        flags: Some(i64::from(flags) as u64),
        refcnt: Some(i64::from(refcnt)),
        use_count: Some(i64::from(use_count)),
        window: None,
        mtu: None,
        desprefixlen: Some(des_prefixlen.to_string()),
        source: ipv6_text(&source),
        srcprefixlen: Some(src_prefixlen.to_string()),
        nexthop: ipv6_text(&next_hop),
        version: 6,
    })
}

/// The kernel's little-endian hex word as a dotted quad.
fn ipv4_text(word: u32) -> String {
    let b = word.to_le_bytes();
    format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])
}

/// Sixteen `%02hhx` pairs (each one or two hex digits after optional
/// blanks, as sscanf reads them), printed as inet_ntop prints them; `None`
/// when a pair does not start with a hex digit.
fn ipv6_text(hex: &str) -> Option<String> {
    let bytes = hex.as_bytes();
    let mut addr = [0u8; 16];
    for (i, out) in addr.iter_mut().enumerate() {
        let pair = bytes.get(i * 2..).unwrap_or_default();
        let digits: Vec<u8> = pair
            .iter()
            .take(2)
            .map_while(|b| (*b as char).to_digit(16).map(|d| d as u8))
            .collect();
        if digits.is_empty() {
            return None;
        }
        *out = digits.iter().fold(0u8, |acc, d| acc.wrapping_mul(16).wrapping_add(*d));
    }
    Some(inet_ntop6(&addr))
}

/// glibc's inet_ntop(AF_INET6): lower-case hex words, the longest run of
/// two or more zero words (the first of equal runs) as `::`, and the last
/// 32 bits as a dotted quad after six zero words or after `::ffff:`.
pub fn inet_ntop6(addr: &[u8; 16]) -> String {
    let words: Vec<u16> = addr.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
    // (first word, length) of the longest zero run, and of the current one
    let mut best: Option<(usize, usize)> = None;
    let mut cur: Option<(usize, usize)> = None;
    for (i, w) in words.iter().enumerate() {
        if *w == 0 {
            let run = cur.map_or((i, 1), |(base, len)| (base, len + 1));
            cur = Some(run);
            if best.is_none_or(|(_, len)| run.1 > len) {
                best = Some(run);
            }
        } else {
            cur = None;
        }
    }
    let best = best.filter(|(_, len)| *len >= 2);
    let mut out = String::new();
    let mut i = 0;
    while i < 8 {
        if let Some((base, len)) = best
            && i == base
        {
            out.push(':');
            if base + len == 8 {
                out.push(':');
            }
            i += len;
            continue;
        }
        if i != 0 {
            out.push(':');
        }
        if i == 6 && best.is_some_and(|(base, len)| base == 0 && (len == 6 || (len == 5 && words[5] == 0xffff))) {
            out.push_str(&format!("{}.{}.{}.{}", addr[12], addr[13], addr[14], addr[15]));
            break;
        }
        out.push_str(&format!("{:x}", words[i]));
        i += 1;
    }
    out
}

/// sscanf's conversions over one line: each skips leading white space.
struct Scanner<'a> {
    rest: &'a [u8],
}

impl<'a> Scanner<'a> {
    fn new(line: &'a [u8]) -> Self {
        Scanner { rest: line }
    }

    fn skip_blanks(&mut self) {
        let n = self.rest.iter().take_while(|b| b.is_ascii_whitespace()).count();
        self.rest = &self.rest[n..];
    }

    /// `%s` (at most `width` bytes): a run of non-blank bytes.
    fn string(&mut self, width: usize) -> Option<String> {
        self.skip_blanks();
        let n = self
            .rest
            .iter()
            .take(width)
            .take_while(|b| !b.is_ascii_whitespace())
            .count();
        if n == 0 {
            return None;
        }
        let word = String::from_utf8_lossy(&self.rest[..n]).into_owned();
        self.rest = &self.rest[n..];
        Some(word)
    }

    /// An optional sign, then digits of `radix` (for 16, after an optional
    /// `0x`): strtoul's value (saturating at u64::MAX, negated modulo 2^64
    /// for `-`), as a C conversion then truncates it.
    fn number(&mut self, radix: u32) -> Option<(bool, u64)> {
        self.skip_blanks();
        let mut s = self.rest;
        let negative = s.first() == Some(&b'-');
        if matches!(s.first(), Some(b'-' | b'+')) {
            s = &s[1..];
        }
        if radix == 16 && s.len() > 2 && s[0] == b'0' && (s[1] | 0x20) == b'x' && s[2].is_ascii_hexdigit() {
            s = &s[2..];
        }
        let n = s.iter().take_while(|b| (**b as char).is_digit(radix)).count();
        if n == 0 {
            return None;
        }
        let value = s[..n].iter().try_fold(0u64, |acc, b| {
            acc.checked_mul(u64::from(radix))?
                .checked_add(u64::from((*b as char).to_digit(radix)?))
        });
        self.rest = &s[n..];
        Some((negative, value.unwrap_or(u64::MAX)))
    }

    /// `%x` / `%X` into an `unsigned int`.
    fn hex(&mut self) -> Option<u32> {
        let (negative, value) = self.number(16)?;
        let value = if negative { value.wrapping_neg() } else { value };
        Some(value as u32)
    }

    /// `%d` into an `int` (strtol's saturation, then truncation).
    fn decimal(&mut self) -> Option<i32> {
        let (negative, value) = self.number(10)?;
        let value: i64 = match (negative, i64::try_from(value)) {
            (false, Ok(v)) => v,
            (false, Err(_)) => i64::MAX,
            (true, Ok(v)) => -v,
            (true, Err(_)) => i64::MIN,
        };
        Some(value as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &[u8] = b"Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT                                                       \n\
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0                                                                               \n\
eth0\t000200C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t1500\t0\t7                                                                               \n\
short\t00000000\n";

    const IPV6_ROUTE: &[u8] = b"fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0\n\
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n\
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo\n\
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n\
zz000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n";

    #[test]
    fn ipv4_lines_after_the_header_with_every_v4_member() {
        let routes = ipv4_routes(ROUTE);
        assert_eq!(routes.len(), 2, "header and short line skipped");
        assert_eq!(routes[0].destination, "0.0.0.0");
        assert_eq!(routes[0].gateway.as_deref(), Some("192.0.2.1"));
        assert_eq!(routes[0].flags, Some(3));
        let r = &routes[1];
        assert_eq!((r.iface.as_str(), r.destination.as_str()), ("eth0", "192.0.2.0"));
        assert_eq!(r.mask.as_deref(), Some("255.255.255.0"));
        assert_eq!((r.metric, r.mtu, r.window, r.irtt), (100, Some(1500), Some(0), Some(7)));
        assert_eq!((r.version, r.source.as_ref(), r.nexthop.as_ref()), (4, None, None));
    }

    #[test]
    fn ipv6_lines_with_c_int_wraparound() {
        let routes = ipv6_routes(IPV6_ROUTE);
        assert_eq!(routes.len(), 4, "an undecodable destination is skipped");
        let r = &routes[0];
        assert_eq!(r.destination, "fe80::");
        assert_eq!(r.desprefixlen.as_deref(), Some("64"));
        assert_eq!(r.srcprefixlen.as_deref(), Some("0"));
        assert_eq!((r.metric, r.refcnt, r.flags), (256, Some(2), Some(1)));
        assert_eq!((r.gateway.as_ref(), r.mask.as_ref(), r.mtu), (None, None, None));
        assert_eq!(routes[1].nexthop.as_deref(), Some("fd00::1"));
        assert_eq!(routes[2].flags, Some(18446744071564165121));
        assert_eq!(routes[2].destination, "::1");
        assert_eq!(routes[3].metric, -1);
        assert_eq!(routes[3].iface, "lo");
    }

    #[test]
    fn inet_ntop6_as_glibc_prints_it() {
        let a =
            |s: &str| -> [u8; 16] { std::array::from_fn(|i| u8::from_str_radix(&s[i * 2..i * 2 + 2], 16).unwrap()) };
        assert_eq!(inet_ntop6(&[0; 16]), "::");
        assert_eq!(inet_ntop6(&a("00000000000000000000000000000001")), "::1");
        assert_eq!(inet_ntop6(&a("00000000000000000000ffff01020304")), "::ffff:1.2.3.4");
        assert_eq!(inet_ntop6(&a("00000000000000000000000001020304")), "::1.2.3.4");
        assert_eq!(inet_ntop6(&a("20010db8000000010000000000000001")), "2001:db8:0:1::1");
        assert_eq!(inet_ntop6(&a("20010db8000000000001000000000001")), "2001:db8::1:0:0:1");
        assert_eq!(inet_ntop6(&a("ff020000000000000000000000000001")), "ff02::1");
        assert_eq!(
            inet_ntop6(&a("20010db8000100020003000400050006")),
            "2001:db8:1:2:3:4:5:6"
        );
    }
}
