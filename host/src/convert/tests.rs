//! Converter tests on hand-built shapes. Expected texts are qemu-ga 7.2's
//! answers to the same arguments (observed with /usr/sbin/qemu-ga).

use base64::Engine as _;
use proptest::prelude::*;

use super::*;

fn field(name: &str, shape: Shape) -> Field {
    Field {
        name: name.into(),
        shape,
        optional: false,
    }
}

fn opt(name: &str, shape: Shape) -> Field {
    Field {
        name: name.into(),
        shape,
        optional: true,
    }
}

fn sig(params: Vec<Field>) -> Signature {
    Signature {
        params,
        returns: Returns::Empty,
    }
}

/// Parse JSON text into a Value (tests only; integers as qemu keeps them).
fn json(text: &str) -> Value {
    fn parse(s: &mut &str) -> Value {
        *s = s.trim_start();
        let c = s.chars().next().unwrap();
        match c {
            '{' => {
                *s = &s[1..];
                let mut d = Dict::new();
                loop {
                    *s = s.trim_start();
                    if let Some(rest) = s.strip_prefix('}') {
                        *s = rest;
                        return Value::Dict(d);
                    }
                    if let Some(rest) = s.strip_prefix(',') {
                        *s = rest;
                        continue;
                    }
                    let Value::Str(k) = parse(s) else { panic!() };
                    *s = s.trim_start().strip_prefix(':').unwrap();
                    let v = parse(s);
                    d.insert(k, v);
                }
            }
            '[' => {
                *s = &s[1..];
                let mut l = Vec::new();
                loop {
                    *s = s.trim_start();
                    if let Some(rest) = s.strip_prefix(']') {
                        *s = rest;
                        return Value::List(l);
                    }
                    if let Some(rest) = s.strip_prefix(',') {
                        *s = rest;
                        continue;
                    }
                    l.push(parse(s));
                }
            }
            '"' => {
                let end = s[1..].find('"').unwrap() + 1;
                let v = Value::Str(s[1..end].to_owned());
                *s = &s[end + 1..];
                v
            }
            _ => {
                let end = s.find([',', '}', ']']).unwrap_or(s.len());
                let tok = s[..end].trim();
                *s = &s[end..];
                match tok {
                    "null" => Value::Null,
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    t => t
                        .parse::<i64>()
                        .map(Value::Int)
                        .or_else(|_| t.parse::<u64>().map(Value::Uint))
                        .unwrap_or_else(|_| Value::Double(t.parse().unwrap())),
                }
            }
        }
    }
    let mut s = text;
    parse(&mut s)
}

fn args(text: &str) -> Dict {
    match json(text) {
        Value::Dict(d) => d,
        _ => panic!("not an object"),
    }
}

fn err(sig: &Signature, text: &str) -> String {
    sig.params_from_json(Some(&args(text))).unwrap_err().desc
}

fn file_read() -> Signature {
    sig(vec![field("handle", Shape::S64), opt("count", Shape::S64)])
}

fn set_vcpus() -> Signature {
    sig(vec![field(
        "vcpus",
        Shape::List(Box::new(Shape::Record(vec![
            field("logical-id", Shape::S64),
            field("online", Shape::Bool),
            opt("can-offline", Shape::Bool),
        ]))),
    )])
}

fn mem_blocks() -> Signature {
    sig(vec![field(
        "mem-blks",
        Shape::List(Box::new(Shape::Record(vec![
            field("phys-index", Shape::U64),
            field("online", Shape::Bool),
        ]))),
    )])
}

fn seek() -> Signature {
    sig(vec![
        field("handle", Shape::S64),
        field("offset", Shape::S64),
        field(
            "whence",
            Shape::Alternate(vec![
                Case {
                    name: "value".into(),
                    shape: Shape::S64,
                },
                Case {
                    name: "name".into(),
                    shape: Shape::Enum(vec!["set".into(), "cur".into(), "end".into()]),
                },
            ]),
        ),
    ])
}

