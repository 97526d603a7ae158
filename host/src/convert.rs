//! The one generic converter between request JSON ([`Value`]/[`Dict`]) and a
//! component export's WIT types ([`Val`]), and back.
//!
//! A [`Shape`] is built once per export from wasmtime's
//! [`component::types::Type`] at load time ([`Shape::from_type`]); converting
//! only walks shapes, so it is tested without any wasm by building shapes by
//! hand. Argument errors are qemu-ga 7.2's (its QObject input visitor), in its
//! order: members in declaration order, each container checked for
//! unexpected members after its own members, in QDict order.
//!
//! Mapping: record ↔ object; `option` member ↔ optional member; enum ↔
//! string; `list<u8>` ↔ base64 string; a variant whose cases carry different
//! JSON kinds ↔ QAPI alternate; a variant whose cases carry records (or
//! nothing) ↔ QAPI flat union on `type`.

mod ghash;

use base64::Engine as _;
use thiserror::Error;
use wasmtime::component::types::Type;
use wasmtime::component::{ResourceAny, Val};

use crate::protocol::QmpError;
use crate::qobject::{Dict, Value};

/// What a WIT type looks like on the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Bool,
    S8,
    S16,
    S32,
    S64,
    U8,
    U16,
    U32,
    U64,
    F32,
    F64,
    Str,
    /// `list<u8>`, base64 on the wire.
    Bytes,
    /// An `own<blob>` result member: host-held data, already base64, that
    /// becomes a JSON string (results only).
    Blob,
    List(Box<Shape>),
    Record(Vec<Field>),
    /// An `option` that is not a record member: JSON `null` is `none`.
    Option(Box<Shape>),
    Enum(Vec<String>),
    Alternate(Vec<Case>),
    /// Flat union: the case name is the value of member `type`, the case's
    /// record members sit beside it.
    Union(Vec<UnionCase>),
    /// An alternate whose WIT type is exported under a name: its QAPI name
    /// (`guest-file-whence` -> `GuestFileWhence`) is what qemu-ga's type
    /// errors print.
    Named(String, Box<Shape>),
}

/// Names the component exports its types under, for [`Shape::Named`].
pub type TypeNames = [(Type, String)];

/// QAPI's spelling of a WIT type name: `guest-file-whence` -> `GuestFileWhence`.
pub fn qapi_type_name(wit: &str) -> String {
    wit.split('-')
        .map(|part| {
            let mut c = part.chars();
            match c.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// A record member (or a function parameter). `optional` when its WIT type
/// is `option<shape>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub shape: Shape,
    pub optional: bool,
}

/// An alternate's branch.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub name: String,
    pub shape: Shape,
}

/// A flat union's branch: its members, none for a case without payload.
#[derive(Debug, Clone, PartialEq)]
pub struct UnionCase {
    pub name: String,
    pub fields: Option<Vec<Field>>,
}

/// What an export returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Returns {
    /// `result<no-reply, E>`: nothing is sent on success.
    NoReply,
    /// `result<_, E>`: `{}` on success.
    Empty,
    Value(Shape),
}

/// The converter's view of one exported command.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    pub params: Vec<Field>,
    pub returns: Returns,
}

/// A WIT type the converter cannot map to QAPI; the component is refused.
#[derive(Debug, Error, PartialEq)]
pub enum ShapeError {
    #[error("unsupported WIT type {0} in `{1}`")]
    Unsupported(&'static str, String),
    #[error("variant `{0}` is neither an alternate nor a flat union")]
    AmbiguousVariant(String),
    #[error("`{0}` must return result<T, qga-error>")]
    NotAResult(String),
}

/// JSON kinds, for alternates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Number,
    Str,
    Bool,
    Object,
    Array,
    Null,
}

impl Shape {
    /// Build a shape from a wasmtime component type. `at` names the place for
    /// error messages.
    pub fn from_type(ty: &Type, at: &str) -> Result<Shape, ShapeError> {
        Shape::from_type_named(ty, at, &[])
    }

