//! Every system-info command, answered by the embedded component, compared
//! byte for byte with /usr/sbin/qemu-ga's reply on this machine (moving
//! values masked). Skipped (with a note) where qemu-ga is not installed.
//! Run with `cargo test --release`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qga::capabilities::Grant;
use qga::qobject::{Dict, Value};
use qga::runtime::{Runtime, RuntimeConfig};

const QEMU_GA: &str = "/usr/sbin/qemu-ga";

struct QemuGa {
    child: Child,
    sock: PathBuf,
}

impl QemuGa {
    fn start(name: &str, os_release: Option<&Path>) -> Option<QemuGa> {
        if !Path::new(QEMU_GA).exists() {
            eprintln!("{QEMU_GA} not installed: comparison skipped");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("qga-cmp-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("ga.sock");
        let mut cmd = Command::new(QEMU_GA);
        cmd.args(["-m", "unix-listen", "-p"])
            .arg(&sock)
            .arg("-t")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .env_remove("QGA_OS_RELEASE");
        if let Some(p) = os_release {
            cmd.env("QGA_OS_RELEASE", p);
        }
        let child = cmd.spawn().unwrap();
        let start = Instant::now();
        while !sock.exists() {
            assert!(start.elapsed() < Duration::from_secs(5), "qemu-ga did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(QemuGa { child, sock })
    }

    fn ask(&self, command: &str) -> String {
        let mut s = UnixStream::connect(&self.sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        writeln!(s, "{{\"execute\":\"{command}\"}}").unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    }
}

impl Drop for QemuGa {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn runtime(name: &str, grants: &[(&str, Grant)]) -> Runtime {
    let dir = std::env::temp_dir().join(format!("qga-cmp-state-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = RuntimeConfig::new(dir);
    for (c, g) in grants {
        config.grants.insert((*c).to_owned(), g.clone());
    }
    Runtime::new(config).unwrap()
}

/// Our reply line, as the protocol layer writes it.
fn ours(rt: &Runtime, command: &str) -> String {
    match rt.call(command, None) {
        Ok(Some(v)) => Value::Dict(Dict::new().with("return", v)).to_json(),
        Ok(None) => String::new(),
        Err(e) => format!("{{\"error\": {{\"class\": \"GenericError\", \"desc\": {:?}}}}}", e.desc),
    }
}

#[test]
fn fixed_answers_are_byte_equal() {
    let Some(ga) = QemuGa::start("fixed", None) else {
        return;
    };
    let rt = runtime("fixed", &[]);
    for command in [
        "guest-get-host-name",
        "guest-get-timezone",
        "guest-get-osinfo",
        "guest-get-users",
    ] {
        assert_eq!(ours(&rt, command), ga.ask(command), "{command}");
    }
}

#[test]
fn time_is_close_and_microsecond_granular() {
    let Some(ga) = QemuGa::start("time", None) else {
        return;
    };
    let rt = runtime("time", &[]);
    let theirs = ga.ask("guest-get-time");
    let mine = ours(&rt, "guest-get-time");
    let num = |s: &str| -> i64 {
        s.trim_start_matches("{\"return\": ")
            .trim_end_matches('}')
            .parse()
            .unwrap()
    };
    let (a, b) = (num(&theirs), num(&mine));
    assert_eq!(b % 1000, 0, "{mine}");
    assert!((a - b).abs() < 5_000_000_000, "{theirs} vs {mine}");
}

#[test]
fn osinfo_honours_qga_os_release_like_qemu_ga() {
    let dir = std::env::temp_dir().join(format!("qga-osr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases: &[&str] = &[
        "NAME = \"Foo Bar\"  \nID=foo bar\n  # comment\nPRETTY_NAME=\"a\\\"b\\$c\\qd\" tail\nVERSION='x y'\nVERSION_ID=\"unterminated\nVARIANT=semi;colon\nVARIANT_ID=\n",
        "NAME=x\ngarbage line\n",
        "NAME=x\n[grp]\nID=y\n",
        "NAME=x\r\nID=a\tb\nID=c\nVERSION=\"q\"x\"\n VERSION_ID =3\n",
        "ID=\"tab\\tand\\\\back\"\nNAME=\"caf\u{e9}\"\n",
    ];
    for (i, text) in cases.iter().enumerate() {
        let path = dir.join(format!("os-release-{i}"));
        std::fs::write(&path, text).unwrap();
        let Some(ga) = QemuGa::start(&format!("osr{i}"), Some(&path)) else {
            return;
        };
        let p = path.to_string_lossy().into_owned();
        let grant =
            qga::policy::manifests::builtin("guest-get-osinfo", &|k| (k == "QGA_OS_RELEASE").then(|| p.clone()));
        let rt = runtime(&format!("osr{i}"), &[("guest-get-osinfo", grant)]);
        assert_eq!(
            ours(&rt, "guest-get-osinfo"),
            ga.ask("guest-get-osinfo"),
            "case {i}: {text:?}"
        );
    }
    // A missing file: only the uname members, as qemu-ga.
    let missing = dir.join("missing");
    let Some(ga) = QemuGa::start("osr-missing", Some(&missing)) else {
        return;
    };
    let p = missing.to_string_lossy().into_owned();
    let grant = qga::policy::manifests::builtin("guest-get-osinfo", &|k| (k == "QGA_OS_RELEASE").then(|| p.clone()));
    let rt = runtime("osr-missing", &[("guest-get-osinfo", grant)]);
    assert_eq!(ours(&rt, "guest-get-osinfo"), ga.ask("guest-get-osinfo"));
}

/// The first unexpected member qemu-ga names depends on GLib's hash table
/// order; compare on many key sets (with and without visited members).
#[test]
fn first_unexpected_member_matches_qemu_ga() {
    use qga::convert::{Field, Returns, Shape, Signature};
    let Some(ga) = QemuGa::start("unexpected", None) else {
        return;
    };
    let read = Signature {
        params: vec![
            Field {
                name: "handle".into(),
                shape: Shape::S64,
                optional: false,
            },
            Field {
                name: "count".into(),
                shape: Shape::S64,
                optional: true,
            },
        ],
        returns: Returns::Empty,
    };
    let none = Signature {
        params: vec![],
        returns: Returns::Empty,
    };
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut s = UnixStream::connect(&ga.sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    for round in 0..300 {
        let n = 1 + (next() % 12) as usize;
        let mut d = Dict::new();
        let mut text = Vec::new();
        if round % 2 == 1 {
            d.insert("handle", Value::Int(1));
            text.push("\"handle\": 1".to_owned());
            if round % 4 == 1 {
                d.insert("count", Value::Int(1));
                text.push("\"count\": 1".to_owned());
            }
        }
        for _ in 0..n {
            let len = 1 + (next() % 8) as usize;
            let key: String = (0..len).map(|_| (b'a' + (next() % 26) as u8) as char).collect();
            if d.contains_key(&key) {
                continue;
            }
            d.insert(key.clone(), Value::Int(0));
            text.push(format!("\"{key}\": 0"));
        }
        let (command, sig) = if round % 2 == 1 {
            ("guest-file-read", &read)
        } else {
            ("guest-get-time", &none)
        };
        writeln!(
            s,
            "{{\"execute\": \"{command}\", \"arguments\": {{{}}}}}",
            text.join(", ")
        )
        .unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let mine = sig.params_from_json(Some(&d)).unwrap_err().desc;
        assert!(
            line.contains(&format!("\"desc\": \"{mine}\"")),
            "{text:?}: qemu-ga {line} vs {mine}"
        );
    }
}
