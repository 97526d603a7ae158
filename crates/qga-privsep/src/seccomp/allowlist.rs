//! The main process's syscall allowlist, as data: each entry says why the
//! process needs it. Anything else returns `EPERM`.
//!
//! Deliberately absent (each is the broker's job, or nobody's): `execve`,
//! `execveat`, `ptrace`, `process_vm_*`, `mount` and the new mount API,
//! `umount2`, `pivot_root`, `chroot`, `setns`, `unshare`, `bpf`, `perf_event_open`,
//! `init_module`, `kexec_*`, `reboot`, `swapon`, `settimeofday`, `clock_settime`,
//! `adjtimex`, `sethostname`, `setuid` and friends, `capset`, `keyctl`,
//! `add_key`, `userfaultfd`, `io_uring_*`, `kill` (the main process signals
//! nobody), `bind`, `listen`, `connect` to the network (no `socket` outside
//! `AF_UNIX`), `chmod`/`chown` families, `mknod`, `symlink`, `link`.

/// One allowed syscall.
#[derive(Debug, Clone, Copy)]
pub struct Allowed {
    /// The libc constant's name, `SYS_read`.
    pub sys: &'static str,
    pub nr: libc::c_long,
    /// Only these values of the first argument (its low 32 bits), if not
    /// empty: `socket(AF_UNIX)`, `prctl(PR_SET_NAME)`.
    pub arg0_in: &'static [u32],
    pub why: &'static str,
}

macro_rules! allow {
    ($sys:ident, $why:literal) => {
        Allowed { sys: stringify!($sys), nr: libc::$sys, arg0_in: &[], why: $why }
    };
    ($sys:ident [$($arg:expr),+], $why:literal) => {
        Allowed { sys: stringify!($sys), nr: libc::$sys, arg0_in: &[$($arg as u32),+], why: $why }
    };
}

impl Allowed {
    /// The syscall's name, `read`.
    pub fn name(&self) -> &'static str {
        self.sys.trim_start_matches("SYS_")
    }
}

