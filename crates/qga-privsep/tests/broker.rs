//! The broker's request loop and freeze gate, over a real channel (the
//! broker on a thread: nothing here needs privilege).

use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use qga_privsep::broker::{self, Answer, FROZEN_ERRNO, FreezeGate};
use qga_privsep::channel::{self, MainEnd};
use qga_privsep::wire::{
    ByteString, KeysOp, Message, OpenMode, Operation, Password, Path, PowerMode, Reply, Request, SpawnRequest,
    StdioMode, UserName,
};

fn path(p: &str) -> Path {
    Path::new(p).unwrap()
}

fn open(p: &str) -> Request {
    Request::OpenFile {
        path: path(p),
        mode: OpenMode::Read,
    }
}

/// Starts a broker whose operations log what they performed and answer as
/// a real one would; returns the main end and the log.
fn start(thaw_answer: Reply) -> (MainEnd, Arc<Mutex<Vec<Operation>>>, std::thread::JoinHandle<FreezeGate>) {
    let (main, end) = channel::pair().unwrap();
    let performed = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&performed);
    let thread = std::thread::spawn(move || {
        let mut gate = FreezeGate::default();
        let mut operations = |request: &Request| {
            log.lock().unwrap().push(request.operation());
            match request {
                Request::OpenFile { .. } | Request::ReopenChannel => Answer {
                    reply: Reply::Opened,
                    fds: vec![OwnedFd::from(File::open("/dev/null").unwrap())],
                },
                Request::Thaw { .. } => Answer::reply(thaw_answer.clone()),
                Request::Trim { .. } => Answer::reply(Reply::Opened), // a bug: no fd
                _ => Answer::reply(Reply::Done),
            }
        };
        broker::serve(&end, &mut gate, &mut operations).unwrap();
        gate
    });
    (main, performed, thread)
}

fn ask(main: &MainEnd, request: &Request) -> Reply {
    main.send(request, &[]).unwrap();
    main.recv().unwrap().message
}

#[test]
fn malformed_requests_are_answered_and_the_loop_goes_on() {
    let (main, performed, thread) = start(Reply::Done);
    main.send_raw(b"\x01\x00\x00\x00\xee", &[]).unwrap();
    assert!(matches!(
        main.recv().unwrap().message,
        Reply::Failed {
            errno: libc::EINVAL,
            ..
        }
    ));
    let null = File::open("/dev/null").unwrap();
    main.send_raw(
        &Request::ReopenChannel.encode().unwrap(),
        &[std::os::fd::AsFd::as_fd(&null)],
    )
    .unwrap();
    assert!(matches!(
        main.recv().unwrap().message,
        Reply::Failed {
            errno: libc::EINVAL,
            ..
        }
    ));
    let reply = main.send(&open("/x"), &[]).and_then(|()| main.recv()).unwrap();
    assert_eq!((reply.message, reply.fds.len()), (Reply::Opened, 1));
    // An operation that announces an fd it does not give is answered EIO.
    let trim = Request::Trim {
        mountpoint: path("/"),
        minimum: 0,
    };
    assert!(matches!(ask(&main, &trim), Reply::Failed { errno: libc::EIO, .. }));
    assert_eq!(ask(&main, &Request::SetTime { nanoseconds: None }), Reply::Done);
    drop(main);
    thread.join().unwrap();
    assert_eq!(
        *performed.lock().unwrap(),
        [Operation::OpenFile, Operation::Trim, Operation::SetTime]
    );
}

#[test]
fn while_frozen_only_freeze_thaw_and_the_channel_are_served() {
    let (main, performed, thread) = start(Reply::Done);
    assert_eq!(ask(&main, &Request::Freeze { mountpoint: path("/") }), Reply::Done);
    assert_eq!(
        ask(
            &main,
            &Request::Freeze {
                mountpoint: path("/srv")
            }
        ),
        Reply::Done
    );
    let spawn = Request::Spawn(SpawnRequest {
        program: path("/bin/sync"),
        argv: vec![ByteString::new("sync").unwrap()],
        env: vec![],
        stdin: StdioMode::Null,
        stdout: StdioMode::Null,
        stderr: StdioMode::Null,
    });
    let refused = [
        open("/var/log/x"),
        spawn,
        Request::Trim {
            mountpoint: path("/"),
            minimum: 0,
        },
        Request::SetTime { nanoseconds: Some(0) },
        Request::WriteSysfs {
            path: path("/sys/x"),
            value: ByteString::new("1").unwrap(),
        },
        Request::Shutdown {
            mode: PowerMode::Reboot,
        },
        Request::AuthorizedKeys {
            user: UserName::new("alice").unwrap(),
            op: KeysOp::Add,
            keys: vec![],
        },
        Request::Chpasswd {
            user: UserName::new("alice").unwrap(),
            password: Password::new("x").unwrap(),
            crypted: false,
        },
    ];
    for request in &refused {
        assert!(
            matches!(
                ask(&main, request),
                Reply::Failed {
                    errno: FROZEN_ERRNO,
                    ..
                }
            ),
            "{request:?}"
        );
    }
    let reopened = main
        .send(&Request::ReopenChannel, &[])
        .and_then(|()| main.recv())
        .unwrap();
    assert_eq!(reopened.message, Reply::Opened);
    assert_eq!(ask(&main, &Request::Thaw { mountpoint: path("/") }), Reply::Done);
    assert!(
        matches!(
            ask(&main, &open("/still/frozen")),
            Reply::Failed {
                errno: FROZEN_ERRNO,
                ..
            }
        ),
        "/srv is frozen"
    );
    assert_eq!(
        ask(
            &main,
            &Request::Thaw {
                mountpoint: path("/srv")
            }
        ),
        Reply::Done
    );
    assert_eq!(
        main.send(&open("/now"), &[])
            .and_then(|()| main.recv())
            .unwrap()
            .message,
        Reply::Opened
    );
    drop(main);
    let gate = thread.join().unwrap();
    assert!(!gate.is_frozen());
    assert_eq!(
        *performed.lock().unwrap(),
        [
            Operation::Freeze,
            Operation::Freeze,
            Operation::ReopenChannel,
            Operation::Thaw,
            Operation::Thaw,
            Operation::OpenFile
        ],
        "no refused operation reached the broker's operations"
    );
}

#[test]
fn a_thaw_of_a_filesystem_no_longer_frozen_clears_the_gate() {
    let (main, _performed, thread) = start(Reply::Failed {
        errno: libc::EINVAL,
        message: "not frozen".into(),
    });
    assert_eq!(ask(&main, &Request::Freeze { mountpoint: path("/") }), Reply::Done);
    assert!(matches!(
        ask(&main, &Request::Thaw { mountpoint: path("/") }),
        Reply::Failed {
            errno: libc::EINVAL,
            ..
        }
    ));
    assert_eq!(
        main.send(&open("/x"), &[]).and_then(|()| main.recv()).unwrap().message,
        Reply::Opened
    );
    drop(main);
    assert!(!thread.join().unwrap().is_frozen());
}

#[test]
fn a_failed_freeze_does_not_close_the_gate() {
    let mut gate = FreezeGate::default();
    let freeze = Request::Freeze { mountpoint: path("/") };
    gate.record(
        &freeze,
        &Reply::Failed {
            errno: libc::EOPNOTSUPP,
            message: String::new(),
        },
    );
    assert!(!gate.is_frozen() && gate.refuses(&open("/x")).is_none());
    gate.record(&freeze, &Reply::Done);
    assert_eq!(gate.frozen().collect::<Vec<_>>(), [b"/".as_slice()]);
}
