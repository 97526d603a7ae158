//! The seccomp allowlist: the compiled program decides as the list says
//! (checked by interpreting it), and installed in a forked child after the
//! privilege drop, forbidden syscalls fail with EPERM while the process
//! carries on.

mod support;

use std::collections::HashSet;
use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;

use qga_privsep::privilege;
use qga_privsep::seccomp::{self, allowlist};
use qga_privsep::status::ProcessStatus;
use support::{ensure, errno_of, in_child, sys};

const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const RET_EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
#[cfg(target_arch = "x86_64")]
const ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const ARCH: u32 = 0xc000_00b7;

/// Runs the classic-BPF subset the compiler emits over a seccomp_data.
fn run(program: &[libc::sock_filter], nr: i64, arch: u32, arg0: u64) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&(nr as u32).to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    data[16..24].copy_from_slice(&arg0.to_le_bytes());
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let insn = program[pc];
        let code = u32::from(insn.code);
        pc += 1;
        match code {
            c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                let at = insn.k as usize;
                acc = u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
            }
            c if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => {
                pc += usize::from(if acc == insn.k { insn.jt } else { insn.jf });
            }
            c if c == libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K => {
                pc += usize::from(if acc >= insn.k { insn.jt } else { insn.jf });
            }
            c if c == libc::BPF_RET | libc::BPF_K => return insn.k,
            other => panic!("unexpected BPF opcode {other:#x} at {}", pc - 1),
        }
        assert!(pc < program.len(), "jump past the end");
    }
}

#[test]
fn the_compiled_program_decides_as_the_list_says() {
    let program = seccomp::compile(allowlist()).unwrap();
    for entry in allowlist() {
        match entry.arg0_in {
            [] => assert_eq!(run(&program, entry.nr, ARCH, 0), RET_ALLOW, "{}", entry.name()),
            values => {
                for &value in values {
                    assert_eq!(
                        run(&program, entry.nr, ARCH, u64::from(value)),
                        RET_ALLOW,
                        "{}({value})",
                        entry.name()
                    );
                }
                assert_eq!(
                    run(&program, entry.nr, ARCH, 0xdead),
                    RET_EPERM,
                    "{}(other)",
                    entry.name()
                );
            }
        }
        assert_eq!(
            run(&program, entry.nr, ARCH ^ 1, 0),
            RET_EPERM,
            "{} on another arch",
            entry.name()
        );
    }
    let forbidden = [
        libc::SYS_execve,
        libc::SYS_execveat,
        libc::SYS_ptrace,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_setuid,
        libc::SYS_capset,
        libc::SYS_bpf,
        libc::SYS_kill,
        libc::SYS_clock_settime,
        libc::SYS_reboot,
        libc::SYS_init_module,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_bind,
        libc::SYS_connect,
        libc::SYS_io_uring_setup,
        libc::SYS_process_vm_writev,
    ];
    for nr in forbidden {
        assert_eq!(run(&program, nr, ARCH, 0), RET_EPERM, "syscall {nr}");
    }
    assert_eq!(run(&program, libc::SYS_socket, ARCH, libc::AF_INET as u64), RET_EPERM);
    assert_eq!(run(&program, libc::SYS_socket, ARCH, libc::AF_VSOCK as u64), RET_EPERM);
    assert_eq!(run(&program, libc::SYS_socket, ARCH, libc::AF_UNIX as u64), RET_ALLOW);
    assert_eq!(
        run(&program, libc::SYS_prctl, ARCH, libc::PR_SET_NO_NEW_PRIVS as u64),
        RET_EPERM
    );
    assert_eq!(
        run(&program, libc::SYS_prctl, ARCH, libc::PR_SET_NAME as u64),
        RET_ALLOW
    );
    #[cfg(target_arch = "x86_64")]
    assert_eq!(
        run(&program, 0x4000_0000 | libc::SYS_read, ARCH, 0),
        RET_EPERM,
        "x32 ABI"
    );
}

