//! The socket syscalls of the broker channel.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;

/// What one `recvmsg` returned. Every fd the kernel installed is in `fds`,
/// owned, so dropping a rejected message closes them all.
pub struct Received {
    pub len: usize,
    pub fds: Vec<OwnedFd>,
    pub data_truncated: bool,
    pub control_truncated: bool,
    pub foreign_control: bool,
}

pub fn socketpair_seqpacket() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as RawFd; 2];
    // SAFETY: `fds` is a valid array of two ints for the kernel to fill.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success both fds are fresh and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `(SO_DOMAIN, SO_TYPE)` of a socket.
pub fn socket_kind(fd: BorrowedFd<'_>) -> io::Result<(i32, i32)> {
    let get = |option| {
        let mut value: libc::c_int = 0;
        let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` and `len` are valid for writes of an int and its size.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&raw mut value).cast(),
                &raw mut len,
            )
        };
        if rc == 0 {
            Ok(value)
        } else {
            Err(io::Error::last_os_error())
        }
    };
    Ok((get(libc::SO_DOMAIN)?, get(libc::SO_TYPE)?))
}

fn control_space(max_fds: usize) -> usize {
    // SAFETY: CMSG_SPACE only computes a size.
    unsafe { libc::CMSG_SPACE((max_fds * mem::size_of::<RawFd>()) as u32) as usize }
}

/// Sends one datagram with `fds` attached (none: no control message).
pub fn send(fd: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let mut control = vec![0u8; if raw.is_empty() { 0 } else { control_space(raw.len()) }];
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    if !raw.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = control.len() as _;
        let data_len = raw.len() * mem::size_of::<RawFd>();
        // SAFETY: the control buffer is CMSG_SPACE(data_len) bytes, so the
        // first header and its data fit; CMSG_DATA points inside it.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(data_len as u32) as _;
            ptr::copy_nonoverlapping(raw.as_ptr().cast::<u8>(), libc::CMSG_DATA(cmsg), data_len);
        }
    }
    loop {
        // SAFETY: `msg` points at live buffers (`iov`, `bytes`, `control`).
        let rc = unsafe { libc::sendmsg(fd.as_raw_fd(), &raw const msg, libc::MSG_NOSIGNAL) };
        if rc >= 0 {
            return Ok(rc as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Receives one datagram into `buf`, with room for `max_fds` fds; received
/// fds are close-on-exec from the start (`MSG_CMSG_CLOEXEC`).
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8], max_fds: usize) -> io::Result<Received> {
    let mut control = vec![0u8; control_space(max_fds)];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len() as _;
    let len = loop {
        // SAFETY: `msg` points at live, writable buffers of the sizes given.
        let rc = unsafe { libc::recvmsg(fd.as_raw_fd(), &raw mut msg, libc::MSG_CMSG_CLOEXEC) };
        if rc >= 0 {
            break rc as usize;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    };
    let mut received = Received {
        len,
        fds: Vec::new(),
        data_truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        control_truncated: msg.msg_flags & libc::MSG_CTRUNC != 0,
        foreign_control: false,
    };
    // SAFETY: the kernel filled `control` up to `msg_controllen`; the CMSG_*
    // macros walk only within it, and each SCM_RIGHTS payload holds
    // (cmsg_len - CMSG_LEN(0)) / 4 fds that are now ours.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data_len = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(cmsg);
                for i in 0..data_len / mem::size_of::<RawFd>() {
                    let raw = ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    received.fds.push(OwnedFd::from_raw_fd(raw));
                }
            } else {
                received.foreign_control = true;
            }
            cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
        }
    }
    Ok(received)
}

/// Whether the peer has closed its end (`POLLHUP`), without waiting: tells
/// EOF from a zero-length datagram, which `recvmsg` also reports as 0.
pub fn peer_closed(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut pollfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN | libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    let rc = unsafe { libc::poll(&raw mut pollfd, 1, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pollfd.revents & libc::POLLHUP != 0)
}
