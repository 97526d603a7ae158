//! Readable renderings of the agent's replies: one function per command,
//! each taking the reply's `return` value and giving the text to print.

use serde_json::Value;

/// A string from the guest, with control characters escaped: a hostile
/// guest must not drive the operator's terminal through a table.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn text(value: &Value, key: &str) -> String {
    match value.get(key) {
        Some(Value::String(s)) => printable(s),
        Some(Value::Null) | None => "-".to_owned(),
        Some(other) => other.to_string(),
    }
}

fn list(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

/// Columns padded to their widest cell; the last one is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let last = row.len().saturating_sub(1);
        for (i, cell) in row.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.push('\n');
    }
    out
}

pub fn info(value: &Value) -> String {
    let commands = list(value.get("supported_commands").unwrap_or(&Value::Null));
    let names = |enabled: bool| -> Vec<String> {
        commands
            .iter()
            .filter(|c| c.get("enabled").and_then(Value::as_bool) == Some(enabled))
            .map(|c| text(c, "name"))
            .collect()
    };
    format!(
        "version: {}\nsupported_commands:\n\tenabled: {}\n\tdisabled: {}\n",
        text(value, "version"),
        names(true).join(", "),
        names(false).join(", ")
    )
}

pub fn osinfo(value: &Value) -> String {
    let Some(map) = value.as_object() else {
        return format!("{value}\n");
    };
    let width = map.keys().map(String::len).max().unwrap_or(0) + 1;
    map.iter()
        .map(|(key, _)| format!("{:<width$} {}\n", format!("{}:", printable(key)), text(value, key)))
        .collect()
}

pub fn hostname(value: &Value) -> String {
    format!("{}\n", text(value, "host-name"))
}

/// An instant in nanoseconds since the epoch, as UTC with its nanoseconds.
pub fn utc(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let (y, m, d) = qga_text::civil::from_days(secs.div_euclid(86_400));
    let day = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{frac:09} UTC",
        day / 3600,
        day / 60 % 60,
        day % 60
    )
}

pub fn time(value: &Value) -> String {
    match value.as_i64() {
        Some(nanos) => format!("{} ({nanos} ns since the epoch)\n", utc(nanos)),
        None => format!("{value}\n"),
    }
}

pub fn users(value: &Value) -> String {
    let rows: Vec<Vec<String>> = list(value)
        .iter()
        .map(|u| {
            let login = u
                .get("login-time")
                .and_then(Value::as_f64)
                .map_or_else(|| "-".to_owned(), |t| utc((t * 1e9) as i64).replace(".000000000", ""));
            vec![text(u, "user"), text(u, "domain"), login]
        })
        .collect();
    table(&["USER", "DOMAIN", "LOGIN-TIME"], &rows)
}

fn netmask(prefix: u64) -> String {
    let bits = if prefix >= 32 { u32::MAX } else { !(u32::MAX >> prefix) };
    std::net::Ipv4Addr::from(bits).to_string()
}

/// As QEMU's qemu-ga-client prints it, in the style of ifconfig.
pub fn ifconfig(value: &Value) -> String {
    let mut out = String::new();
    for nif in list(value) {
        out.push_str(&format!("{}:\n", text(nif, "name")));
        for addr in list(nif.get("ip-addresses").unwrap_or(&Value::Null)) {
            let prefix = addr.get("prefix").and_then(Value::as_u64).unwrap_or(0);
            match addr.get("ip-address-type").and_then(Value::as_str) {
                Some("ipv4") => out.push_str(&format!(
                    "\tinet {}  netmask {}\n",
                    text(addr, "ip-address"),
                    netmask(prefix)
                )),
                _ => out.push_str(&format!("\tinet6 {}  prefixlen {prefix}\n", text(addr, "ip-address"))),
            }
        }
        match nif.get("hardware-address").and_then(Value::as_str) {
            Some("00:00:00:00:00:00") | None => {}
            Some(mac) => out.push_str(&format!("\tether {}\n", printable(mac))),
        }
    }
    out
}

fn size(bytes: Option<&Value>) -> String {
    bytes.and_then(Value::as_u64).map_or_else(|| "-".to_owned(), human)
}