    /// [`Shape::from_type`], naming alternates found in `names`.
    pub fn from_type_named(ty: &Type, at: &str, names: &TypeNames) -> Result<Shape, ShapeError> {
        let unsupported = |what| Err(ShapeError::Unsupported(what, at.to_owned()));
        Ok(match ty {
            Type::Bool => Shape::Bool,
            Type::S8 => Shape::S8,
            Type::S16 => Shape::S16,
            Type::S32 => Shape::S32,
            Type::S64 => Shape::S64,
            Type::U8 => Shape::U8,
            Type::U16 => Shape::U16,
            Type::U32 => Shape::U32,
            Type::U64 => Shape::U64,
            Type::Float32 => Shape::F32,
            Type::Float64 => Shape::F64,
            Type::String => Shape::Str,
            Type::List(list) => match list.ty() {
                Type::U8 => Shape::Bytes,
                elem => Shape::List(Box::new(Shape::from_type_named(&elem, &format!("{at}[]"), names)?)),
            },
            Type::Record(record) => Shape::Record(fields_of(record.fields().map(|f| (f.name, f.ty)), at, names)?),
            Type::Option(opt) => Shape::Option(Box::new(Shape::from_type_named(&opt.ty(), at, names)?)),
            Type::Enum(e) => Shape::Enum(e.names().map(str::to_owned).collect()),
            Type::Variant(v) => {
                let cases: Vec<(String, Option<Type>)> = v.cases().map(|c| (c.name.to_owned(), c.ty)).collect();
                match variant_shape(cases, at, names)? {
                    alt @ Shape::Alternate(_) => match names.iter().find(|(t, _)| t == ty) {
                        Some((_, name)) => Shape::Named(qapi_type_name(name), Box::new(alt)),
                        None => alt,
                    },
                    other => other,
                }
            }
            Type::Own(_) if names.iter().any(|(t, n)| t == ty && n == "blob") => Shape::Blob,
            Type::Char => return unsupported("char"),
            Type::Tuple(_) => return unsupported("tuple"),
            Type::Flags(_) => return unsupported("flags"),
            Type::Result(_) => return unsupported("result"),
            _ => return unsupported("resource/async/map"),
        })
    }

    /// Whether a blob sits anywhere in this shape.
    fn holds_blob(&self) -> bool {
        match self {
            Shape::Blob => true,
            Shape::List(inner) | Shape::Option(inner) | Shape::Named(_, inner) => inner.holds_blob(),
            Shape::Record(fields) => fields.iter().any(|f| f.shape.holds_blob()),
            Shape::Alternate(cases) => cases.iter().any(|c| c.shape.holds_blob()),
            Shape::Union(cases) => cases.iter().any(|c| {
                c.fields
                    .as_ref()
                    .is_some_and(|fs| fs.iter().any(|f| f.shape.holds_blob()))
            }),
            _ => false,
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Shape::S8
            | Shape::S16
            | Shape::S32
            | Shape::S64
            | Shape::U8
            | Shape::U16
            | Shape::U32
            | Shape::U64
            | Shape::F32
            | Shape::F64 => Kind::Number,
            Shape::Str | Shape::Bytes | Shape::Blob | Shape::Enum(_) => Kind::Str,
            Shape::Bool => Kind::Bool,
            Shape::Record(_) | Shape::Union(_) => Kind::Object,
            Shape::List(_) => Kind::Array,
            Shape::Option(_) | Shape::Alternate(_) => Kind::Null,
            Shape::Named(_, inner) => inner.kind(),
        }
    }
}

fn fields_of<'a>(
    fields: impl Iterator<Item = (&'a str, Type)>,
    at: &str,
    names: &TypeNames,
) -> Result<Vec<Field>, ShapeError> {
    fields
        .map(|(name, ty)| {
            let here = if at.is_empty() {
                name.to_owned()
            } else {
                format!("{at}.{name}")
            };
            Ok(match ty {
                Type::Option(opt) => Field {
                    name: name.to_owned(),
                    shape: Shape::from_type_named(&opt.ty(), &here, names)?,
                    optional: true,
                },
                ty => Field {
                    name: name.to_owned(),
                    shape: Shape::from_type_named(&ty, &here, names)?,
                    optional: false,
                },
            })
        })
        .collect()
}

fn variant_shape(cases: Vec<(String, Option<Type>)>, at: &str, names: &TypeNames) -> Result<Shape, ShapeError> {
    let union_like = cases.iter().all(|(_, ty)| matches!(ty, None | Some(Type::Record(_))));
    if union_like {
        let cases = cases
            .into_iter()
            .map(|(name, ty)| {
                let fields = match ty {
                    Some(Type::Record(r)) => Some(fields_of(r.fields().map(|f| (f.name, f.ty)), at, names)?),
                    _ => None,
                };
                Ok(UnionCase { name, fields })
            })
            .collect::<Result<_, ShapeError>>()?;
        return Ok(Shape::Union(cases));
    }
    let mut out = Vec::new();
    for (name, ty) in cases {
        let Some(ty) = ty else {
            return Err(ShapeError::AmbiguousVariant(at.to_owned()));
        };
        let shape = Shape::from_type_named(&ty, at, names)?;
        let kind = shape.kind();
        if kind == Kind::Null || out.iter().any(|c: &Case| c.shape.kind() == kind) {
            return Err(ShapeError::AmbiguousVariant(at.to_owned()));
        }
        out.push(Case { name, shape });
    }
    Ok(Shape::Alternate(out))
}

