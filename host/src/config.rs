//! The agent's configuration, as qemu-ga takes it: the `[general]` group
//! of a key file (`-c FILE` as qemu-ga 9.1 added it, else `$QGA_CONF`, else
//! /etc/qemu/qemu-ga.conf), overridden by command-line options; `-D` prints
//! the result in the same key-file form (with 10.0's `allow-rpcs=` line).

use std::path::{Path, PathBuf};

use crate::cli::Cli;

pub const DEFAULT_CONFIG_FILE: &str = "/etc/qemu/qemu-ga.conf";
pub const DEFAULT_VIRTIO_PATH: &str = "/dev/virtio-ports/org.qemu.guest_agent.0";
pub const DEFAULT_ISA_PATH: &str = "/dev/ttyS0";
pub const DEFAULT_PIDFILE: &str = "/var/run/qemu-ga.pid";
pub const DEFAULT_STATEDIR: &str = "/var/run";
pub use crate::cli::DEFAULT_FSFREEZE_HOOK;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file given with `-c` cannot be read (qemu-ga 10.0's words; it
    /// prints them as a GLib critical message, see [`glib_critical`]).
    #[error("error loading configuration from path: {}, {reason}", path.display())]
    Required { path: PathBuf, reason: String },
    #[error("failed to read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: {reason}")]
    Syntax { path: PathBuf, line: usize, reason: String },
    #[error("unsupported channel method/type: {0}")]
    Method(String),
    #[error("must specify a path for this channel")]
    MissingPath,
}

/// How the agent talks to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    VirtioSerial,
    IsaSerial,
    UnixListen,
    VsockListen,
}

impl Method {
    pub fn parse(name: &str) -> Result<Method, ConfigError> {
        match name {
            "virtio-serial" => Ok(Method::VirtioSerial),
            "isa-serial" => Ok(Method::IsaSerial),
            "unix-listen" => Ok(Method::UnixListen),
            "vsock-listen" => Ok(Method::VsockListen),
            other => Err(ConfigError::Method(other.to_owned())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Method::VirtioSerial => "virtio-serial",
            Method::IsaSerial => "isa-serial",
            Method::UnixListen => "unix-listen",
            Method::VsockListen => "vsock-listen",
        }
    }

    fn default_path(self) -> Option<&'static str> {
        match self {
            Method::VirtioSerial => Some(DEFAULT_VIRTIO_PATH),
            Method::IsaSerial => Some(DEFAULT_ISA_PATH),
            Method::UnixListen | Method::VsockListen => None,
        }
    }
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub daemonize: bool,
    pub method: Method,
    pub path: String,
    pub logfile: Option<PathBuf>,
    pub pidfile: PathBuf,
    pub fsfreeze_hook: Option<PathBuf>,
    pub statedir: PathBuf,
    pub verbose: bool,
    pub retry_path: bool,
    /// In qemu-ga's list order (each comma list reversed, lists appended).
    pub block_rpcs: Vec<String>,
    pub allow_rpcs: Option<Vec<String>>,
    pub handlers_dir: Option<PathBuf>,
    /// `--policy FILE` / key `policy`: the operator's policy (TOML).
    pub policy: Option<PathBuf>,
    /// `--audit-log FILE` / key `audit-log`.
    pub audit_log: Option<PathBuf>,
    /// `--watch-handlers` / key `watch-handlers`.
    pub watch_handlers: bool,
}

/// Values found in the key file's `[general]` group.
#[derive(Debug, Default)]
struct KeyFile {
    daemon: Option<bool>,
    method: Option<String>,
    path: Option<String>,
    logfile: Option<PathBuf>,
    pidfile: Option<PathBuf>,
    fsfreeze_hook: Option<PathBuf>,
    statedir: Option<PathBuf>,
    verbose: Option<bool>,
    retry_path: Option<bool>,
    block_rpcs: Option<String>,
    allow_rpcs: Option<String>,
    handlers: Option<PathBuf>,
    policy: Option<PathBuf>,
    audit_log: Option<PathBuf>,
    watch_handlers: Option<bool>,
}

