//! The broker protocol's codec: every message round-trips, and no frame a
//! hostile peer can build makes the decoder panic or accept it silently.

use qga_privsep::wire::{
    ByteString, DecodeError, EncodeError, EnvVar, FieldError, KeysOp, MAX_FRAME, Message, OpenMode, Operation,
    Password, Path, PowerMode, Reply, Request, SpawnRequest, SpawnedStdio, SshKey, StdioMode, UserName,
};

fn path(p: &str) -> Path {
    Path::new(p).unwrap()
}

fn every_request() -> Vec<Request> {
    let mut all: Vec<Request> = OpenMode::ALL
        .iter()
        .map(|&mode| Request::OpenFile {
            path: path("/var/log/qga.log"),
            mode,
        })
        .collect();
    all.push(Request::ReopenChannel);
    for &stdio in StdioMode::ALL {
        all.push(Request::Spawn(SpawnRequest {
            program: path("/usr/bin/env"),
            argv: vec![
                ByteString::new("env").unwrap(),
                ByteString::new(vec![0xff, b'x']).unwrap(),
            ],
            env: vec![EnvVar::new("PATH=/usr/bin").unwrap(), EnvVar::new("EMPTY=").unwrap()],
            stdin: stdio,
            stdout: StdioMode::Pipe,
            stderr: stdio,
        }));
    }
    all.push(Request::Spawn(SpawnRequest {
        program: path("/bin/true"),
        argv: vec![],
        env: vec![],
        stdin: StdioMode::Null,
        stdout: StdioMode::Null,
        stderr: StdioMode::Null,
    }));
    all.push(Request::Freeze { mountpoint: path("/") });
    all.push(Request::Thaw {
        mountpoint: path("/srv"),
    });
    all.push(Request::Trim {
        mountpoint: path("/"),
        minimum: u64::MAX,
    });
    all.push(Request::SetTime { nanoseconds: None });
    all.push(Request::SetTime { nanoseconds: Some(-1) });
    all.push(Request::SetTime {
        nanoseconds: Some(1_700_000_000_123_456_789),
    });
    all.push(Request::WriteSysfs {
        path: path("/sys/devices/system/cpu/cpu1/online"),
        value: ByteString::new("0").unwrap(),
    });
    for &op in KeysOp::ALL {
        all.push(Request::AuthorizedKeys {
            user: UserName::new("alice").unwrap(),
            op,
            keys: vec![SshKey::new("ssh-ed25519 AAAA alice@host").unwrap()],
        });
    }
    all.push(Request::AuthorizedKeys {
        user: UserName::new("root").unwrap(),
        op: KeysOp::Reset,
        keys: vec![],
    });
    for crypted in [false, true] {
        all.push(Request::Chpasswd {
            user: UserName::new("bob_1.x-y").unwrap(),
            password: Password::new("s3cret: with spaces").unwrap(),
            crypted,
        });
    }
    for &mode in PowerMode::ALL {
        all.push(Request::Shutdown { mode });
    }
    all
}

fn every_reply() -> Vec<Reply> {
    let mut all = vec![
        Reply::Done,
        Reply::Failed {
            errno: libc::EACCES,
            message: "path /etc/shadow is not granted".into(),
        },
        Reply::Failed {
            errno: 4095,
            message: String::new(),
        },
        Reply::Opened,
        Reply::Trimmed { bytes: 0 },
        Reply::Trimmed { bytes: u64::MAX },
    ];
    for bits in 0..8u8 {
        let stdio = SpawnedStdio {
            stdin: bits & 1 != 0,
            stdout: bits & 2 != 0,
            stderr: bits & 4 != 0,
        };
        all.push(Reply::Spawned { pid: 4242, stdio });
    }
    all
}

#[test]
fn every_request_round_trips() {
    for request in every_request() {
        let frame = request.encode().unwrap();
        assert_eq!(Request::decode(&frame).unwrap(), request, "frame {frame:?}");
        assert_eq!(request.fd_count(), 0, "requests never carry fds");
    }
}

#[test]
fn the_round_trip_covers_every_operation() {
    let covered: std::collections::HashSet<Operation> = every_request().iter().map(Request::operation).collect();
    for operation in Operation::ALL {
        assert!(covered.contains(operation), "{operation:?} has no round-trip case");
    }
}

