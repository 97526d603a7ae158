//! [`Shape`]: what a WIT type looks like on the wire, built once per
//! export from wasmtime's component types at load time.

use thiserror::Error;
use wasmtime::component::types::Type;

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
pub(super) enum Kind {
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
    pub(super) fn holds_blob(&self) -> bool {
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

    pub(super) fn kind(&self) -> Kind {
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

pub(super) fn fields_of<'a>(
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
