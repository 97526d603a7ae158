use std::path::Path;
use std::time::Duration;

use super::*;
use crate::capabilities::Capability;

fn parse(text: &str) -> Result<Policy, PolicyError> {
    Policy::parse("p.toml", text)
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn default_policy_allows_everything() {
    let p = Policy::default();
    let d = p.decide("guest-exec");
    assert!(d.allowed);
    assert_eq!(d.rule, "defaults.preset = \"compat\" (built-in)");
    assert_eq!(parse("").unwrap(), Policy::default());
}

#[test]
fn hardened_denies_unknown_but_keeps_protocol() {
    let p = parse("[defaults]\npreset = \"hardened\"\n\n[command.\"guest-get-time\"]\nallow = true\n").unwrap();
    assert!(!p.decide("guest-exec").allowed);
    assert_eq!(p.decide("guest-exec").rule, "defaults.preset = \"hardened\" (p.toml:2)");
    assert!(!p.decide("fixture-never-heard-of").allowed);
    assert!(p.decide("guest-ping").allowed);
    let t = p.decide("guest-get-time");
    assert!(t.allowed);
    assert_eq!(t.rule, "command.\"guest-get-time\".allow = true (p.toml:5)");
}

#[test]
fn allows_agrees_with_decide() {
    let policies = [
        Policy::default(),
        parse("[defaults]\npreset = \"hardened\"\n\n[command.\"guest-get-time\"]\nallow = true\n").unwrap(),
        parse("[command.guest-get-users]\nallow = false\n").unwrap(),
    ];
    for p in &policies {
        for command in [
            "guest-exec",
            "guest-ping",
            "guest-get-time",
            "guest-get-users",
            "fixture-x",
        ] {
            assert_eq!(p.allows(command), p.decide(command).allowed, "{command}");
        }
    }
    assert!(!policies[1].allows("guest-exec") && policies[1].allows("guest-ping"));
    assert!(!policies[2].allows("guest-get-users") && policies[2].allows("guest-exec"));
}

#[test]
fn explicit_deny_in_compat() {
    let p = parse("[command.guest-get-users]\nallow = false\n").unwrap();
    assert_eq!(
        p.decide("guest-get-users"),
        Decision {
            allowed: false,
            rule: "command.\"guest-get-users\".allow = false (p.toml:2)".into()
        }
    );
    assert!(p.decide("guest-get-time").allowed);
}

#[test]
fn errors_name_line_and_reason() {
    assert_eq!(
        err("[defaults]\npreset = \"paranoid\"\n"),
        "p.toml:2: unknown preset 'paranoid' (expected \"compat\" or \"hardened\")"
    );
    assert!(err("[command.x]\n\nmemory = \"12 parsecs\"\n").starts_with("p.toml:3: 'memory': unknown size unit"));
    assert!(err("[command.x]\nfrobnicate = 1\n").starts_with("p.toml:2: unknown setting 'frobnicate'"));
    assert!(err("[command.x]\nread-file.pathz = []\n").starts_with("p.toml:2: unknown setting 'read-file.pathz'"));
    assert_eq!(
        err("[command.x]\nallow = \"yes\"\n"),
        "p.toml:2: 'allow' must be true or false"
    );
    assert!(err("x = 1\n[defaults]\n").starts_with("p.toml:1: "));
    assert!(
        err("[defaults]\npreset = \n").starts_with("p.toml:2: "),
        "{}",
        err("[defaults]\npreset = \n")
    );
    assert_eq!(
        err("[component.system-info]\nsha256 = \"abc\"\n"),
        "p.toml:2: 'sha256' must be 64 hexadecimal digits"
    );
    assert!(
        err("[command.x]\ncapabilities = [\"clock\", \"rootshell\"]\n").starts_with(
            "p.toml:2: 'capabilities': unknown capability 'rootshell' (known: clock, host-info, read-file"
        )
    );
    assert_eq!(
        err("[command.x]\nread-file.paths = [\"etc/*\"]\n"),
        "p.toml:2: 'read-file.paths': glob 'etc/*' must be an absolute path"
    );
    assert_eq!(
        err("[command.x]\nmemory = \"2GiB\"\n"),
        "p.toml:2: 'memory': memory must be between 1 byte and 1GiB"
    );
    assert_eq!(
        err("[command.x]\n[command.x]\n").split(':').take(2).collect::<Vec<_>>(),
        ["p.toml", "2"]
    );
}

#[test]
fn narrowing_never_widens() {
    let p = parse(
        "[defaults]\ndeadline = \"3s\"\n[command.\"guest-get-osinfo\"]\nread-file.paths = [\"/etc/**\", \"/etc/shadow\"]\ncapabilities = [\"read-file\", \"clock\"]\nmemory = \"16MiB\"\n",
    )
    .unwrap();
    let base = Grant::none().with(Capability::HostInfo).with(Capability::ReadFile);
    let mut base = base;
    base.read_file.paths = vec!["/etc/os-release".into(), "/usr/lib/os-release".into()];
    let g = p.grant("guest-get-osinfo", base).unwrap();
    assert_eq!(g.read_file.paths, [PathBuf::from("/etc/os-release")]);
    // clock was not in the built-in grant: naming it does not add it.
    assert_eq!(
        g.capabilities.iter().copied().collect::<Vec<_>>(),
        [Capability::ReadFile]
    );
    assert_eq!(g.memory_bytes, 16 << 20);
    assert_eq!(g.deadline, Duration::from_secs(3));
    // Defaults apply to other commands too.
    assert_eq!(
        p.grant("guest-get-time", Grant::none()).unwrap().deadline,
        Duration::from_secs(3)
    );
}

#[test]
fn sizes_durations_globs() {
    assert_eq!(parse_size("64MiB"), Ok(64 << 20));
    assert_eq!(parse_size("4096"), Ok(4096));
    assert_eq!(parse_size("1GiB"), Ok(1 << 30));
    assert!(parse_size("MiB").is_err());
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
    assert!(parse_duration("5").is_err());
    assert!(glob_match("/var/log/**", "/var/log/syslog"));
    assert!(glob_match("/var/log/**", "/var/log/a/b/c"));
    assert!(!glob_match("/var/log/**", "/var/logs/x"));
    assert!(!glob_match("/var/log/**", "/var/log/../../etc/shadow"));
    assert!(glob_match("/tmp/*.txt", "/tmp/a.txt"));
    assert!(!glob_match("/tmp/*.txt", "/tmp/a/b.txt"));
    assert!(glob_match("/etc/os-releas?", "/etc/os-release"));
    assert_eq!(
        narrow_globs(&["/**".into()], &["/var/log/**".into(), "/tmp/**".into()]),
        ["/var/log/**", "/tmp/**"]
    );
    assert_eq!(narrow_globs(&["/var/log/**".into()], &["/**".into()]), ["/var/log/**"]);
    assert!(narrow_globs(&["/var/log/**".into()], &["/etc/**".into()]).is_empty());
}

#[test]
fn mounts_narrow_the_storage_grant() {
    let p = parse("[command.guest-fstrim]\nmounts = [\"/srv/**\", \"/boot\"]\n").unwrap();
    let mut g = Grant::none();
    g.mounts = vec!["/".into(), "/**".into()];
    assert_eq!(p.grant("guest-fstrim", g).unwrap().mounts, ["/srv/**", "/boot"]);
    let mut g = Grant::none();
    g.mounts = vec!["/srv/data".into(), "/home".into()];
    assert_eq!(p.grant("guest-fstrim", g).unwrap().mounts, ["/srv/data"]);
}

#[test]
fn pins_are_lowercased() {
    let p = parse(&format!("[component.system-info]\nsha256 = \"{}\"\n", "AB".repeat(32))).unwrap();
    assert_eq!(p.pin("system-info"), Some("ab".repeat(32).as_str()));
    assert_eq!(p.pin("other"), None);
}

#[test]
fn example_policies_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Policy::load(&path).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 3);
    let backup = Policy::load(&dir.join("backup-only.toml")).unwrap();
    assert_eq!(backup.preset, Preset::Hardened);
    for c in [
        "guest-fsfreeze-freeze",
        "guest-fsfreeze-thaw",
        "guest-fsfreeze-status",
        "guest-get-fsinfo",
    ] {
        assert!(backup.decide(c).allowed, "{c}");
    }
    assert!(!backup.decide("guest-exec").allowed);
    assert!(!backup.decide("guest-file-open").allowed);
}