#[test]
fn every_reply_round_trips_and_announces_its_fds() {
    for reply in every_reply() {
        let frame = reply.encode().unwrap();
        assert_eq!(Reply::decode(&frame).unwrap(), reply, "frame {frame:?}");
    }
    assert_eq!(Reply::Opened.fd_count(), 1);
    let all = SpawnedStdio {
        stdin: true,
        stdout: true,
        stderr: true,
    };
    assert_eq!(Reply::Spawned { pid: 1, stdio: all }.fd_count(), 3);
    assert_eq!(
        Reply::Failed {
            errno: 1,
            message: "x".into()
        }
        .fd_count(),
        0
    );
}

#[test]
fn a_reply_the_decoder_would_refuse_cannot_be_encoded() {
    for errno in [0, -1, 4096] {
        let failed = Reply::Failed {
            errno,
            message: String::new(),
        };
        assert_eq!(
            failed.encode(),
            Err(EncodeError::BadValue {
                what: "errno",
                value: i64::from(errno)
            })
        );
    }
    let stdio = SpawnedStdio {
        stdin: false,
        stdout: false,
        stderr: false,
    };
    assert_eq!(
        Reply::Spawned { pid: 0, stdio }.encode(),
        Err(EncodeError::BadValue { what: "pid", value: 0 })
    );
}

#[test]
fn a_long_failure_message_is_cut_on_a_character_boundary() {
    let message = "é".repeat(1000); // 2000 bytes
    let frame = Reply::Failed { errno: 5, message }.encode().unwrap();
    match Reply::decode(&frame).unwrap() {
        Reply::Failed { message, .. } => assert_eq!(message, "é".repeat(512)),
        other => panic!("decoded {other:?}"),
    }
}

#[test]
fn a_request_is_not_a_reply_and_a_reply_is_not_a_request() {
    for request in every_request() {
        assert!(matches!(
            Reply::decode(&request.encode().unwrap()),
            Err(DecodeError::UnknownTag(_))
        ));
    }
    for reply in every_reply() {
        assert!(matches!(
            Request::decode(&reply.encode().unwrap()),
            Err(DecodeError::UnknownTag(_))
        ));
    }
}

#[test]
fn every_truncation_of_every_frame_is_refused() {
    let frames: Vec<Vec<u8>> = every_request()
        .iter()
        .map(|r| r.encode().unwrap())
        .chain(every_reply().iter().map(|r| r.encode().unwrap()))
        .collect();
    for frame in frames {
        for len in 0..frame.len() {
            let cut = &frame[..len];
            assert!(Request::decode(cut).is_err(), "accepted {len} of {} bytes", frame.len());
            assert!(Reply::decode(cut).is_err(), "accepted {len} of {} bytes", frame.len());
            // A header fixed up to the cut length: the fields themselves end early.
            if len >= 5 {
                let mut fixed = cut.to_vec();
                fixed[..4].copy_from_slice(&((len - 4) as u32).to_le_bytes());
                assert!(
                    Request::decode(&fixed).is_err() && Reply::decode(&fixed).is_err(),
                    "fixed cut {fixed:?}"
                );
            }
        }
    }
}

#[test]
fn trailing_bytes_and_length_lies_are_refused() {
    let mut frame = Request::ReopenChannel.encode().unwrap();
    frame.push(0);
    assert_eq!(
        Request::decode(&frame),
        Err(DecodeError::LengthMismatch {
            announced: 1,
            actual: 2
        })
    );
    frame[..4].copy_from_slice(&2u32.to_le_bytes());
    assert_eq!(Request::decode(&frame), Err(DecodeError::Trailing(1)));
    frame[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        Request::decode(&frame),
        Err(DecodeError::LengthMismatch { .. })
    ));
    assert_eq!(Request::decode(&[1, 0]), Err(DecodeError::ShortHeader(2)));
    assert!(matches!(
        Request::decode(&vec![0; MAX_FRAME + 1]),
        Err(DecodeError::TooLarge(_))
    ));
}

#[test]
fn unknown_tags_and_enum_values_are_refused() {
    for tag in 0..=255u8 {
        let frame = [1, 0, 0, 0, tag];
        if tag != 0x02 {
            assert!(
                Request::decode(&frame).is_err(),
                "request tag {tag:#x} accepted without fields"
            );
        }
    }
    assert_eq!(Request::decode(&[1, 0, 0, 0, 0x00]), Err(DecodeError::UnknownTag(0)));
    assert_eq!(Request::decode(&[1, 0, 0, 0, 0x7f]), Err(DecodeError::UnknownTag(0x7f)));
    let mut open = Request::OpenFile {
        path: path("/x"),
        mode: OpenMode::Read,
    }
    .encode()
    .unwrap();
    *open.last_mut().unwrap() = 7;
    assert_eq!(
        Request::decode(&open),
        Err(DecodeError::BadValue {
            what: "open mode",
            value: 7
        })
    );
    let mut time = Request::SetTime { nanoseconds: None }.encode().unwrap();
    *time.last_mut().unwrap() = 2;
    assert_eq!(
        Request::decode(&time),
        Err(DecodeError::BadValue {
            what: "time present",
            value: 2
        })
    );
}