impl Signature {
    /// The converter's view of an exported function: its parameters, and a
    /// result that must be `result<T, E>`.
    pub fn from_func(
        name: &str,
        params: impl Iterator<Item = (String, Type)>,
        results: impl Iterator<Item = Type>,
    ) -> Result<Signature, ShapeError> {
        Signature::from_func_named(name, params, results, &[])
    }

    /// [`Signature::from_func`] with the names the interface exports its
    /// types under (for alternates' QAPI names).
    pub fn from_func_named(
        name: &str,
        params: impl Iterator<Item = (String, Type)>,
        mut results: impl Iterator<Item = Type>,
        names: &TypeNames,
    ) -> Result<Signature, ShapeError> {
        let params: Vec<(String, Type)> = params.collect();
        let params = fields_of(params.iter().map(|(n, t)| (n.as_str(), t.clone())), "", names)?;
        if let Some(f) = params.iter().find(|f| f.shape.holds_blob()) {
            return Err(ShapeError::Unsupported("blob parameter", format!("{name}({})", f.name)));
        }
        let Some(Type::Result(result)) = results.next() else {
            return Err(ShapeError::NotAResult(name.to_owned()));
        };
        let returns = match result.ok() {
            None => Returns::Empty,
            Some(Type::Enum(e)) if e.names().eq(["no-reply"]) => Returns::NoReply,
            Some(ty) => Returns::Value(Shape::from_type_named(&ty, name, names)?),
        };
        Ok(Signature { params, returns })
    }

    /// The parameters of a call from its `arguments` (absent = `{}`).
    pub fn params_from_json(&self, arguments: Option<&Dict>) -> Result<Vec<Val>, QmpError> {
        let empty = Dict::new();
        let args = arguments.unwrap_or(&empty);
        let vals = members_from_json(&self.params, args, None)?;
        check_unexpected(
            args,
            None,
            |k| self.params.iter().any(|f| f.name == k),
            &field_names(&self.params),
        )?;
        Ok(vals.into_iter().map(|(_, v)| v).collect())
    }

    /// [`Signature::ok_to_json`] taking the value: strings move into the
    /// reply instead of being copied (a 64 MiB base64 read), and `blobs`
    /// hands over the data of each blob the value holds.
    pub fn ok_into_json(&self, ok: Option<Val>, blobs: &mut Blobs<'_>) -> Option<Value> {
        match (&self.returns, ok) {
            (Returns::NoReply, _) => None,
            (Returns::Value(shape), Some(val)) => Some(into_json(shape, val, blobs)),
            (Returns::Empty | Returns::Value(_), _) => Some(Value::Dict(Dict::new())),
        }
    }

    /// The reply for an `ok` value: `None` for a no-reply command.
    pub fn ok_to_json(&self, ok: Option<&Val>) -> Option<Value> {
        match (&self.returns, ok) {
            (Returns::NoReply, _) => None,
            (Returns::Value(shape), Some(val)) => Some(to_json(shape, val)),
            (Returns::Empty | Returns::Value(_), _) => Some(Value::Dict(Dict::new())),
        }
    }
}

fn path(parent: Option<&str>, name: &str) -> String {
    match parent {
        Some(p) => format!("{p}.{name}"),
        None => name.to_owned(),
    }
}

fn invalid_type(name: &str, expected: &str) -> QmpError {
    QmpError::generic(format!("Invalid parameter type for '{name}', expected: {expected}"))
}

fn expects(name: &str, ty: &str) -> QmpError {
    QmpError::generic(format!("Parameter '{name}' expects {ty}"))
}

fn members_from_json(fields: &[Field], dict: &Dict, parent: Option<&str>) -> Result<Vec<(String, Val)>, QmpError> {
    fields
        .iter()
        .map(|f| {
            let name = path(parent, &f.name);
            let val = match (dict.get(&f.name), f.optional) {
                (None, true) => Val::Option(None),
                (None, false) => {
                    return Err(QmpError::generic(format!("Parameter '{name}' is missing")));
                }
                (Some(v), true) => Val::Option(Some(Box::new(from_json(&f.shape, v, &name)?))),
                (Some(v), false) => from_json(&f.shape, v, &name)?,
            };
            Ok((f.name.clone(), val))
        })
        .collect()
}