#[test]
fn the_list_is_documented_and_has_no_duplicates() {
    let mut seen = HashSet::new();
    for entry in allowlist() {
        assert!(seen.insert(entry.nr), "{} listed twice", entry.name());
        assert!(!entry.why.trim().is_empty(), "{} has no reason", entry.name());
    }
    eprintln!(
        "allowlist: {} syscalls, {} BPF instructions",
        seen.len(),
        seccomp::compile(allowlist()).unwrap().len()
    );
}

#[test]
fn under_the_filter_forbidden_syscalls_fail_and_allowed_ones_work() {
    let dir = support::temp_dir("seccomp");
    in_child(|| {
        let (mut near, mut far) = UnixStream::pair().map_err(|e| e.to_string())?;
        let user = privilege::resolve_agent_user().map_err(|e| e.to_string())?;
        privilege::drop_all(&user).map_err(|e| e.to_string())?;
        let installed = seccomp::install().map_err(|e| e.to_string())?;
        ensure(installed.syscalls == allowlist().count(), || format!("{installed:?}"))?;

        let status = fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
        for line in ["Seccomp:\t2", "NoNewPrivs:\t1", "CapEff:\t0000000000000000"] {
            ensure(status.contains(line), || format!("{line:?} missing from\n{status}"))?;
        }
        // Forbidden: each fails with EPERM and the process lives on.
        let e = errno_of(TcpStream::connect("127.0.0.1:9"))?;
        ensure(e == libc::EPERM, || format!("TcpStream::connect: errno {e}"))?;
        let e = errno_of(sys::socket_inet())?;
        ensure(e == libc::EPERM, || format!("socket(AF_INET): errno {e}"))?;
        let e = errno_of(sys::ptrace_traceme())?;
        ensure(e == libc::EPERM, || format!("ptrace: errno {e}"))?;
        let e = sys::execve(c"/bin/false").raw_os_error().unwrap_or(0);
        ensure(e == libc::EPERM, || format!("execve: errno {e}"))?;
        let e = errno_of(std::process::Command::new("/bin/false").status())?;
        ensure(e == libc::EPERM, || format!("Command::status: errno {e}"))?;
        let target = CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
        let e = errno_of(sys::mount_tmpfs(&target))?;
        ensure(e == libc::EPERM, || format!("mount: errno {e}"))?;
        // Allowed by seccomp, refused by the uid drop.
        let e = errno_of(fs::File::open("/etc/shadow"))?;
        ensure(e == libc::EACCES, || format!("/etc/shadow: errno {e}"))?;
        // Allowed: files in a writable dir, unix sockets, threads, time.
        let file = dir.join("state");
        fs::write(&file, b"1001").map_err(|e| format!("write: {e}"))?;
        ensure(fs::read(&file).map_err(|e| e.to_string())? == b"1001", || {
            "read back".into()
        })?;
        sys::socket_unix().map_err(|e| format!("socket(AF_UNIX): {e}"))?;
        near.write_all(b"ping").map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        far.read_exact(&mut buf).map_err(|e| e.to_string())?;
        let worker = std::thread::spawn(|| ProcessStatus::of_self().map(|s| s.seccomp));
        let seen = worker
            .join()
            .map_err(|_| "thread panicked".to_string())?
            .map_err(|e| e.to_string())?;
        ensure(seen == 2, || format!("a new thread shows Seccomp: {seen}"))?;
        let before = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(1));
        ensure(before.elapsed().as_nanos() > 0, || "clock".into())
    })
    .unwrap();
}

#[test]
fn the_docs_list_every_allowed_syscall_and_why() {
    let doc = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/privsep.md")).unwrap();
    for entry in allowlist() {
        let row = format!("| `{}` | {}", entry.name(), entry.why);
        assert!(doc.contains(&row), "docs/privsep.md lacks the row for {}", entry.name());
    }
}