#[test]
fn missing_parameter() {
    assert_eq!(err(&file_read(), "{}"), "Parameter 'handle' is missing");
    assert_eq!(
        file_read().params_from_json(None).unwrap_err().desc,
        "Parameter 'handle' is missing"
    );
    assert_eq!(
        err(&mem_blocks(), r#"{"mem-blks": [{"online": true}]}"#),
        "Parameter 'mem-blks[0].phys-index' is missing"
    );
}

#[test]
fn integer_type_errors() {
    for v in [
        "1.5",
        "\"x\"",
        "null",
        "9223372036854775808",
        "-9223372036854775809",
        "18446744073709551615",
    ] {
        assert_eq!(
            err(&file_read(), &format!(r#"{{"handle": {v}}}"#)),
            "Invalid parameter type for 'handle', expected: integer",
            "{v}"
        );
    }
    assert_eq!(
        err(&file_read(), r#"{"handle": 1, "count": "x"}"#),
        "Invalid parameter type for 'count', expected: integer"
    );
}

#[test]
fn uint64_wraps_negative_and_rejects_the_rest() {
    let vals = mem_blocks()
        .params_from_json(Some(&args(r#"{"mem-blks": [{"phys-index": -1, "online": true}]}"#)))
        .unwrap();
    let Val::List(items) = &vals[0] else { panic!() };
    let Val::Record(members) = &items[0] else { panic!() };
    assert_eq!(members[0].1, Val::U64(u64::MAX));
    for v in ["18446744073709551616", "1.0", "\"x\"", "true"] {
        assert_eq!(
            err(
                &mem_blocks(),
                &format!(r#"{{"mem-blks": [{{"phys-index": {v}, "online": true}}]}}"#)
            ),
            "Parameter 'mem-blks[0].phys-index' expects uint64",
            "{v}"
        );
    }
}

#[test]
fn sized_integers_report_their_type() {
    let s = sig(vec![
        opt("a", Shape::U8),
        opt("b", Shape::U16),
        opt("c", Shape::S8),
        opt("d", Shape::S32),
    ]);
    assert_eq!(err(&s, r#"{"a": 256}"#), "Parameter 'a' expects uint8");
    assert_eq!(err(&s, r#"{"a": -1}"#), "Parameter 'a' expects uint8");
    assert_eq!(err(&s, r#"{"b": 65536}"#), "Parameter 'b' expects uint16");
    assert_eq!(err(&s, r#"{"c": -129}"#), "Parameter 'c' expects int8");
    assert_eq!(
        err(&s, r#"{"c": "x"}"#),
        "Invalid parameter type for 'c', expected: integer"
    );
    assert_eq!(err(&s, r#"{"d": 2147483648}"#), "Parameter 'd' expects int32");
    assert!(
        s.params_from_json(Some(&args(r#"{"a": 255, "b": 65535, "c": -128}"#)))
            .is_ok()
    );
}

#[test]
fn nested_names_and_kinds() {
    assert_eq!(
        err(&set_vcpus(), r#"{"vcpus": [{"logical-id": "a", "online": true}]}"#),
        "Invalid parameter type for 'vcpus[0].logical-id', expected: integer"
    );
    assert_eq!(
        err(&set_vcpus(), r#"{"vcpus": [{"logical-id": 0, "online": 1}]}"#),
        "Invalid parameter type for 'vcpus[0].online', expected: boolean"
    );
    assert_eq!(
        err(
            &set_vcpus(),
            r#"{"vcpus": [{"logical-id": 1, "online": true, "x": 3}]}"#
        ),
        "Parameter 'vcpus[0].x' is unexpected"
    );
    assert_eq!(
        err(&mem_blocks(), r#"{"mem-blks": {}}"#),
        "Invalid parameter type for 'mem-blks', expected: array"
    );
    assert_eq!(
        err(&mem_blocks(), r#"{"mem-blks": [1]}"#),
        "Invalid parameter type for 'mem-blks[0]', expected: object"
    );
    let exec = sig(vec![
        field("path", Shape::Str),
        opt("arg", Shape::List(Box::new(Shape::Str))),
    ]);
    assert_eq!(
        err(&exec, r#"{"path": "x", "arg": [1]}"#),
        "Invalid parameter type for 'arg[0]', expected: string"
    );
    let number = sig(vec![field("n", Shape::F64)]);
    assert_eq!(
        err(&number, r#"{"n": "1"}"#),
        "Invalid parameter type for 'n', expected: number"
    );
    assert_eq!(
        number.params_from_json(Some(&args(r#"{"n": 3}"#))).unwrap(),
        [Val::Float64(3.0)]
    );
}

#[test]
fn unexpected_uses_qdict_order_after_members() {
    let none = sig(vec![]);
    // qemu-ga: {"b":1,"a":2,"c":3} to guest-get-time reports 'b'.
    assert_eq!(err(&none, r#"{"b": 1, "a": 2, "c": 3}"#), "Parameter 'b' is unexpected");
    // A member error comes before any unexpected member.
    assert_eq!(err(&file_read(), r#"{"zzz": 1}"#), "Parameter 'handle' is missing");
}

#[test]
fn null_is_not_absent() {
    let open = sig(vec![field("path", Shape::Str), opt("mode", Shape::Str)]);
    assert_eq!(
        err(&open, r#"{"path": "/x", "mode": null}"#),
        "Invalid parameter type for 'mode', expected: string"
    );
    assert_eq!(
        err(&open, r#"{"path": 1}"#),
        "Invalid parameter type for 'path', expected: string"
    );
}

#[test]
fn enums_and_alternates() {
    assert_eq!(
        err(&seek(), r#"{"handle": 1, "offset": 0, "whence": "bogus"}"#),
        "Parameter 'whence' does not accept value 'bogus'"
    );
    assert_eq!(
        err(&seek(), r#"{"handle": 1, "offset": 0, "whence": 1.5}"#),
        "Invalid parameter type for 'whence', expected: integer"
    );
    assert_eq!(
        err(&seek(), r#"{"handle": 1, "offset": 0, "whence": []}"#),
        "Invalid parameter type for 'whence', expected: integer or string"
    );
    let vals = seek()
        .params_from_json(Some(&args(r#"{"handle": 1, "offset": 0, "whence": "cur"}"#)))
        .unwrap();
    assert_eq!(
        vals[2],
        Val::Variant("name".into(), Some(Box::new(Val::Enum("cur".into()))))
    );
    let vals = seek()
        .params_from_json(Some(&args(r#"{"handle": 1, "offset": 0, "whence": 2}"#)))
        .unwrap();
    assert_eq!(vals[2], Val::Variant("value".into(), Some(Box::new(Val::S64(2)))));
}

#[test]
fn base64_bytes() {
    let write = sig(vec![field("buf-b64", Shape::Bytes)]);
    let bytes = |text: &str| match write.params_from_json(Some(&args(text))) {
        Ok(v) => match &v[0] {
            Val::List(l) => Ok(l.len()),
            _ => panic!(),
        },
        Err(e) => Err(e.desc),
    };
    assert_eq!(bytes(r#"{"buf-b64": "QUJD"}"#), Ok(3));
    assert_eq!(bytes(r#"{"buf-b64": "QQ=="}"#), Ok(1));
    assert_eq!(bytes(r#"{"buf-b64": ""}"#), Ok(0));
    assert_eq!(
        bytes(r#"{"buf-b64": "!!"}"#),
        Err("Base64 data contains invalid characters".into())
    );
    assert_eq!(
        bytes(r#"{"buf-b64": "QU JD"}"#),
        Err("Base64 data contains invalid characters".into())
    );
    // GLib silently decodes "QQ" to nothing; qga refuses it.
    assert_eq!(
        bytes(r#"{"buf-b64": "QQ"}"#),
        Err("Base64 data is incomplete or badly padded".into())
    );
    assert_eq!(
        bytes(r#"{"buf-b64": 1}"#),
        Err("Invalid parameter type for 'buf-b64', expected: string".into())
    );
}

fn device_id() -> Shape {
    Shape::Union(vec![
        UnionCase {
            name: "pci".into(),
            fields: Some(vec![field("vendor-id", Shape::U16), field("device-id", Shape::U16)]),
        },
        UnionCase {
            name: "none".into(),
            fields: None,
        },
    ])
}

#[test]
fn flat_union_on_type() {
    let s = sig(vec![field("id", device_id())]);
    assert_eq!(err(&s, r#"{"id": {}}"#), "Parameter 'id.type' is missing");
    assert_eq!(
        err(&s, r#"{"id": {"type": "usb"}}"#),
        "Parameter 'id.type' does not accept value 'usb'"
    );
    assert_eq!(
        err(&s, r#"{"id": {"type": "pci", "vendor-id": 1}}"#),
        "Parameter 'id.device-id' is missing"
    );
    assert_eq!(
        err(&s, r#"{"id": {"type": "none", "x": 1}}"#),
        "Parameter 'id.x' is unexpected"
    );
    let vals = s
        .params_from_json(Some(&args(
            r#"{"id": {"type": "pci", "vendor-id": 1, "device-id": 2}}"#,
        )))
        .unwrap();
    let back = to_json(&device_id(), &vals[0]);
    assert_eq!(
        back.to_json(),
        r#"{"device-id": 2, "vendor-id": 1, "type": "pci"}"#.to_owned().replace(
            r#"{"device-id": 2, "vendor-id": 1, "type": "pci"}"#,
            &Value::Dict(
                Dict::new()
                    .with("type", "pci")
                    .with("vendor-id", 1i64)
                    .with("device-id", 2i64)
            )
            .to_json()
        )
    );
}

#[test]
fn results_records_in_field_order_absent_options_omitted() {
    let shape = Shape::Record(vec![
        opt("zone", Shape::Str),
        field("offset", Shape::S64),
        opt("big", Shape::U64),
        opt("t", Shape::F64),
        opt("data", Shape::Bytes),
    ]);
    let val = Val::Record(vec![
        ("zone".into(), Val::Option(None)),
        ("offset".into(), Val::S64(-3600)),
        ("big".into(), Val::Option(Some(Box::new(Val::U64(u64::MAX))))),
        ("t".into(), Val::Option(Some(Box::new(Val::Float64(1.5))))),
        (
            "data".into(),
            Val::Option(Some(Box::new(Val::List(vec![Val::U8(65), Val::U8(66)])))),
        ),
    ]);
    let Value::Dict(d) = to_json(&shape, &val) else {
        panic!()
    };
    let keys: Vec<&str> = d.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["offset", "big", "t", "data"]);
    assert_eq!(d.get("big"), Some(&Value::Uint(u64::MAX)));
    assert_eq!(d.get("data"), Some(&Value::Str("QUI=".into())));
}

#[test]
fn ok_and_error_values() {
    let quiet = Signature {
        params: vec![],
        returns: Returns::NoReply,
    };
    assert_eq!(quiet.ok_to_json(Some(&Val::Enum("no-reply".into()))), None);
    assert_eq!(sig(vec![]).ok_to_json(None), Some(Value::Dict(Dict::new())));
    assert_eq!(
        error_desc(Some(&Val::Record(vec![("desc".into(), Val::String("boom".into()))]))),
        "boom"
    );
}

fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<u64>().prop_map(Value::Uint),
        any::<f64>().prop_map(Value::Double),
        "[a-z=+/!-]{0,8}".prop_map(Value::Str),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::List),
            prop::collection::vec(("[a-z-]{1,10}", inner), 0..5).prop_map(|kv| Value::Dict(kv.into_iter().collect())),
        ]
    })
}

fn everything() -> Signature {
    sig(vec![
        field("handle", Shape::S64),
        opt("count", Shape::U8),
        opt("big", Shape::U64),
        opt("n", Shape::F64),
        opt("s", Shape::Str),
        opt("b", Shape::Bool),
        opt("buf-b64", Shape::Bytes),
        opt("e", Shape::Enum(vec!["set".into(), "cur".into()])),
        opt("vcpus", set_vcpus().params[0].shape.clone()),
        opt("whence", seek().params[2].shape.clone()),
        opt("id", device_id()),
        opt("o", Shape::Option(Box::new(Shape::S16))),
    ])
}

proptest! {
    #[test]
    fn any_json_gets_an_answer_or_a_clean_error(v in any_value()) {
        let s = everything();
        let dict = match &v { Value::Dict(d) => Some(d), _ => None };
        match s.params_from_json(dict) {
            Ok(vals) => prop_assert_eq!(vals.len(), s.params.len()),
            Err(e) => {
                prop_assert!(e.desc.starts_with("Parameter '") || e.desc.starts_with("Invalid parameter type for '")
                    || e.desc.starts_with("Base64 data"), "{}", e.desc);
            }
        }
    }

    #[test]
    fn accepted_arguments_round_trip(handle in any::<i64>(), count in any::<u8>(), s in "[a-z]{0,5}",
                                     bytes in prop::collection::vec(any::<u8>(), 0..16)) {
        let sg = everything();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let d = Dict::new().with("handle", handle).with("count", i64::from(count))
            .with("s", s.as_str()).with("buf-b64", b64.as_str());
        let vals = sg.params_from_json(Some(&d)).unwrap();
        let rec = Shape::Record(sg.params.clone());
        let back = to_json(&rec, &Val::Record(sg.params.iter().map(|f| f.name.clone()).zip(vals).collect()));
        prop_assert_eq!(back, Value::Dict(d));
    }
}

#[test]
fn named_alternate_type_errors_name_the_qapi_type() {
    let named = sig(vec![
        field("handle", Shape::S64),
        field(
            "whence",
            Shape::Named(
                qapi_type_name("guest-file-whence"),
                Box::new(Shape::Alternate(vec![
                    Case {
                        name: "value".into(),
                        shape: Shape::S64,
                    },
                    Case {
                        name: "name".into(),
                        shape: Shape::Enum(vec!["set".into(), "cur".into(), "end".into()]),
                    },
                ])),
            ),
        ),
    ]);
    for v in ["null", "[]", "{}", "true"] {
        assert_eq!(
            err(&named, &format!(r#"{{"handle": 1, "whence": {v}}}"#)),
            "Invalid parameter type for 'whence', expected: GuestFileWhence"
        );
    }
    assert_eq!(
        err(&named, r#"{"handle": 1, "whence": 1.5}"#),
        "Invalid parameter type for 'whence', expected: integer"
    );
    assert_eq!(
        err(&named, r#"{"handle": 1, "whence": "bogus"}"#),
        "Parameter 'whence' does not accept value 'bogus'"
    );
    assert!(
        named
            .params_from_json(Some(&args(r#"{"handle": 1, "whence": "cur"}"#)))
            .is_ok()
    );
}

#[test]
fn into_json_equals_to_json() {
    let shape = Shape::Record(vec![
        field("count", Shape::S64),
        field("buf-b64", Shape::Str),
        opt("note", Shape::Str),
        opt("absent", Shape::Str),
        field("items", Shape::List(Box::new(Shape::Str))),
        field("raw", Shape::Bytes),
    ]);
    let val = Val::Record(vec![
        ("count".into(), Val::S64(3)),
        ("buf-b64".into(), Val::String("aGk=".into())),
        ("note".into(), Val::Option(Some(Box::new(Val::String("n".into()))))),
        ("absent".into(), Val::Option(None)),
        ("items".into(), Val::List(vec![Val::String("a".into())])),
        ("raw".into(), Val::List(vec![Val::U8(1), Val::U8(255)])),
    ]);
    assert_eq!(
        into_json(&shape, val.clone(), &mut |_| None).to_json(),
        to_json(&shape, &val).to_json()
    );
}
