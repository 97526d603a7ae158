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
//!
//! [`shape`] builds the shapes, [`from_json`] converts a request's
//! arguments, [`to_json`] converts a result back.

mod from_json;
mod ghash;
mod shape;
mod to_json;

use wasmtime::component::Val;
use wasmtime::component::types::Type;

use crate::protocol::QmpError;
use crate::qobject::{Dict, Value};

pub(crate) use from_json::check_unexpected;
pub use from_json::from_json;
use from_json::{field_names, members_from_json};
pub use qga_text::base64::decode_base64;
use shape::fields_of;
pub use shape::{Case, Field, Returns, Shape, ShapeError, Signature, TypeNames, UnionCase, qapi_type_name};
pub use to_json::{Blobs, error_desc, into_json, to_json};

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

#[cfg(test)]
mod tests;
