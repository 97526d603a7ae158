//! qemu-ga 7.2's guest-shutdown (with qemu-ga 10's fallback for systems
//! without systemd) and guest_suspend().

pub const SYS_STATE: &str = "/sys/power/state";
pub const SHUTDOWN: &str = "/sbin/shutdown";
/// The mode's own program, run without arguments in place of
/// /sbin/shutdown when it is executable (qemu-ga 10: systems whose
/// shutdown is not systemd's, e.g. busybox, lack `shutdown -h -P +0`).
pub const POWEROFF: &str = "/sbin/poweroff";
pub const HALT: &str = "/sbin/halt";
pub const REBOOT: &str = "/sbin/reboot";

/// How a helper ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Exited(i32),
    Signaled(i32),
    /// The program does not exist.
    NotFound,
    /// fork/exec failed otherwise.
    SpawnFailed(String),
}

pub trait Power {
    fn run(&mut self, program: &str, args: &[&str]) -> Outcome;
    /// access(program, X_OK) == 0.
    fn is_executable(&mut self, program: &str) -> bool;
    /// Up to 31 bytes of /sys/power/state; None when it cannot be read.
    fn read_state(&mut self) -> Option<Vec<u8>>;
    /// Write /sys/power/state; false on failure.
    fn write_state(&mut self, data: &str) -> bool;
}