#[test]
fn grant_tables_give_custom_commands_and_manifests_give_their_family() {
    let p = parse(
        "[grant.\"custom-x\"]\ncapabilities = [\"read-file\"]\nread-file.paths = [\"/srv/a\"]\n[command.\"custom-x\"]\nmemory = \"8MiB\"\n",
    )
    .unwrap();
    let env = |_: &str| None;
    let g = p.base_grant(Some("custom"), "custom-x", &env).unwrap();
    assert_eq!(g.read_file.paths, [PathBuf::from("/srv/a")]);
    assert_eq!(p.grant("custom-x", g).unwrap().memory_bytes, 8 << 20);
    // A swapped-in family under a shipped name: its own manifest's commands
    // only; another family's command gets nothing.
    assert!(
        p.base_grant(Some("system-info"), "guest-get-time", &env)
            .unwrap()
            .allows(Capability::Clock)
    );
    assert_eq!(
        p.base_grant(Some("file"), "guest-get-time", &env).unwrap(),
        manifests::ungranted()
    );
    assert_eq!(
        p.base_grant(Some("custom"), "custom-y", &env).unwrap(),
        manifests::ungranted()
    );
    assert_eq!(
        err("[grant.\"guest-exec\"]\nprocess.programs = [\"/**\"]\n"),
        "p.toml:1: guest-exec is granted by the exec family's manifest, which ships with the agent; narrow it in [command.\"guest-exec\"] instead"
    );
    assert_eq!(
        err("[grant.x]\nallow = true\n"),
        "p.toml:2: a grant says what a command may do; 'allow' belongs in [command.\"…\"]"
    );
    assert_eq!(
        err("[grant.x]\nread-file.paths = [\"/srv/*\"]\n"),
        "p.toml:2: 'read-file.paths': read-file paths are exact absolute paths, not '/srv/*'"
    );
    assert_eq!(
        err("[grant.x]\nread-file.paths = [\"${HOME}/x\"]\n"),
        "p.toml:2: 'read-file.paths': '${HOME}/x': placeholders are for grant manifests only"
    );
    assert!(
        err("[grant.x]\nprompt = true\nwasi.preopens = [\"/srv\"]\n")
            .contains("'prompt' needs a grant of quick capabilities")
    );
    assert!(err("[command.x]\nprompt = true\n").contains("'prompt' is given by a grant"));
}

#[test]
fn new_settings_narrow_sysfs_and_helpers() {
    let p = parse("[command.x]\nsysfs.write = [\"/sys/power/state\"]\nhelper.argv = [[\"chpasswd\"]]\n").unwrap();
    let mut g = Grant::none();
    g.sysfs.write = vec![
        "/sys/power/state".into(),
        "/sys/devices/system/cpu/cpu{n}/online".into(),
    ];
    g.helper.argvs = vec![vec!["chpasswd".into()], vec!["chpasswd".into(), "-e".into()]];
    let g = p.grant("x", g).unwrap();
    assert_eq!(g.sysfs.write, ["/sys/power/state"]);
    assert_eq!(g.helper.argvs, [vec!["chpasswd".to_owned()]]);
    assert!(err("[command.x]\nhelper.argv = [\"chpasswd\"]\n").contains("expected an array of argument vectors"));
}
