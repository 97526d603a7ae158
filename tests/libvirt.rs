//! libvirt's own agent client against qga in a real guest: the tests/vm image
//! is booted as a libvirt domain (qemu:///system, TCG) by
//! tests/vm/libvirt-run.sh, once with qemu-ga 7.2 and once with qga, and every
//! virsh agent command of STEPS must succeed with qga and print what it
//! prints with qemu-ga.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use support::Scratch;
use support::vm::{GUEST_QEMU_GA, GUEST_QGA, image, vm_dir, vm_lock};

/// How virsh's output with qga is checked against its output with qemu-ga.
#[allow(dead_code)] // `Same`-only steps of families not on main yet use the others
#[derive(Clone, Copy)]
enum Check {
    /// Identical output.
    Same,
    /// Identical once every digit is masked (clocks).
    Digits,
    /// Succeeds and prints this (the output legitimately differs, e.g. the
    /// version and command list of guest-info).
    Prints(&'static str),
    /// Identical once lines holding any of these are left out: the guest's
    /// IPv6 link-local address appears a moment after the link comes up, so
    /// whether an agent lists it depends on boot timing, not on the agent.
    SameWithout(&'static [&'static str]),
}
use Check::*;

fn without(text: &str, drop: &[&str]) -> String {
    text.lines()
        .filter(|l| !drop.iter().any(|d| l.contains(d)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// virsh arguments (@DOM@ = the domain, @WORK@ = the work directory, where
/// `keys` holds one ssh public key). One line per virsh agent command; the
/// commented lines are ready for the families not on main yet.
const STEPS: &[(&str, Check)] = &[
    ("guestinfo @DOM@ --os --hostname --timezone --user", Same),
    ("domtime @DOM@", Digits),
    ("domtime @DOM@ --pretty", Digits),
    (r#"qemu-agent-command @DOM@ '{"execute":"guest-ping"}'"#, Same),
    (
        r#"qemu-agent-command @DOM@ '{"execute":"guest-info"}'"#,
        Prints("\"supported_commands\""),
    ),
    (r#"qemu-agent-command @DOM@ '{"execute":"guest-get-osinfo"}'"#, Same),
    (r#"qemu-agent-command @DOM@ '{"execute":"guest-get-host-name"}'"#, Same),
    // storage
    ("domfsinfo @DOM@", Same),
    ("guestinfo @DOM@ --filesystem --disk", Same),
    ("domfsfreeze @DOM@", Same),
    ("domfsthaw @DOM@", Same),
    ("domfstrim @DOM@", Same),
    // network
    ("domifaddr @DOM@ --source agent", SameWithout(&["fe80::"])),
    ("guestinfo @DOM@ --interface", SameWithout(&["if.1.addr"])),
    // clock (guest-set-time)
    ("domtime @DOM@ --time 1700000000", Same),
    ("domtime @DOM@", Same),
    ("domtime @DOM@ --sync", Same),
    // password and ssh keys
    ("set-user-password @DOM@ qgatest s3cret-Pw", Same),
    ("set-user-sshkeys @DOM@ qgatest --file @WORK@/keys", Same),
    ("get-user-sshkeys @DOM@ qgatest", Same),
    ("set-user-sshkeys @DOM@ qgatest --remove --file @WORK@/keys", Same),
    ("get-user-sshkeys @DOM@ qgatest", Same),
    // vcpus
    ("guestvcpus @DOM@", Same),
    ("guestvcpus @DOM@ --cpulist 1 --disable", Same),
    ("guestvcpus @DOM@", Same),
    ("guestvcpus @DOM@ --cpulist 1 --enable", Same),
    ("guestinfo @DOM@", Same),
    // system (last: the domain shuts off; the script waits for "shut off")
    ("shutdown @DOM@ --mode agent", Same),
];

/// One virsh step's exit status and output (domain name replaced by @DOM@).
struct Step {
    rc: i32,
    output: String,
}

fn require(cmd: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{cmd} is missing: install libvirt-daemon-system libvirt-clients libvirt-daemon-driver-qemu \
         (bash tests/run-all.sh installs them)"
    );
}

/// Run STEPS through libvirt-run.sh with `agent` in the guest.
fn run(agent: &str) -> (BTreeMap<usize, Step>, String) {
    let scratch = Scratch::new("libvirt");
    let steps = scratch.path("steps");
    let text: String = STEPS.iter().map(|(s, _)| format!("{s}\n")).collect();
    std::fs::write(&steps, text).unwrap();
    let work = scratch.path("work");
    let t = Instant::now();
    let out = Command::new("bash")
        .arg(vm_dir().join("libvirt-run.sh"))
        .arg(&image().dir)
        .arg(&work)
        .env("QGA_VM_AGENT", agent)
        .env("QGA_VM_VIRSH_STEPS", &steps)
        .env("QGA_VM_TIMEOUT", "300")
        .output()
        .expect("run libvirt-run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let log = format!(
        "{stdout}\n--- stderr\n{}\n--- console\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(work.join("console.log")).unwrap_or_default()
    );
    let name = stdout
        .lines()
        .find_map(|l| l.split("defining ").nth(1))
        .unwrap_or_else(|| panic!("libvirt-run.sh defined no domain:\n{log}"))
        .trim()
        .to_owned();
    let ready = stdout.lines().find(|l| l.contains("agent ready")).unwrap_or("");
    eprintln!(
        "libvirt: {agent}: {} ({:.1} s in all)",
        ready.trim(),
        t.elapsed().as_secs_f64()
    );
    let mut parsed = BTreeMap::new();
    let mut current: Option<(usize, Vec<&str>)> = None;
    let mut index = 0;
    for line in stdout.lines() {
        if line.starts_with("### virsh ") {
            current = Some((index, Vec::new()));
            index += 1;
        } else if let Some(rest) = line.strip_prefix("### rc=") {
            let (i, lines) = current.take().expect("rc line after a virsh line");
            let rc = rest.split_whitespace().next().unwrap().parse().unwrap();
            let output = lines.join("\n").replace(&name, "@DOM@");
            parsed.insert(i, Step { rc, output });
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(line);
        }
    }
    assert!(
        out.status.success() || parsed.len() == STEPS.len(),
        "libvirt-run.sh failed before running every step ({}):\n{log}",
        out.status
    );
    assert_eq!(parsed.len(), STEPS.len(), "not every step ran:\n{log}");
    (parsed, log)
}

fn mask_digits(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_digit() { '0' } else { c }).collect()
}

#[test]
fn virsh_agent_commands_work_against_qga_as_against_qemu_ga() {
    require("virsh");
    require("libvirtd");
    require("virtlogd");
    assert!(Path::new(GUEST_QEMU_GA).exists(), "qemu-guest-agent is missing");
    let _lock = vm_lock();
    let (theirs, their_log) = run(GUEST_QEMU_GA);
    let (ours, our_log) = run(GUEST_QGA);
    for (i, (step, check)) in STEPS.iter().enumerate() {
        let (a, b) = (&ours[&i], &theirs[&i]);
        assert_eq!(b.rc, 0, "virsh {step} failed with qemu-ga:\n{their_log}");
        assert_eq!(a.rc, 0, "virsh {step} failed with qga: {}\n{our_log}", a.output);
        match check {
            Same => assert_eq!(a.output, b.output, "virsh {step}"),
            Digits => assert_eq!(mask_digits(&a.output), mask_digits(&b.output), "virsh {step}"),
            Prints(text) => assert!(a.output.contains(text), "virsh {step}: {}", a.output),
            SameWithout(drop) => assert_eq!(without(&a.output, drop), without(&b.output, drop), "virsh {step}"),
        }
        eprintln!("libvirt: virsh {step}: ok\n    {}", a.output.replace('\n', "\n    "));
    }
}