/// guest-shutdown: fork + exec the mode's own program (/sbin/poweroff,
/// /sbin/halt, /sbin/reboot) when it is executable, else `/sbin/shutdown -h
/// FLAG +0 "hypervisor initiated shutdown"`, and wait for it.
pub fn shutdown(p: &mut dyn Power, mode: Option<&str>) -> Result<(), String> {
    let (flag, own) = match mode {
        None | Some("powerdown") => ("-P", POWEROFF),
        Some("halt") => ("-H", HALT),
        Some("reboot") => ("-r", REBOOT),
        Some(_) => return Err("mode is invalid (valid values are: halt|powerdown|reboot".into()),
    };
    let outcome = if p.is_executable(own) {
        p.run(own, &[])
    } else {
        p.run(SHUTDOWN, &["-h", flag, "+0", "hypervisor initiated shutdown"])
    };
    match outcome {
        Outcome::Exited(0) => Ok(()),
        // exec failing in qemu-ga's child is _exit(EXIT_FAILURE)
        Outcome::Exited(_) | Outcome::NotFound => Err("child process has failed to shutdown".into()),
        Outcome::Signaled(_) => Err("child process has terminated abnormally".into()),
        Outcome::SpawnFailed(e) => Err(format!("failed to create child process: {e}")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Disk,
    Ram,
    Hybrid,
}

/// run_process_child: the exit status (WEXITSTATUS), or -1 with an error
/// unless the program was not found.
fn run_child(p: &mut dyn Power, program: &str, args: &[&str]) -> (i32, Option<String>) {
    match p.run(program, args) {
        Outcome::Exited(code) => (code & 0xff, None),
        Outcome::Signaled(_) => (0, None),
        Outcome::NotFound => (-1, None),
        Outcome::SpawnFailed(e) => (-1, Some(format!("failed to create child process, error '{e}'"))),
    }
}

/// systemd_supports_mode: Ok(true/false), or the spawn error.
fn systemd_supports(p: &mut dyn Power, mode: Mode) -> (bool, Option<String>) {
    let unit = ["systemd-hibernate", "systemd-suspend", "systemd-hybrid-sleep"][mode as usize];
    let (status, err) = run_child(p, "systemctl", &["status", unit]);
    if status > 0 && status < 4 {
        return (true, None);
    }
    (false, err)
}

fn systemd_suspend(p: &mut dyn Power, mode: Mode) -> Option<String> {
    let verb = ["hibernate", "suspend", "hybrid-sleep"][mode as usize];
    match run_child(p, "systemctl", &[verb]) {
        (0, _) => None,
        (-1, None) => Some(format!("the helper program 'systemctl {verb}' was not found")),
        (_, Some(e)) => Some(e),
        (status, None) => Some(format!(
            "the helper program 'systemctl {verb}' returned an unexpected exit status code ({status})"
        )),
    }
}

fn pmutils_supports(p: &mut dyn Power, mode: Mode) -> (bool, Option<String>) {
    let flag = ["--hibernate", "--suspend", "--suspend-hybrid"][mode as usize];
    match run_child(p, "pm-is-supported", &[flag]) {
        (0, _) => (true, None),
        (-1, None) => (false, None),
        (_, Some(e)) => (false, Some(e)),
        (status, None) => (
            false,
            Some(format!(
                "the helper program 'pm-is-supported' returned an unexpected exit status code ({status})"
            )),
        ),
    }
}

fn pmutils_suspend(p: &mut dyn Power, mode: Mode) -> Option<String> {
    let program = ["pm-hibernate", "pm-suspend", "pm-suspend-hybrid"][mode as usize];
    match run_child(p, program, &[]) {
        (0, _) => None,
        (-1, None) => Some(format!("the helper program '{program}' was not found")),
        (_, Some(e)) => Some(e),
        (status, None) => Some(format!(
            "the helper program '{program}' returned an unexpected exit status code ({status})"
        )),
    }
}

fn sys_state_word(mode: Mode) -> Option<&'static str> {
    match mode {
        Mode::Disk => Some("disk"),
        Mode::Ram => Some("mem"),
        Mode::Hybrid => None,
    }
}

fn sys_state_supports(p: &mut dyn Power, mode: Mode) -> (bool, Option<String>) {
    let Some(word) = sys_state_word(mode) else {
        return (false, Some("unknown guest suspend mode".into()));
    };
    match p.read_state() {
        Some(buf) if !buf.is_empty() => {
            let text = String::from_utf8_lossy(&buf);
            // read() into a C buffer: a NUL ends the string strstr sees
            let text = text.split('\0').next().unwrap_or("");
            (text.contains(word), None)
        }
        _ => (false, None),
    }
}

fn sys_state_suspend(p: &mut dyn Power, mode: Mode) -> Option<String> {
    let Some(word) = sys_state_word(mode) else {
        return Some("unknown guest suspend mode".into());
    };
    if p.write_state(word) {
        None
    } else {
        Some("child process has failed to suspend".into())
    }
}

/// guest_suspend() of qemu-ga 7.2.22 (with "qga: Fix suspend on Linux
/// guests without systemd"): systemd, then pm-utils, then
/// /sys/power/state, each tried when the one before is not supported or
/// fails.
pub fn suspend(p: &mut dyn Power, mode: Mode) -> Result<(), String> {
    let mut supported = false;
    let (yes, _) = systemd_supports(p, mode);
    if yes {
        supported = true;
        if systemd_suspend(p, mode).is_none() {
            return Ok(());
        }
    }
    let (yes, _) = pmutils_supports(p, mode);
    if yes {
        supported = true;
        if pmutils_suspend(p, mode).is_none() {
            return Ok(());
        }
    }
    let (yes, mut err) = sys_state_supports(p, mode);
    if yes {
        supported = true;
        err = sys_state_suspend(p, mode);
    }
    if !supported {
        return Err("the requested suspend mode is not supported by the guest".into());
    }
    match err {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Fake {
        programs: HashMap<String, Outcome>,
        state: Option<Vec<u8>>,
        ran: Vec<String>,
        written: Vec<String>,
        executable: Vec<String>,
    }

    impl Power for Fake {
        fn run(&mut self, program: &str, args: &[&str]) -> Outcome {
            let line = std::iter::once(program)
                .chain(args.iter().copied())
                .collect::<Vec<_>>()
                .join(" ");
            self.ran.push(line.clone());
            self.programs.get(&line).cloned().unwrap_or(Outcome::NotFound)
        }
        fn is_executable(&mut self, program: &str) -> bool {
            self.executable.iter().any(|p| p == program)
        }
        fn read_state(&mut self) -> Option<Vec<u8>> {
            self.state.clone()
        }
        fn write_state(&mut self, data: &str) -> bool {
            self.written.push(data.to_owned());
            true
        }
    }

    #[test]
    fn shutdown_flags_and_errors() {
        let mut f = Fake::default();
        f.programs.insert(
            "/sbin/shutdown -h -P +0 hypervisor initiated shutdown".into(),
            Outcome::Exited(0),
        );
        assert_eq!(shutdown(&mut f, None), Ok(()));
        assert_eq!(shutdown(&mut f, Some("powerdown")), Ok(()));
        assert_eq!(
            shutdown(&mut f, Some("halt")),
            Err("child process has failed to shutdown".into())
        );
        assert_eq!(f.ran[2], "/sbin/shutdown -h -H +0 hypervisor initiated shutdown");
        assert_eq!(
            shutdown(&mut f, Some("off")),
            Err("mode is invalid (valid values are: halt|powerdown|reboot".into())
        );
        assert_eq!(f.ran.len(), 3);
    }

    #[test]
    fn shutdown_runs_the_modes_own_program_when_executable() {
        let mut f = Fake {
            executable: vec![POWEROFF.into(), REBOOT.into()],
            ..Fake::default()
        };
        f.programs.insert(POWEROFF.into(), Outcome::Exited(0));
        assert_eq!(shutdown(&mut f, None), Ok(()));
        assert_eq!(
            shutdown(&mut f, Some("reboot")),
            Err("child process has failed to shutdown".into())
        );
        // no /sbin/halt: shutdown -h -H as before
        assert!(shutdown(&mut f, Some("halt")).is_err());
        assert_eq!(
            f.ran,
            [
                "/sbin/poweroff",
                "/sbin/reboot",
                "/sbin/shutdown -h -H +0 hypervisor initiated shutdown"
            ]
        );
    }

    #[test]
    fn systemd_first() {
        let mut f = Fake::default();
        f.programs
            .insert("systemctl status systemd-suspend".into(), Outcome::Exited(3));
        f.programs.insert("systemctl suspend".into(), Outcome::Exited(0));
        f.state = Some(b"freeze mem\n".to_vec());
        assert_eq!(suspend(&mut f, Mode::Ram), Ok(()));
        assert!(f.written.is_empty());
        assert_eq!(f.ran, ["systemctl status systemd-suspend", "systemctl suspend"]);
    }

    #[test]
    fn without_systemd_or_pm_utils_sys_power_state() {
        let mut f = Fake {
            state: Some(b"freeze mem\n".to_vec()),
            ..Default::default()
        };
        assert_eq!(suspend(&mut f, Mode::Ram), Ok(()));
        assert_eq!(f.written, ["mem"]);
        assert_eq!(
            suspend(&mut f, Mode::Disk),
            Err("the requested suspend mode is not supported by the guest".into())
        );
        assert_eq!(
            suspend(&mut f, Mode::Hybrid),
            Err("the requested suspend mode is not supported by the guest".into())
        );
        assert_eq!(f.written, ["mem"]);
    }

    #[test]
    fn a_failing_supported_method_falls_through_and_its_error_is_dropped() {
        let mut f = Fake::default();
        f.programs
            .insert("systemctl status systemd-hibernate".into(), Outcome::Exited(3));
        f.programs.insert("systemctl hibernate".into(), Outcome::Exited(1));
        f.state = Some(b"freeze mem\n".to_vec());
        // supported by systemd (which failed), nothing else: 7.2 reports success
        assert_eq!(suspend(&mut f, Mode::Disk), Ok(()));
        f.programs
            .insert("pm-is-supported --hibernate".into(), Outcome::Exited(0));
        f.programs.insert("pm-hibernate".into(), Outcome::Exited(2));
        f.state = Some(b"freeze mem disk\n".to_vec());
        assert_eq!(suspend(&mut f, Mode::Disk), Ok(()));
        assert_eq!(f.written, ["disk"]);
    }
}
