//! Compiles the allowlist to a classic BPF seccomp program:
//!
//! ```text
//!     ld  arch            ; wrong architecture -> EPERM
//!     jeq AUDIT_ARCH, 1, 0
//!     ret ERRNO(EPERM)
//!     ld  nr
//!     jge X32_BIT, 0, 1   ; x86_64 only: x32 numbers -> EPERM
//!     ret ERRNO(EPERM)
//!     jeq nr_1, 0, 1      ; one pair per plain entry
//!     ret ALLOW
//!     jeq nr_k, 0, n+3    ; an entry with allowed first-argument values
//!     ld  args[0] (low 32 bits)
//!     jeq v_1, n, 0 ...   ; any match -> ALLOW
//!     ret ERRNO(EPERM)
//!     ret ALLOW
//!     ...
//!     ret ERRNO(EPERM)    ; everything else
//! ```

use super::allowlist::Allowed;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BpfError {
    #[error("seccomp program of {0} instructions exceeds BPF_MAXINSNS")]
    TooLong(usize),
    #[error("syscall {0} allows too many first-argument values for one BPF jump")]
    TooManyValues(&'static str),
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("the seccomp allowlist is written for x86_64 and aarch64 only");
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

#[cfg(not(target_endian = "little"))]
compile_error!("the seccomp program reads args[0]'s low half at offset 16: little-endian only");

const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
const OFFSET_ARG0_LOW: u32 = 16;

const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const RET_EPERM: u32 = libc::SECCOMP_RET_ERRNO | (libc::EPERM as u32 & libc::SECCOMP_RET_DATA);

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

fn load(offset: u32) -> libc::sock_filter {
    stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, offset)
}

fn jeq(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, k, jt, jf)
}

fn ret(value: u32) -> libc::sock_filter {
    stmt(libc::BPF_RET | libc::BPF_K, value)
}

/// The filter program for `allowed`.
pub fn compile<'a>(allowed: impl IntoIterator<Item = &'a Allowed>) -> Result<Vec<libc::sock_filter>, BpfError> {
    let mut program = vec![
        load(OFFSET_ARCH),
        jeq(AUDIT_ARCH, 1, 0),
        ret(RET_EPERM),
        load(OFFSET_NR),
    ];
    #[cfg(target_arch = "x86_64")]
    program.extend([
        jump(libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K, X32_SYSCALL_BIT, 0, 1),
        ret(RET_EPERM),
    ]);
    for entry in allowed {
        let nr = entry.nr as u32;
        if entry.arg0_in.is_empty() {
            program.extend([jeq(nr, 0, 1), ret(RET_ALLOW)]);
            continue;
        }
        let n = entry.arg0_in.len();
        let skip = u8::try_from(n + 3).map_err(|_| BpfError::TooManyValues(entry.sys))?;
        program.extend([jeq(nr, 0, skip), load(OFFSET_ARG0_LOW)]);
        for (i, value) in entry.arg0_in.iter().enumerate() {
            program.push(jeq(*value, (n - i) as u8, 0));
        }
        program.extend([ret(RET_EPERM), ret(RET_ALLOW)]);
    }
    program.push(ret(RET_EPERM));
    if program.len() > libc::BPF_MAXINSNS as usize {
        return Err(BpfError::TooLong(program.len()));
    }
    Ok(program)
}