/// qemu-ga's "unexpected member" check: the dict's keys enter a GLib hash
/// table in QDict order, visited members leave it in visiting order, and the
/// first key left in slot order is reported.
pub(crate) fn check_unexpected(
    dict: &Dict,
    parent: Option<&str>,
    known: impl Fn(&str) -> bool,
    visit_order: &[&str],
) -> Result<(), QmpError> {
    if dict.iter().all(|(k, _)| known(k)) {
        return Ok(());
    }
    let mut left = ghash::KeySet::new();
    for (k, _) in dict.iter_qdict_order() {
        left.insert(k);
    }
    for k in visit_order {
        left.remove(k);
    }
    match left.first() {
        Some(k) => Err(QmpError::generic(format!(
            "Parameter '{}' is unexpected",
            path(parent, k)
        ))),
        None => Ok(()),
    }
}

fn field_names(fields: &[Field]) -> Vec<&str> {
    fields.iter().map(|f| f.name.as_str()).collect()
}

fn int64(v: &Value, name: &str) -> Result<i64, QmpError> {
    match v {
        Value::Int(i) => Ok(*i),
        _ => Err(invalid_type(name, "integer")),
    }
}

fn uint64(v: &Value, name: &str) -> Result<u64, QmpError> {
    match v {
        // qemu-ga casts a negative integer to uint64.
        Value::Int(i) => Ok(*i as u64),
        Value::Uint(u) => Ok(*u),
        _ => Err(expects(name, "uint64")),
    }
}

fn sized<T: TryFrom<i64>>(v: &Value, name: &str, ty: &str) -> Result<T, QmpError> {
    T::try_from(int64(v, name)?).map_err(|_| expects(name, ty))
}

fn usized<T: TryFrom<u64>>(v: &Value, name: &str, ty: &str) -> Result<T, QmpError> {
    T::try_from(uint64(v, name)?).map_err(|_| expects(name, ty))
}

fn number(v: &Value, name: &str) -> Result<f64, QmpError> {
    match v {
        Value::Int(i) => Ok(*i as f64),
        Value::Uint(u) => Ok(*u as f64),
        Value::Double(d) => Ok(*d),
        _ => Err(invalid_type(name, "number")),
    }
}

fn string<'a>(v: &'a Value, name: &str) -> Result<&'a str, QmpError> {
    match v {
        Value::Str(s) => Ok(s),
        _ => Err(invalid_type(name, "string")),
    }
}

fn enum_case(names: &[String], v: &Value, name: &str) -> Result<String, QmpError> {
    let s = string(v, name)?;
    match names.iter().find(|n| *n == s) {
        Some(n) => Ok(n.clone()),
        None => Err(QmpError::generic(format!(
            "Parameter '{name}' does not accept value '{s}'"
        ))),
    }
}