/// qemu-ga's `split_list`: the items of a comma list, last first.
fn split_list(list: &str) -> impl Iterator<Item = String> + '_ {
    list.split(',').filter(|s| !s.is_empty()).rev().map(str::to_owned)
}

fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

fn parse_key_file(path: &Path, text: &str) -> Result<KeyFile, ConfigError> {
    let mut keys = KeyFile::default();
    let mut in_general = false;
    for (index, raw) in text.lines().enumerate() {
        let syntax = |reason: String| ConfigError::Syntax {
            path: path.to_owned(),
            line: index + 1,
            reason,
        };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(group) = line.strip_prefix('[') {
            let group = group
                .strip_suffix(']')
                .ok_or_else(|| syntax("unterminated group name".into()))?;
            in_general = group == "general";
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| {
            syntax(format!(
                "key file contains line '{line}' which is not a key-value pair, group, or comment"
            ))
        })?;
        if !in_general {
            continue;
        }
        let (key, value) = (key.trim(), value.trim());
        let boolean =
            || parse_bool(value).ok_or_else(|| syntax(format!("value '{value}' of key '{key}' is not a boolean")));
        match key {
            "daemon" | "daemonize" => keys.daemon = Some(boolean()?),
            "method" => keys.method = Some(value.into()),
            "path" => keys.path = Some(value.into()),
            "logfile" => keys.logfile = Some(value.into()),
            "pidfile" => keys.pidfile = Some(value.into()),
            "fsfreeze-hook" => keys.fsfreeze_hook = Some(value.into()),
            "statedir" => keys.statedir = Some(value.into()),
            "verbose" => keys.verbose = Some(boolean()?),
            "retry-path" => keys.retry_path = Some(boolean()?),
            "block-rpcs" | "blacklist" => keys.block_rpcs = Some(value.into()),
            "allow-rpcs" => keys.allow_rpcs = Some(value.into()),
            "handlers" => keys.handlers = Some(value.into()),
            "policy" => keys.policy = Some(value.into()),
            "audit-log" => keys.audit_log = Some(value.into()),
            "watch-handlers" => keys.watch_handlers = Some(boolean()?),
            _ => {}
        }
    }
    Ok(keys)
}