/// A frame whose one field is the given raw byte string.
fn freeze_with_raw_path(bytes: &[u8]) -> Vec<u8> {
    let mut body = vec![0x04];
    body.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    body.extend_from_slice(bytes);
    let mut frame = (body.len() as u32).to_le_bytes().to_vec();
    frame.extend(body);
    frame
}

#[test]
fn invalid_fields_are_refused_by_the_decoder_as_by_the_constructor() {
    let cases: [(&[u8], DecodeError); 4] = [
        (b"", DecodeError::Field(FieldError::Empty { what: "path" })),
        (b"relative", DecodeError::Field(FieldError::NotAbsolute)),
        (b"/a\0b", DecodeError::Field(FieldError::Nul { what: "path" })),
        (
            &[b'/'; 5000],
            DecodeError::FieldTooLong {
                what: "path",
                len: 5000,
                limit: 4095,
            },
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(Request::decode(&freeze_with_raw_path(bytes)), Err(expected));
    }
    // A length field larger than the frame: refused before any copy.
    let mut lying = freeze_with_raw_path(b"/x");
    lying[5..9].copy_from_slice(&3000u32.to_le_bytes());
    assert_eq!(Request::decode(&lying), Err(DecodeError::Truncated { needed: 2998 }));
    assert!(UserName::new("-rf").is_err() && UserName::new("a:b").is_err() && UserName::new("").is_err());
    assert!(EnvVar::new("=x").is_err() && EnvVar::new("NOEQUALS").is_err());
    assert!(Password::new("a\nroot:x").is_err());
    assert!(SshKey::new("key1\nkey2").is_err());
    assert_eq!(
        format!("{:?}", Password::new("hunter2").unwrap()),
        "Password(<redacted>)"
    );
}

#[test]
fn lists_over_their_bound_are_refused_both_ways() {
    let arg = ByteString::new("a").unwrap();
    let spawn = |argv: Vec<ByteString>| {
        Request::Spawn(SpawnRequest {
            program: path("/bin/true"),
            argv,
            env: vec![],
            stdin: StdioMode::Null,
            stdout: StdioMode::Null,
            stderr: StdioMode::Null,
        })
    };
    assert_eq!(
        spawn(vec![arg.clone(); 257]).encode(),
        Err(EncodeError::TooMany { count: 257, limit: 256 })
    );
    let mut frame = spawn(vec![arg; 1]).encode().unwrap();
    // argv count sits after tag (1), program length (4) and "/bin/true" (9).
    frame[4 + 1 + 4 + 9..4 + 1 + 4 + 9 + 2].copy_from_slice(&300u16.to_le_bytes());
    assert_eq!(
        Request::decode(&frame),
        Err(DecodeError::ListTooLong {
            what: "argv",
            count: 300,
            limit: 256
        })
    );
    let huge = vec![ByteString::new(vec![b'x'; 4096]).unwrap(); 20];
    assert!(matches!(spawn(huge).encode(), Err(EncodeError::TooLarge(_))));
}

#[test]
fn garbage_never_panics() {
    // A deterministic xorshift stream: random frames, and random mutations
    // of valid frames (the interesting ones pass the length check).
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let valid: Vec<Vec<u8>> = every_request().iter().map(|r| r.encode().unwrap()).collect();
    let mut accepted = 0;
    for round in 0..20_000 {
        let mut frame = if round % 2 == 0 {
            let len = (next() % 64) as usize;
            let mut f: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if f.len() >= 4 {
                f[..4].copy_from_slice(&((len - 4) as u32).to_le_bytes());
            }
            f
        } else {
            valid[(next() % valid.len() as u64) as usize].clone()
        };
        if frame.len() > 4 {
            for _ in 0..1 + next() % 3 {
                let at = 4 + (next() as usize) % (frame.len() - 4);
                frame[at] = next() as u8;
            }
        }
        if let Ok(request) = Request::decode(&frame) {
            // Whatever decodes re-encodes to the same bytes: no lenient parse.
            assert_eq!(request.encode().unwrap(), frame);
            accepted += 1;
        }
        let _ = Reply::decode(&frame);
    }
    assert!(accepted > 0, "mutations of valid frames should sometimes stay valid");
}