/// Bytes with a binary unit: 512, 4.0K, 1.5G.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if bytes < 1024 {
        return bytes.to_string();
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1}{}", UNITS[unit])
}

pub fn fsinfo(value: &Value) -> String {
    let rows: Vec<Vec<String>> = list(value)
        .iter()
        .map(|fs| {
            let disks: Vec<String> = list(fs.get("disk").unwrap_or(&Value::Null))
                .iter()
                .map(|d| match d.get("dev").and_then(Value::as_str) {
                    Some(dev) => dev.to_owned(),
                    None => format!("{}:{}", text(d, "bus-type"), text(d, "target")),
                })
                .collect();
            vec![
                text(fs, "mountpoint"),
                text(fs, "type"),
                text(fs, "name"),
                size(fs.get("used-bytes")),
                size(fs.get("total-bytes")),
                if disks.is_empty() {
                    "-".to_owned()
                } else {
                    disks.join(",")
                },
            ]
        })
        .collect();
    table(&["MOUNTPOINT", "TYPE", "NAME", "USED", "TOTAL", "DISKS"], &rows)
}

pub fn disks(value: &Value) -> String {
    let rows: Vec<Vec<String>> = list(value)
        .iter()
        .map(|d| {
            let deps: Vec<String> = list(d.get("dependencies").unwrap_or(&Value::Null))
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            let bus = d.get("address").map_or_else(|| "-".to_owned(), |a| text(a, "bus-type"));
            vec![
                text(d, "name"),
                text(d, "partition"),
                bus,
                if deps.is_empty() {
                    "-".to_owned()
                } else {
                    deps.join(",")
                },
            ]
        })
        .collect();
    table(&["NAME", "PARTITION", "BUS", "DEPENDENCIES"], &rows)
}

pub fn vcpus(value: &Value) -> String {
    let rows: Vec<Vec<String>> = list(value)
        .iter()
        .map(|c| vec![text(c, "logical-id"), text(c, "online"), text(c, "can-offline")])
        .collect();
    table(&["CPU", "ONLINE", "CAN-OFFLINE"], &rows)
}

pub fn fstrim(value: &Value) -> String {
    let rows: Vec<Vec<String>> = list(value.get("paths").unwrap_or(&Value::Null))
        .iter()
        .map(|p| {
            let outcome = match p.get("error").and_then(Value::as_str) {
                Some(error) => format!("error: {error}"),
                None => size(p.get("trimmed")),
            };
            vec![text(p, "path"), outcome]
        })
        .collect();
    table(&["PATH", "TRIMMED"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn utc_renders_the_epoch_and_a_leap_day() {
        assert_eq!(utc(0), "1970-01-01 00:00:00.000000000 UTC");
        assert_eq!(utc(951_782_400_000_000_001), "2000-02-29 00:00:00.000000001 UTC");
    }

    #[test]
    fn netmask_of_each_prefix_edge() {
        assert_eq!(netmask(0), "0.0.0.0");
        assert_eq!(netmask(24), "255.255.255.0");
        assert_eq!(netmask(32), "255.255.255.255");
    }

    #[test]
    fn table_pads_all_but_the_last_column() {
        let rows = vec![
            vec!["a".to_owned(), "bb".to_owned()],
            vec!["ccc".to_owned(), "d".to_owned()],
        ];
        assert_eq!(table(&["X", "Y"], &rows), "X    Y\na    bb\nccc  d\n");
    }

    #[test]
    fn guest_strings_cannot_drive_the_terminal() {
        let reply = json!({"host-name": "evil\u{1b}]0;owned\u{7}\r\n"});
        assert_eq!(hostname(&reply), "evil\\u{1b}]0;owned\\u{7}\\r\\n\n");
    }

    #[test]
    fn ifconfig_hides_the_zero_mac() {
        let reply = json!([{"name": "lo", "hardware-address": "00:00:00:00:00:00",
            "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8}]}]);
        assert_eq!(ifconfig(&reply), "lo:\n\tinet 127.0.0.1  netmask 255.0.0.0\n");
    }
}