impl Config {
    /// Build the effective configuration: defaults, then the key file named
    /// by `config_file` (if it exists; the one `-c` names must), then the
    /// command line.
    pub fn load(cli: &Cli, config_file: &Path) -> Result<Config, ConfigError> {
        let keys = match std::fs::read_to_string(config_file) {
            Ok(text) => parse_key_file(config_file, &text)?,
            Err(source) if cli.config.is_some() => {
                // GLib's g_key_file_load_from_file words a directory so.
                let reason = match source.raw_os_error() {
                    Some(libc::EISDIR) => "Not a regular file".to_owned(),
                    _ => crate::errno_text::io_strerror(&source),
                };
                return Err(ConfigError::Required {
                    path: config_file.to_owned(),
                    reason,
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => KeyFile::default(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: config_file.to_owned(),
                    source,
                });
            }
        };
        let method_name = cli
            .method
            .clone()
            .or(keys.method)
            .unwrap_or_else(|| "virtio-serial".into());
        let method = Method::parse(&method_name)?;
        let path = cli
            .path
            .clone()
            .or(keys.path)
            .or_else(|| method.default_path().map(str::to_owned))
            .ok_or(ConfigError::MissingPath)?;
        let mut block_rpcs: Vec<String> = keys
            .block_rpcs
            .as_deref()
            .map(|l| split_list(l).collect())
            .unwrap_or_default();
        for list in &cli.block_rpcs {
            block_rpcs.extend(split_list(list));
        }
        let mut allow_rpcs: Option<Vec<String>> = keys.allow_rpcs.as_deref().map(|l| split_list(l).collect());
        for list in &cli.allow_rpcs {
            allow_rpcs.get_or_insert_with(Vec::new).extend(split_list(list));
        }
        Ok(Config {
            daemonize: cli.daemonize || keys.daemon.unwrap_or(false),
            method,
            path,
            logfile: cli.logfile.clone().or(keys.logfile),
            pidfile: cli
                .pidfile
                .clone()
                .or(keys.pidfile)
                .unwrap_or_else(|| DEFAULT_PIDFILE.into()),
            fsfreeze_hook: cli.fsfreeze_hook.clone().or(keys.fsfreeze_hook),
            statedir: cli
                .statedir
                .clone()
                .or(keys.statedir)
                .unwrap_or_else(|| DEFAULT_STATEDIR.into()),
            verbose: cli.verbose || keys.verbose.unwrap_or(false),
            retry_path: cli.retry_path || keys.retry_path.unwrap_or(false),
            block_rpcs,
            allow_rpcs,
            handlers_dir: cli.handlers.clone().or(keys.handlers),
            policy: cli.policy.clone().or(keys.policy),
            audit_log: cli.audit_log.clone().or(keys.audit_log),
            watch_handlers: cli.watch_handlers || keys.watch_handlers.unwrap_or(false),
        })
    }

    /// The `-D` output: qemu-ga's key file, then qga's own keys if set.
    pub fn dump(&self) -> String {
        let mut out = String::from("[general]\n");
        let mut key = |k: &str, v: &str| {
            out.push_str(k);
            out.push('=');
            out.push_str(v);
            out.push('\n');
        };
        key("daemon", &self.daemonize.to_string());
        key("method", self.method.name());
        key("path", &self.path);
        if let Some(logfile) = &self.logfile {
            key("logfile", &logfile.to_string_lossy());
        }
        key("pidfile", &self.pidfile.to_string_lossy());
        if let Some(hook) = &self.fsfreeze_hook {
            key("fsfreeze-hook", &hook.to_string_lossy());
        }
        key("statedir", &self.statedir.to_string_lossy());
        key("verbose", &self.verbose.to_string());
        key("retry-path", &self.retry_path.to_string());
        key("block-rpcs", &self.block_rpcs.join(","));
        // qemu-ga 10.0 prints the line even when empty.
        key("allow-rpcs", &self.allow_rpcs.as_deref().unwrap_or_default().join(","));
        if let Some(dir) = &self.handlers_dir {
            key("handlers", &dir.to_string_lossy());
        }
        if let Some(policy) = &self.policy {
            key("policy", &policy.to_string_lossy());
        }
        if let Some(audit) = &self.audit_log {
            key("audit-log", &audit.to_string_lossy());
        }
        if self.watch_handlers {
            key("watch-handlers", "true");
        }
        out
    }
}

/// The key file to read: `-c FILE`, else `$QGA_CONF`, else the default.
pub fn config_file(cli: &Cli, qga_conf: Option<std::ffi::OsString>) -> PathBuf {
    match (&cli.config, qga_conf) {
        (Some(path), _) => path.clone(),
        (None, Some(env)) => PathBuf::from(env),
        (None, None) => PathBuf::from(DEFAULT_CONFIG_FILE),
    }
}

/// A message as GLib's g_critical prints it to stderr when no program name
/// is set (qemu-ga's configuration errors): a newline, then `** (process:PID):
/// CRITICAL **: HH:MM:SS.mmm: MESSAGE`, the time local, `now_ns` and
/// `offset_seconds` east of UTC.
pub fn glib_critical(pid: u32, now_ns: i64, offset_seconds: i32, message: &str) -> String {
    let local_ms = now_ns.div_euclid(1_000_000) + i64::from(offset_seconds) * 1000;
    let ms_of_day = local_ms.rem_euclid(86_400_000);
    format!(
        "\n** (process:{pid}): CRITICAL **: {:02}:{:02}:{:02}.{:03}: {message}",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn load(args: &[&str], file: &str) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!("qga-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.conf", args.len()));
        std::fs::write(&path, file).unwrap();
        let cli = Cli::parse_from(crate::cli::normalize_args(
            std::iter::once("qga".to_string()).chain(args.iter().map(|s| s.to_string())),
        ));
        Config::load(&cli, &path)
    }