/// Syscalls every architecture has.
pub const COMMON: &[Allowed] = &[
    // Data on fds the process holds: the channel, the broker socket, files
    // and pipes the broker passed back, the state directory.
    allow!(SYS_read, "reading the channel, broker-passed files and pipes"),
    allow!(SYS_write, "writing replies, files, pipes, logs"),
    allow!(SYS_readv, "vectored reads (std, tokio)"),
    allow!(SYS_writev, "vectored writes (std, tokio, logs)"),
    allow!(SYS_pread64, "guest-file-read on a broker-passed file at an offset"),
    allow!(SYS_pwrite64, "guest-file-write at an offset"),
    allow!(SYS_preadv, "positioned vectored reads (std)"),
    allow!(SYS_pwritev, "positioned vectored writes (std)"),
    allow!(SYS_lseek, "guest-file-seek"),
    allow!(SYS_close, "closing fds"),
    allow!(SYS_close_range, "closing inherited fds"),
    allow!(SYS_dup, "duplicating fds (std)"),
    allow!(SYS_dup3, "duplicating fds (std)"),
    allow!(SYS_fcntl, "O_NONBLOCK/FD_CLOEXEC on fds (tokio, std)"),
    allow!(SYS_ioctl, "FIONBIO (mio) and termios on an isa-serial channel"),
    allow!(SYS_pipe2, "tokio's signal self-pipe"),
    allow!(SYS_fstat, "metadata of held fds"),
    allow!(SYS_newfstatat, "metadata (std's stat on held fds and the state dir)"),
    allow!(SYS_statx, "metadata (std's stat)"),
    allow!(SYS_fstatfs, "filesystem type of held fds"),
    allow!(SYS_fsync, "persisting the state file"),
    allow!(SYS_fdatasync, "guest-file-flush"),
    allow!(SYS_ftruncate, "rewriting the state file"),
    // Paths: only under Landlock's rules (state dir, read-only /proc, /sys).
    allow!(
        SYS_openat,
        "the state dir and read-only /proc, /sys files (Landlock narrows)"
    ),
    allow!(SYS_openat2, "resolving beneath the state dir (RESOLVE_BENEATH)"),
    allow!(SYS_getdents64, "listing /proc, /sys directories (WASI preopens)"),
    allow!(SYS_mkdirat, "creating the state dir's entries"),
    allow!(SYS_unlinkat, "removing the state file's temporary"),
    allow!(SYS_renameat2, "replacing the state file atomically"),
    allow!(SYS_readlinkat, "reading /proc links (WASI preopens)"),
    allow!(SYS_faccessat2, "access checks (std)"),
    allow!(SYS_getcwd, "std's current directory"),
    // Memory: allocator and wasmtime.
    allow!(SYS_mmap, "allocator; wasmtime linear memories, code, guard regions"),
    allow!(SYS_munmap, "allocator; wasmtime"),
    allow!(
        SYS_mprotect,
        "wasmtime: making code executable, guard pages; thread stacks"
    ),
    allow!(SYS_madvise, "wasmtime's pooling allocator decommits with MADV_DONTNEED"),
    allow!(SYS_mremap, "allocator realloc of large blocks"),
    allow!(SYS_brk, "allocator"),
    allow!(SYS_memfd_create, "wasmtime's copy-on-write memory images"),
    // Threads and synchronisation: tokio's workers, wasmtime's epoch thread.
    allow!(SYS_clone, "thread creation (glibc fallback)"),
    allow!(
        SYS_clone3,
        "thread creation (glibc's pthread_create; EPERM here would not fall back)"
    ),
    allow!(SYS_futex, "locks, condition variables, thread joins"),
    allow!(SYS_set_robust_list, "glibc thread start"),
    allow!(SYS_rseq, "glibc thread start"),
    allow!(SYS_set_tid_address, "glibc thread start"),
    allow!(SYS_sched_yield, "spin-lock back-off (tokio, crossbeam)"),
    allow!(
        SYS_sched_getaffinity,
        "std::thread::available_parallelism (tokio's worker count)"
    ),
    allow!(SYS_gettid, "thread ids (logging, tgkill)"),
    allow!(SYS_getpid, "own pid (logging, pid file)"),
    allow!(SYS_getppid, "noticing a reparent"),
    allow!(
        SYS_tgkill,
        "signalling its own threads (abort, wasmtime's trap handling)"
    ),
    allow!(SYS_exit, "thread exit"),
    allow!(SYS_exit_group, "process exit"),
    allow!(SYS_prctl[libc::PR_SET_NAME, libc::PR_GET_NAME], "naming threads; nothing else of prctl"),
    allow!(SYS_nanosleep, "sleeps (std)"),
    allow!(SYS_clock_nanosleep, "sleeps (std, tokio timers)"),
    // Signals: SIGTERM/SIGHUP handling, wasmtime's trap handlers.
    allow!(SYS_rt_sigaction, "installing handlers (tokio signal, wasmtime traps)"),
    allow!(SYS_rt_sigprocmask, "masking signals (glibc, threads)"),
    allow!(SYS_rt_sigreturn, "returning from a signal handler"),
    allow!(SYS_sigaltstack, "wasmtime and std install alternate signal stacks"),
    allow!(SYS_restart_syscall, "restarting an interrupted syscall"),
    // Event loop.
    allow!(SYS_epoll_create1, "tokio/mio"),
    allow!(SYS_epoll_ctl, "tokio/mio"),
    allow!(SYS_epoll_pwait, "tokio/mio"),
    allow!(SYS_epoll_pwait2, "tokio/mio"),
    allow!(SYS_eventfd2, "mio's waker"),
    allow!(SYS_ppoll, "poll (glibc)"),
    // Time.
    allow!(SYS_clock_gettime, "timestamps (vDSO fallback), epochs, deadlines"),
    allow!(SYS_clock_getres, "clock resolution (std)"),
    allow!(SYS_gettimeofday, "timestamps (vDSO fallback)"),
    // Sockets: only unix ones, the broker channel and the listening sockets
    // opened before the drop.
    allow!(
        SYS_socket[libc::AF_UNIX],
        "unix sockets only (journald, syslog); no network"
    ),
    allow!(SYS_socketpair[libc::AF_UNIX], "mio's signal pipe, unix pairs"),
    allow!(SYS_sendmsg, "the broker channel (SCM_RIGHTS)"),
    allow!(SYS_recvmsg, "the broker channel (SCM_RIGHTS)"),
    allow!(SYS_sendto, "replies on unix-listen and vsock-listen connections"),
    allow!(SYS_recvfrom, "requests on unix-listen and vsock-listen connections"),
    allow!(SYS_accept4, "unix-listen and vsock-listen clients"),
    allow!(SYS_shutdown, "closing client connections"),
    allow!(SYS_getsockopt, "socket state (SO_ERROR, SO_PEERCRED)"),
    allow!(SYS_setsockopt, "client socket options"),
    allow!(SYS_getsockname, "socket addresses (logging)"),
    allow!(SYS_getpeername, "peer addresses (logging, audit)"),
    // Miscellaneous reads.
    allow!(SYS_getrandom, "hash seeds, wasmtime"),
    allow!(SYS_uname, "guest-info, host-name, osinfo"),
    allow!(SYS_getuid, "own identity"),
    allow!(SYS_geteuid, "own identity"),
    allow!(SYS_getgid, "own identity"),
    allow!(SYS_getegid, "own identity"),
    allow!(SYS_getresuid, "own identity"),
    allow!(SYS_getresgid, "own identity"),
    allow!(SYS_prlimit64, "std reads the stack limit"),
    allow!(SYS_sysinfo, "uptime and load (host_info)"),
    allow!(SYS_wait4, "reaping the broker, its own child"),
    allow!(SYS_waitid, "reaping the broker, its own child"),
];

/// The pre-`*at` syscalls x86_64 glibc and std still use.
#[cfg(target_arch = "x86_64")]
pub const LEGACY: &[Allowed] = &[
    allow!(SYS_poll, "poll (glibc on x86_64)"),
    allow!(SYS_epoll_wait, "mio (glibc's epoll_wait on x86_64)"),
    allow!(SYS_dup2, "std"),
    allow!(SYS_pipe, "std"),
    allow!(SYS_access, "std"),
    allow!(SYS_readlink, "std"),
    allow!(SYS_arch_prctl, "thread-local storage set-up (glibc)"),
];

#[cfg(not(target_arch = "x86_64"))]
pub const LEGACY: &[Allowed] = &[];

/// The whole list.
pub fn allowlist() -> impl Iterator<Item = &'static Allowed> {
    COMMON.iter().chain(LEGACY)
}
