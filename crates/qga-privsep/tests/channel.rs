//! The broker channel: real fds cross it, and every malformed message is
//! refused with all of its fds closed (the channel stays usable).

use std::fs;
use std::io::{ErrorKind, Read, Seek, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use qga_privsep::channel::{self, Channel, ChannelError, MainEnd};
use qga_privsep::wire::{Message, Reply, Request, SpawnedStdio};

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("qga-privsep-channel-{}-{name}", std::process::id()))
}

/// Whether fd `fd` of this process is close-on-exec (from /proc/self/fdinfo).
fn is_cloexec(fd: BorrowedFd<'_>) -> bool {
    let info = fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
    let flags = info.lines().find_map(|l| l.strip_prefix("flags:")).unwrap().trim();
    u32::from_str_radix(flags, 8).unwrap() & libc::O_CLOEXEC as u32 != 0
}

/// A socket pair whose second end reports EOF only once every copy of the
/// first is closed: the probe for "the receiver closed the fds it refused".
fn probe_pair() -> (UnixStream, UnixStream) {
    let (sent, watcher) = UnixStream::pair().unwrap();
    watcher.set_nonblocking(true).unwrap();
    (sent, watcher)
}

fn assert_all_copies_closed(mut watcher: UnixStream) {
    let mut byte = [0u8; 1];
    match watcher.read(&mut byte) {
        Ok(0) => {}
        Ok(n) => panic!("unexpected {n} bytes"),
        Err(e) if e.kind() == ErrorKind::WouldBlock => panic!("a refused fd is still open in the receiver"),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_real_file_crosses_the_channel() {
    let (main, broker) = channel::pair().unwrap();
    let path = temp_path("file");
    fs::write(&path, b"hello from the broker").unwrap();
    let file = fs::File::open(&path).unwrap();
    broker.send(&Reply::Opened, &[file.as_fd()]).unwrap();
    drop(file);
    fs::remove_file(&path).unwrap();

    let received = main.recv().unwrap();
    assert_eq!(received.message, Reply::Opened);
    let [fd]: [OwnedFd; 1] = received.fds.try_into().unwrap();
    assert!(
        is_cloexec(fd.as_fd()),
        "received fds must be close-on-exec (MSG_CMSG_CLOEXEC)"
    );
    let mut file = fs::File::from(fd);
    let mut text = String::new();
    file.read_to_string(&mut text).unwrap();
    assert_eq!(text, "hello from the broker");
    // The same open file description: the offset moved for both.
    assert_eq!(file.stream_position().unwrap(), 21);
}

#[test]
fn pipes_cross_the_channel_in_order() {
    let (main, broker) = channel::pair().unwrap();
    let (stdin_reader, stdin_writer) = std::io::pipe().unwrap();
    let (stdout_reader, mut stdout_writer) = std::io::pipe().unwrap();
    let stdio = SpawnedStdio {
        stdin: true,
        stdout: true,
        stderr: false,
    };
    broker
        .send(
            &Reply::Spawned { pid: 77, stdio },
            &[stdin_writer.as_fd(), stdout_reader.as_fd()],
        )
        .unwrap();
    drop((stdin_writer, stdout_reader));

    let received = main.recv().unwrap();
    assert_eq!(received.message, Reply::Spawned { pid: 77, stdio });
    let [stdin, stdout]: [OwnedFd; 2] = received.fds.try_into().unwrap();
    let mut stdin = fs::File::from(stdin);
    stdin.write_all(b"to the child").unwrap();
    drop(stdin);
    let mut got = String::new();
    { stdin_reader }.read_to_string(&mut got).unwrap();
    assert_eq!(got, "to the child");

    stdout_writer.write_all(b"from the child").unwrap();
    drop(stdout_writer);
    let mut got = String::new();
    fs::File::from(stdout).read_to_string(&mut got).unwrap();
    assert_eq!(got, "from the child");
}

#[test]
fn truncated_control_data_is_refused_and_every_fd_closed() {
    let (main, broker) = channel::pair().unwrap();
    let (sent, watcher) = probe_pair();
    let ten: Vec<BorrowedFd<'_>> = (0..10).map(|_| sent.as_fd()).collect();
    broker.send_raw(&Reply::Opened.encode().unwrap(), &ten).unwrap();
    drop(sent);
    assert!(matches!(main.recv(), Err(ChannelError::ControlTruncated)));
    assert_all_copies_closed(watcher);
    still_works(&main, &broker);
}

#[test]
fn a_message_with_the_wrong_number_of_fds_is_refused_and_its_fds_closed() {
    let (main, broker) = channel::pair().unwrap();
    let (sent, watcher) = probe_pair();
    broker
        .send_raw(&Reply::Done.encode().unwrap(), &[sent.as_fd()])
        .unwrap();
    let spawned = Reply::Spawned {
        pid: 1,
        stdio: SpawnedStdio {
            stdin: true,
            stdout: true,
            stderr: true,
        },
    };
    broker
        .send_raw(&spawned.encode().unwrap(), &[sent.as_fd(), sent.as_fd()])
        .unwrap();
    broker.send_raw(&Reply::Opened.encode().unwrap(), &[]).unwrap();
    drop(sent);
    assert!(matches!(
        main.recv(),
        Err(ChannelError::FdCountReceived {
            expected: 0,
            received: 1
        })
    ));
    assert!(matches!(
        main.recv(),
        Err(ChannelError::FdCountReceived {
            expected: 3,
            received: 2
        })
    ));
    assert!(matches!(
        main.recv(),
        Err(ChannelError::FdCountReceived {
            expected: 1,
            received: 0
        })
    ));
    assert_all_copies_closed(watcher);
    still_works(&main, &broker);
}

#[test]
fn the_broker_refuses_any_fd_from_the_main_process() {
    let (main, broker) = channel::pair().unwrap();
    let (sent, watcher) = probe_pair();
    main.send_raw(&Request::ReopenChannel.encode().unwrap(), &[sent.as_fd()])
        .unwrap();
    drop(sent);
    assert!(matches!(
        broker.recv(),
        Err(ChannelError::FdCountReceived {
            expected: 0,
            received: 1
        })
    ));
    assert_all_copies_closed(watcher);
    assert!(matches!(
        main.send(&Request::ReopenChannel, &[main.as_fd()]),
        Err(ChannelError::FdCountToSend { .. })
    ));
}

#[test]
fn garbage_with_fds_is_refused_and_its_fds_closed() {
    let (main, broker) = channel::pair().unwrap();
    let (sent, watcher) = probe_pair();
    broker.send_raw(&[1, 0, 0, 0, 0x42], &[sent.as_fd()]).unwrap();
    broker
        .send_raw(b"\xff\xff\xff\xff garbage", &[sent.as_fd(), sent.as_fd(), sent.as_fd()])
        .unwrap();
    drop(sent);
    assert!(matches!(main.recv(), Err(ChannelError::Decode(_))));
    assert!(matches!(main.recv(), Err(ChannelError::Decode(_))));
    assert_all_copies_closed(watcher);
    still_works(&main, &broker);
}

#[test]
fn an_oversized_datagram_is_refused() {
    let (main, broker) = channel::pair().unwrap();
    let (sent, watcher) = probe_pair();
    broker.send_raw(&vec![0x81; 100 * 1024], &[sent.as_fd()]).unwrap();
    drop(sent);
    assert!(matches!(main.recv(), Err(ChannelError::Oversized)));
    assert_all_copies_closed(watcher);
    still_works(&main, &broker);
}

#[test]
fn an_empty_datagram_is_refused_not_taken_for_a_hang_up() {
    let (main, broker) = channel::pair().unwrap();
    main.send_raw(&[], &[]).unwrap();
    assert!(matches!(broker.recv(), Err(ChannelError::Decode(_))));
    main.send(&Request::ReopenChannel, &[]).unwrap();
    assert_eq!(broker.recv().unwrap().message, Request::ReopenChannel);
}

#[test]
fn a_departed_peer_is_closed_not_an_error_loop() {
    let (main, broker) = channel::pair().unwrap();
    broker.send(&Reply::Done, &[]).unwrap();
    drop(broker);
    assert_eq!(
        main.recv().unwrap().message,
        Reply::Done,
        "queued messages are still delivered"
    );
    assert!(matches!(main.recv(), Err(ChannelError::Closed)));
    assert!(matches!(main.recv(), Err(ChannelError::Closed)));
    assert!(
        matches!(main.send(&Request::ReopenChannel, &[]), Err(ChannelError::Io(e)) if e.raw_os_error() == Some(libc::EPIPE))
    );
}

#[test]
fn only_a_seqpacket_unix_socket_is_adopted() {
    let (stream, _other) = UnixStream::pair().unwrap();
    let adopted: Result<MainEnd, _> = Channel::from_fd(OwnedFd::from(stream));
    assert!(matches!(
        adopted,
        Err(ChannelError::NotSeqpacket {
            kind: libc::SOCK_STREAM,
            ..
        })
    ));
    let file = fs::File::open("/proc/self/status").unwrap();
    let adopted: Result<MainEnd, _> = Channel::from_fd(OwnedFd::from(file));
    assert!(matches!(adopted, Err(ChannelError::Io(e)) if e.raw_os_error() == Some(libc::ENOTSOCK)));
    let (main, _broker) = channel::pair().unwrap();
    let readopted: MainEnd = Channel::from_fd(main.into_fd()).unwrap();
    drop(readopted);
}

/// After a refusal the next message still arrives intact: datagram
/// boundaries keep the two sides in step.
fn still_works(main: &MainEnd, broker: &channel::BrokerEnd) {
    broker.send(&Reply::Trimmed { bytes: 12345 }, &[]).unwrap();
    assert_eq!(main.recv().unwrap().message, Reply::Trimmed { bytes: 12345 });
}