    #[test]
    fn dump_matches_qemu_ga_defaults() {
        let config = load(&[], "").unwrap();
        assert_eq!(
            config.dump(),
            "[general]\ndaemon=false\nmethod=virtio-serial\npath=/dev/virtio-ports/org.qemu.guest_agent.0\npidfile=/var/run/qemu-ga.pid\nstatedir=/var/run\nverbose=false\nretry-path=false\nblock-rpcs=\nallow-rpcs=\n"
        );
    }

    #[test]
    fn a_config_file_named_with_c_must_exist_the_default_need_not() {
        let cli = |args: &[&str]| {
            Cli::parse_from(crate::cli::normalize_args(
                std::iter::once("qga".to_string()).chain(args.iter().map(|s| s.to_string())),
            ))
        };
        let missing = Path::new("/nonexistent/qga-test.conf");
        let err = Config::load(&cli(&["-c", "/nonexistent/qga-test.conf"]), missing).unwrap_err();
        assert_eq!(
            err.to_string(),
            "error loading configuration from path: /nonexistent/qga-test.conf, No such file or directory"
        );
        assert!(Config::load(&cli(&[]), missing).is_ok());
        let err = Config::load(&cli(&["-c", "/"]), Path::new("/")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "error loading configuration from path: /, Not a regular file"
        );
        let env = Some(std::ffi::OsString::from("/env.conf"));
        assert_eq!(
            config_file(&cli(&["--config", "/c.conf"]), env.clone()),
            Path::new("/c.conf")
        );
        assert_eq!(config_file(&cli(&[]), env), Path::new("/env.conf"));
        assert_eq!(config_file(&cli(&[]), None), Path::new(DEFAULT_CONFIG_FILE));
    }

    #[test]
    fn glib_critical_format() {
        // 2026-12-06 08:04:00.613 UTC, one hour east
        let ns = 1_796_544_240_613_000_000;
        assert_eq!(
            glib_critical(42, ns, 3600, "boom"),
            "\n** (process:42): CRITICAL **: 09:04:00.613: boom"
        );
    }

    #[test]
    fn block_lists_join_in_qemu_ga_order() {
        let config = load(
            &["-D", "-b", "guest-sync"],
            "[general]\nmethod=unix-listen\npath=/tmp/y.sock\nblock-rpcs=guest-ping,guest-info\nverbose=1\n",
        )
        .unwrap();
        assert_eq!(config.block_rpcs, ["guest-info", "guest-ping", "guest-sync"]);
        assert!(config.verbose);
        let config = load(&["-b", "a", "-b", "b,c", "-F", "-d"], "").unwrap();
        assert_eq!(config.block_rpcs.join(","), "a,c,b");
        assert_eq!(config.fsfreeze_hook.as_deref(), Some(Path::new(DEFAULT_FSFREEZE_HOOK)));
        let config = load(&["-F/x/hook"], "").unwrap();
        assert_eq!(config.fsfreeze_hook.as_deref(), Some(Path::new("/x/hook")));
    }

    #[test]
    fn bad_method_and_missing_path_are_refused() {
        assert!(matches!(load(&["-m", "bogus"], ""), Err(ConfigError::Method(m)) if m == "bogus"));
        assert!(matches!(
            load(&["-m", "unix-listen"], ""),
            Err(ConfigError::MissingPath)
        ));
        assert!(matches!(
            load(&[], "[general]\nverbose=maybe\n"),
            Err(ConfigError::Syntax { line: 2, .. })
        ));
    }
}
