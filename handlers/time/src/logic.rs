//! qemu-ga 7.2's qmp_guest_set_time.

pub const HWCLOCK: &str = "/sbin/hwclock";

pub enum Outcome {
    Exited(i32),
    Signaled,
    SpawnFailed(String),
}

pub trait Clock {
    /// access("/sbin/hwclock", X_OK) == 0
    fn hwclock_available(&mut self) -> bool;
    /// The local zone's offset east of UTC now, seconds.
    fn utc_offset(&mut self) -> i64;
    fn settimeofday(&mut self, sec: i64, usec: i64) -> Result<(), String>;
    fn hwclock(&mut self, arg: &str) -> Outcome;
}

pub fn set_time(c: &mut dyn Clock, time: Option<i64>) -> Result<(), String> {
    if !c.hwclock_available() {
        return Err("this feature or command is not currently supported".into());
    }
    if let Some(ns) = time {
        // C division: toward zero.
        let sec = ns / 1_000_000_000;
        let usec = (ns % 1_000_000_000) / 1000;
        // g_date_set_time_t: the local date of `sec`.
        let local = sec.saturating_add(c.utc_offset());
        let (year, _, _) = qga_text::civil::from_days(local.div_euclid(86_400));
        if !(1970..2070).contains(&year) {
            return Err("Invalid time".into());
        }
        c.settimeofday(sec, usec)
            .map_err(|e| format!("Failed to set time to guest: {e}"))?;
    }
    match c.hwclock(if time.is_some() { "-w" } else { "-s" }) {
        Outcome::Exited(0) => Ok(()),
        Outcome::Exited(_) => Err("hwclock failed to set hardware clock to system time".into()),
        Outcome::Signaled => Err("child process has terminated abnormally".into()),
        Outcome::SpawnFailed(e) => Err(format!("failed to create child process: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        available: bool,
        offset: i64,
        set: Vec<(i64, i64)>,
        hw: Vec<String>,
        hw_status: i32,
    }

    impl Clock for Fake {
        fn hwclock_available(&mut self) -> bool {
            self.available
        }
        fn utc_offset(&mut self) -> i64 {
            self.offset
        }
        fn settimeofday(&mut self, sec: i64, usec: i64) -> Result<(), String> {
            self.set.push((sec, usec));
            Ok(())
        }
        fn hwclock(&mut self, arg: &str) -> Outcome {
            self.hw.push(arg.into());
            Outcome::Exited(self.hw_status)
        }
    }

    fn fake() -> Fake {
        Fake {
            available: true,
            offset: 0,
            set: vec![],
            hw: vec![],
            hw_status: 0,
        }
    }

    #[test]
    fn sets_then_writes_rtc_or_reads_it_back() {
        let mut f = fake();
        assert_eq!(set_time(&mut f, Some(1_700_000_000_123_456_789)), Ok(()));
        assert_eq!(f.set, [(1_700_000_000, 123_456)]);
        assert_eq!(set_time(&mut f, None), Ok(()));
        assert_eq!(f.hw, ["-w", "-s"]);
        f.hw_status = 1;
        assert_eq!(
            set_time(&mut f, None),
            Err("hwclock failed to set hardware clock to system time".into())
        );
    }

    #[test]
    fn range_and_availability() {
        let mut f = fake();
        assert_eq!(set_time(&mut f, Some(-1_000_000_000)), Err("Invalid time".into()));
        assert_eq!(
            set_time(&mut f, Some(3_155_760_000 * 1_000_000_000)),
            Err("Invalid time".into())
        );
        assert_eq!(set_time(&mut f, Some(0)), Ok(()));
        f.offset = -3600;
        assert_eq!(set_time(&mut f, Some(0)), Err("Invalid time".into()));
        f.available = false;
        assert_eq!(
            set_time(&mut f, None),
            Err("this feature or command is not currently supported".into())
        );
    }
}
