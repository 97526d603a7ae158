//! guest-file-* and guest-exec* end to end over the wire: large binary
//! round trips, stdin and capture, reaping, and no busy loop when a child
//! ignores its stdin. Exec answers (which carry pids) are compared with the
//! real qemu-ga 7.2 status by status.

mod support;

use std::time::{Duration, Instant};

use base64::Engine as _;
use support::{Agent, Client};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(text).unwrap()
}

/// Deterministic pseudo-random bytes (xorshift64).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The text of string member `name` in a reply.
fn member_str<'a>(reply: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\": \"");
    let start = reply.find(&key)? + key.len();
    let end = start + reply[start..].find('"')?;
    Some(&reply[start..end])
}

fn member_int(reply: &str, name: &str) -> Option<i64> {
    let key = format!("\"{name}\": ");
    let start = reply.find(&key)? + key.len();
    let digits: String = reply[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().ok()
}

fn exec(client: &mut Client, args: &str) -> i64 {
    let reply = client.call(&format!(r#"{{"execute": "guest-exec", "arguments": {args}}}"#));
    member_int(&reply, "pid").unwrap_or_else(|| panic!("guest-exec failed: {reply}"))
}

/// Poll guest-exec-status until it reports exited; the final reply.
fn wait_exited(client: &mut Client, pid: i64) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = client.call(&format!(
            r#"{{"execute": "guest-exec-status", "arguments": {{"pid": {pid}}}}}"#
        ));
        if reply.contains("\"exited\": true") {
            return reply;
        }
        assert_eq!(reply, r#"{"return": {"exited": false}}"#);
        assert!(Instant::now() < deadline, "pid {pid} did not exit");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn write_seek_read_round_trip_of_random_binary_up_to_48_mib_is_byte_exact() {
    let agent = Agent::qga(&[]);
    let mut c = agent.connect();
    let path = agent.scratch.path("round-trip.bin");
    for (i, size) in [0usize, 1, 2, 3, 4095, 4096, 4097, (1 << 20) + 7, 48 << 20]
        .into_iter()
        .enumerate()
    {
        let data = noise(size, 0x1234 + i as u64);
        let open = c.call(&format!(
            r#"{{"execute": "guest-file-open", "arguments": {{"path": "{}", "mode": "w+b"}}}}"#,
            path.display()
        ));
        let h = member_int(&open, "return").unwrap_or_else(|| panic!("{open}"));
        assert_eq!(h, 1000 + i as i64, "handles are sequential from 1000");
        for piece in data
            .chunks(4 << 20)
            .chain(std::iter::once(&[][..]).take(usize::from(size == 0)))
        {
            let reply = c.call(&format!(
                r#"{{"execute": "guest-file-write", "arguments": {{"handle": {h}, "buf-b64": "{}"}}}}"#,
                b64(piece)
            ));
            assert_eq!(
                reply,
                format!(r#"{{"return": {{"count": {}, "eof": false}}}}"#, piece.len())
            );
        }
        let reply = c.call(&format!(
            r#"{{"execute": "guest-file-seek", "arguments": {{"handle": {h}, "offset": 0, "whence": "set"}}}}"#
        ));
        assert_eq!(reply, r#"{"return": {"eof": false, "position": 0}}"#);
        // One call for the whole file (count = size: eof stays false, as
        // with qemu-ga's fread), then one more that reports eof.
        let reply = c.call(&format!(
            r#"{{"execute": "guest-file-read", "arguments": {{"handle": {h}, "count": {size}}}}}"#
        ));
        assert_eq!(member_int(&reply, "count"), Some(size as i64));
        assert!(
            reply.ends_with(r#""eof": false}}"#),
            "{}",
            &reply[reply.len().saturating_sub(60)..]
        );
        let back = unb64(member_str(&reply, "buf-b64").unwrap());
        assert!(back == data, "size {size}: data differs");
        let reply = c.call(&format!(
            r#"{{"execute": "guest-file-read", "arguments": {{"handle": {h}}}}}"#
        ));
        assert_eq!(reply, r#"{"return": {"count": 0, "buf-b64": "", "eof": true}}"#);
        assert_eq!(
            c.call(&format!(
                r#"{{"execute": "guest-file-close", "arguments": {{"handle": {h}}}}}"#
            )),
            r#"{"return": {}}"#
        );
        assert!(
            std::fs::read(&path).unwrap() == data,
            "size {size}: file on disk differs"
        );
    }
    assert_eq!(
        std::fs::read_to_string(agent.scratch.path("state/qga.state")).unwrap(),
        "[global]\nfd_counter=1009\n"
    );
    // The 48 MiB went through the sandbox and back out: memory is given back.
    std::thread::sleep(Duration::from_millis(300));
    let rss = agent.rss_kib();
    assert!(rss < 120 * 1024, "RSS after 48 MiB transfers: {rss} KiB");
}

#[test]
fn read_above_48_mib_is_refused_and_file_modes_match_qemu_ga() {
    // The umask the agents inherit from this test process.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let umask_line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    let umask = u32::from_str_radix(umask_line.split_whitespace().nth(1).unwrap(), 8).unwrap();
    // qemu-ga fchmods new files to 0666 whatever the umask (world-writable);
    // qga lets the umask apply (a deliberate difference, see README).
    for (agent, expected_mode) in [(Agent::qga(&[]), 0o666 & !umask), (Agent::qemu_ga(&[]), 0o666)] {
        let mut c = agent.connect();
        let path = agent.scratch.path("created");
        let reply = c.call(&format!(
            r#"{{"execute": "guest-file-open", "arguments": {{"path": "{}", "mode": "a"}}}}"#,
            path.display()
        ));
        assert_eq!(reply, r#"{"return": 1000}"#);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, expected_mode, "umask {umask:o}");
        let reply = c.call(r#"{"execute": "guest-file-read", "arguments": {"handle": 1000, "count": 50331649}}"#);
        assert_eq!(
            reply,
            r#"{"error": {"class": "GenericError", "desc": "value '50331649' is invalid for argument count"}}"#
        );
    }
}

#[test]
fn exec_with_1_mib_stdin_to_cat_returns_it_intact() {
    let agent = Agent::qga(&[]);
    let mut c = agent.connect();
    let data = noise(1 << 20, 99);
    let pid = exec(
        &mut c,
        &format!(
            r#"{{"path": "cat", "input-data": "{}", "capture-output": true}}"#,
            b64(&data)
        ),
    );
    let reply = wait_exited(&mut c, pid);
    assert_eq!(
        member_int(&reply, "exitcode"),
        Some(0),
        "{}",
        &reply[..200.min(reply.len())]
    );
    assert!(reply.contains(r#""out-truncated": false"#));
    assert!(
        unb64(member_str(&reply, "out-data").unwrap()) == data,
        "cat's output differs"
    );
    assert!(!reply.contains("err-data"));
}

#[test]
fn exec_with_1_mib_stdin_to_true_does_not_spin() {
    let agent = Agent::qga(&[]);
    let mut c = agent.connect();
    let data = b64(&noise(1 << 20, 7));
    let pid = exec(&mut c, &format!(r#"{{"path": "/bin/true", "input-data": "{data}"}}"#));
    let reply = wait_exited(&mut c, pid);
    assert_eq!(reply, r#"{"return": {"exitcode": 0, "exited": true}}"#);
    // qemu-ga 7.2 burns a whole core here, in every second, forever (it
    // polls the dead pipe): it never goes quiet. qga does.
    agent.wait_idle();
}

/// Zombie children of `pid` (state Z in /proc/<child>/stat).
fn zombies_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split(' ').collect();
        if fields[0] == "Z" && fields[1] == pid.to_string() {
            out.push(child);
        }
    }
    out
}

#[test]
fn exited_children_are_reaped_before_anyone_asks() {
    let agent = Agent::qga(&[]);
    let mut c = agent.connect();
    let pids: Vec<i64> = (0..5).map(|_| exec(&mut c, r#"{"path": "/bin/true"}"#)).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let gone = pids
            .iter()
            .all(|p| !std::path::Path::new(&format!("/proc/{p}")).exists());
        if gone {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "children left: {:?}",
            zombies_of(agent.pid())
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(zombies_of(agent.pid()).is_empty());
    for pid in pids {
        assert_eq!(
            wait_exited(&mut c, pid),
            r#"{"return": {"exitcode": 0, "exited": true}}"#
        );
        // Reported once, then forgotten.
        assert_eq!(
            c.call(&format!(
                r#"{{"execute": "guest-exec-status", "arguments": {{"pid": {pid}}}}}"#
            )),
            r#"{"error": {"class": "GenericError", "desc": "Invalid parameter 'pid'"}}"#
        );
    }
}

/// The same programs on both agents: every final status (no pid in it) is
/// byte-identical.
#[test]
fn exec_statuses_match_qemu_ga() {
    let cases = [
        r#"{"path": "/bin/true"}"#,
        r#"{"path": "false"}"#,
        r#"{"path": "true", "capture-output": true}"#,
        r#"{"path": "sh", "arg": ["-c", "echo out; echo err >&2; exit 3"], "capture-output": true}"#,
        r#"{"path": "sh", "arg": ["-c", "printf err >&2"], "capture-output": true}"#,
        r#"{"path": "sh", "arg": ["-c", "kill -9 $$"]}"#,
        r#"{"path": "sh", "arg": ["-c", "kill -TERM $$"], "capture-output": true}"#,
        r#"{"path": "env", "env": ["A=1", "B=two words"], "capture-output": true}"#,
        r#"{"path": "sh", "arg": ["-c", "echo $0 $1 $#", "x y", "z"], "capture-output": true}"#,
        r#"{"path": "cat", "input-data": "aGVsbG8=", "capture-output": true}"#,
        r#"{"path": "cat", "input-data": "", "capture-output": true}"#,
        r#"{"path": "sh", "arg": ["-c", "cat; exit 4"], "input-data": "AAEC/w=="}"#,
        r#"{"path": "sh", "arg": ["-c", "head -c 16777216 /dev/zero"], "capture-output": true}"#,
        r#"{"path": "sh", "arg": ["-c", "head -c 17000000 /dev/zero; head -c 16777217 /dev/zero >&2"], "capture-output": true}"#,
    ];
    let qga = Agent::qga(&[]);
    let qemu = Agent::qemu_ga(&[]);
    let mut a = qga.connect();
    let mut b = qemu.connect();
    for case in cases {
        let ours = {
            let pid = exec(&mut a, case);
            wait_exited(&mut a, pid)
        };
        let theirs = {
            let pid = exec(&mut b, case);
            wait_exited(&mut b, pid)
        };
        assert!(
            ours == theirs,
            "{case}:\n qga:     {}\n qemu-ga: {}",
            &ours[..ours.len().min(300)],
            &theirs[..theirs.len().min(300)]
        );
    }
}

#[test]
fn exec_status_while_running_and_pid_reported_once() {
    let agent = Agent::qga(&[]);
    let mut c = agent.connect();
    let pid = exec(&mut c, r#"{"path": "sleep", "arg": ["0.3"], "capture-output": true}"#);
    assert_eq!(
        c.call(&format!(
            r#"{{"execute": "guest-exec-status", "arguments": {{"pid": {pid}}}}}"#
        )),
        r#"{"return": {"exited": false}}"#
    );
    assert_eq!(
        wait_exited(&mut c, pid),
        r#"{"return": {"exitcode": 0, "exited": true}}"#
    );
}