/// One JSON value to the WIT value of `shape`; `name` is qemu's full name.
pub fn from_json(shape: &Shape, v: &Value, name: &str) -> Result<Val, QmpError> {
    Ok(match shape {
        Shape::Bool => match v {
            Value::Bool(b) => Val::Bool(*b),
            _ => return Err(invalid_type(name, "boolean")),
        },
        Shape::S8 => Val::S8(sized(v, name, "int8")?),
        Shape::S16 => Val::S16(sized(v, name, "int16")?),
        Shape::S32 => Val::S32(sized(v, name, "int32")?),
        Shape::S64 => Val::S64(int64(v, name)?),
        Shape::U8 => Val::U8(usized(v, name, "uint8")?),
        Shape::U16 => Val::U16(usized(v, name, "uint16")?),
        Shape::U32 => Val::U32(usized(v, name, "uint32")?),
        Shape::U64 => Val::U64(uint64(v, name)?),
        Shape::F32 => Val::Float32(number(v, name)? as f32),
        Shape::F64 => Val::Float64(number(v, name)?),
        Shape::Str => Val::String(string(v, name)?.to_owned()),
        Shape::Bytes => {
            let bytes = decode_base64(string(v, name)?).map_err(QmpError::generic)?;
            Val::List(bytes.into_iter().map(Val::U8).collect())
        }
        // Refused when the signature is built.
        Shape::Blob => return Err(QmpError::generic(format!("{name}: a blob cannot be an argument"))),
        Shape::List(elem) => match v {
            Value::List(items) => Val::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| from_json(elem, item, &format!("{name}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(invalid_type(name, "array")),
        },
        Shape::Record(fields) => match v {
            Value::Dict(d) => {
                let members = members_from_json(fields, d, Some(name))?;
                check_unexpected(
                    d,
                    Some(name),
                    |k| fields.iter().any(|f| f.name == k),
                    &field_names(fields),
                )?;
                Val::Record(members)
            }
            _ => return Err(invalid_type(name, "object")),
        },
        Shape::Option(inner) => match v {
            Value::Null => Val::Option(None),
            v => Val::Option(Some(Box::new(from_json(inner, v, name)?))),
        },
        Shape::Enum(names) => Val::Enum(enum_case(names, v, name)?),
        Shape::Named(type_name, inner) => match (&**inner, from_json(inner, v, name)) {
            // The only type error an alternate raises itself: no branch
            // takes this JSON kind. qemu-ga names the QAPI type.
            (Shape::Alternate(cases), Err(_)) if !cases.iter().any(|c| c.shape.kind() == json_kind(v)) => {
                return Err(invalid_type(name, type_name));
            }
            (_, result) => result?,
        },
        Shape::Alternate(cases) => {
            let kind = json_kind(v);
            match cases.iter().find(|c| c.shape.kind() == kind) {
                Some(case) => Val::Variant(case.name.clone(), Some(Box::new(from_json(&case.shape, v, name)?))),
                None => return Err(invalid_type(name, &alternate_name(cases))),
            }
        }
        Shape::Union(cases) => {
            let Value::Dict(d) = v else {
                return Err(invalid_type(name, "object"));
            };
            let type_name = path(Some(name), "type");
            let Some(tag) = d.get("type") else {
                return Err(QmpError::generic(format!("Parameter '{type_name}' is missing")));
            };
            let names: Vec<String> = cases.iter().map(|c| c.name.clone()).collect();
            let tag = enum_case(&names, tag, &type_name)?;
            let case = cases.iter().find(|c| c.name == tag).expect("tag is a case name");
            let fields = case.fields.as_deref().unwrap_or(&[]);
            let members = members_from_json(fields, d, Some(name))?;
            let mut visited = vec!["type"];
            visited.extend(field_names(fields));
            check_unexpected(
                d,
                Some(name),
                |k| k == "type" || fields.iter().any(|f| f.name == k),
                &visited,
            )?;
            let payload = case.fields.as_ref().map(|_| Box::new(Val::Record(members)));
            Val::Variant(tag, payload)
        }
    })
}

fn json_kind(v: &Value) -> Kind {
    match v {
        Value::Int(_) | Value::Uint(_) | Value::Double(_) => Kind::Number,
        Value::Str(_) => Kind::Str,
        Value::Bool(_) => Kind::Bool,
        Value::Dict(_) => Kind::Object,
        Value::List(_) => Kind::Array,
        Value::Null => Kind::Null,
    }
}

/// qemu-ga names the alternate's QAPI type; component types are structural,
/// so the converter names the JSON kinds it accepts instead.
fn alternate_name(cases: &[Case]) -> String {
    let kinds: Vec<&str> = cases
        .iter()
        .map(|c| match c.shape {
            Shape::F32 | Shape::F64 => "number",
            _ => match c.shape.kind() {
                Kind::Number => "integer",
                Kind::Str => "string",
                Kind::Bool => "boolean",
                Kind::Object => "object",
                Kind::Array => "array",
                Kind::Null => "null",
            },
        })
        .collect();
    kinds.join(" or ")
}

pub use qga_text::base64::decode_base64;

/// A WIT value back to JSON. Records become dicts in field order with
/// absent options omitted.
pub fn to_json(shape: &Shape, val: &Val) -> Value {
    match (shape, val) {
        (_, Val::Bool(b)) => Value::Bool(*b),
        (_, Val::S8(i)) => Value::Int(i64::from(*i)),
        (_, Val::S16(i)) => Value::Int(i64::from(*i)),
        (_, Val::S32(i)) => Value::Int(i64::from(*i)),
        (_, Val::S64(i)) => Value::Int(*i),
        (_, Val::U8(i)) => Value::Int(i64::from(*i)),
        (_, Val::U16(i)) => Value::Int(i64::from(*i)),
        (_, Val::U32(i)) => Value::Int(i64::from(*i)),
        (_, Val::U64(u)) => Value::Uint(*u),
        (_, Val::Float32(f)) => Value::Double(f64::from(*f)),
        (_, Val::Float64(f)) => Value::Double(*f),
        (_, Val::String(s)) => Value::Str(s.clone()),
        (_, Val::Enum(s)) => Value::Str(s.clone()),
        (Shape::Bytes, Val::List(items)) => {
            let bytes: Vec<u8> = items
                .iter()
                .map(|v| match v {
                    Val::U8(b) => *b,
                    _ => 0,
                })
                .collect();
            Value::Str(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        (Shape::List(elem), Val::List(items)) => Value::List(items.iter().map(|v| to_json(elem, v)).collect()),
        (Shape::Record(fields), Val::Record(members)) => Value::Dict(record_to_json(fields, members)),
        (Shape::Option(inner), Val::Option(Some(v))) => to_json(inner, v),
        (Shape::Option(_), Val::Option(None)) => Value::Null,
        (Shape::Named(_, inner), v) => to_json(inner, v),
        (Shape::Alternate(cases), Val::Variant(case, Some(payload))) => match cases.iter().find(|c| c.name == *case) {
            Some(c) => to_json(&c.shape, payload),
            None => Value::Null,
        },
        (Shape::Union(cases), Val::Variant(case, payload)) => {
            let mut d = Dict::new();
            d.insert("type", Value::Str(case.clone()));
            if let (
                Some(UnionCase {
                    fields: Some(fields), ..
                }),
                Some(p),
            ) = (cases.iter().find(|c| c.name == *case), payload)
                && let Val::Record(members) = &**p
            {
                for (k, v) in record_to_json(fields, members).iter() {
                    d.insert(k, v.clone());
                }
            }
            Value::Dict(d)
        }
        // The value does not have the shape the export type promised:
        // cannot happen for values wasmtime lifted against that type.
        _ => Value::Null,
    }
}

/// Takes a blob out of the call's resource table: its base64 text.
pub type Blobs<'a> = dyn FnMut(ResourceAny) -> Option<String> + 'a;

/// [`to_json`] by value: strings (and records and lists holding them) are
/// moved, not copied; blobs are taken with `blobs`; everything else as
/// [`to_json`].
pub fn into_json(shape: &Shape, val: Val, blobs: &mut Blobs<'_>) -> Value {
    match (shape, val) {
        (Shape::Named(_, inner), v) => into_json(inner, v, blobs),
        (Shape::Str, Val::String(s)) => Value::Str(s),
        // Only the host makes blobs, so one is always there to take.
        (Shape::Blob, Val::Resource(blob)) => blobs(blob).map_or(Value::Null, Value::Str),
        (Shape::Option(inner), Val::Option(Some(v))) => into_json(inner, *v, blobs),
        (Shape::List(elem), Val::List(items)) => {
            Value::List(items.into_iter().map(|v| into_json(elem, v, blobs)).collect())
        }
        (Shape::Record(fields), Val::Record(members)) => {
            let mut d = Dict::new();
            for (field, (name, val)) in fields.iter().zip(members) {
                match (field.optional, val) {
                    (true, Val::Option(None)) => {}
                    (true, Val::Option(Some(v))) => d.insert(name, into_json(&field.shape, *v, blobs)),
                    (_, v) => d.insert(name, into_json(&field.shape, v, blobs)),
                }
            }
            Value::Dict(d)
        }
        (shape, val) => to_json(shape, &val),
    }
}

fn record_to_json(fields: &[Field], members: &[(String, Val)]) -> Dict {
    let mut d = Dict::new();
    for (field, (name, val)) in fields.iter().zip(members) {
        match (field.optional, val) {
            (true, Val::Option(None)) => {}
            (true, Val::Option(Some(v))) => d.insert(name.clone(), to_json(&field.shape, v)),
            (_, v) => d.insert(name.clone(), to_json(&field.shape, v)),
        }
    }
    d
}

/// The `desc` of a command's error value (`qga-error { desc }`, or a bare
/// string).
pub fn error_desc(err: Option<&Val>) -> String {
    match err {
        Some(Val::Record(members)) => members
            .iter()
            .find_map(|(k, v)| match (k.as_str(), v) {
                ("desc", Val::String(s)) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "handler failed".to_owned()),
        Some(Val::String(s)) => s.clone(),
        _ => "handler failed".to_owned(),
    }
}

#[cfg(test)]
mod tests;
