//! `${NAME}` in a grant manifest: the agent's environment, read when a
//! command's grant is computed (at load), never by the handler.
//!
//! In an element of a string list, `${NAME}` is the value of the agent's
//! environment variable NAME and `${NAME:-default}` the same with a default
//! when NAME is unset. An element holding a `${NAME}` without
//! default whose NAME is unset is dropped; duplicates after substitution
//! are dropped. Only the manifests that ship in the binary may use them:
//! a policy's values are literal.

use thiserror::Error;

use crate::capabilities::setting::SettingValue;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PlaceholderError {
    #[error("unterminated placeholder in '{0}' (write ${{NAME}} or ${{NAME:-default}})")]
    Unterminated(String),
    #[error("bad variable name '{name}' in '{text}' (letters, digits and _)")]
    BadName { name: String, text: String },
}

/// One piece of a string: literal text or a variable with its default.
enum Piece<'a> {
    Text(&'a str),
    Var { name: &'a str, default: Option<&'a str> },
}

fn pieces(text: &str) -> Result<Vec<Piece<'_>>, PlaceholderError> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push(Piece::Text(&rest[..at]));
        let inner = &rest[at + 2..];
        let end = inner
            .find('}')
            .ok_or_else(|| PlaceholderError::Unterminated(text.to_owned()))?;
        let body = &inner[..end];
        let (name, default) = match body.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (body, None),
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(PlaceholderError::BadName {
                name: name.to_owned(),
                text: text.to_owned(),
            });
        }
        out.push(Piece::Var { name, default });
        rest = &inner[end + 1..];
    }
    out.push(Piece::Text(rest));
    Ok(out)
}

/// Check the placeholders of `text`.
pub fn check(text: &str) -> Result<(), PlaceholderError> {
    pieces(text).map(|_| ())
}

/// `text` with its placeholders replaced; None when it names an unset
/// variable without default (the element is dropped).
pub fn substitute(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>, PlaceholderError> {
    let mut out = String::new();
    for piece in pieces(text)? {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Var { name, default } => match (env(name), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return Ok(None),
            },
        }
    }
    Ok(Some(out))
}

/// A setting's value with the placeholders of its strings replaced.
pub fn resolve(value: &SettingValue, env: &dyn Fn(&str) -> Option<String>) -> Result<SettingValue, PlaceholderError> {
    let list = |items: &[String]| -> Result<Vec<String>, PlaceholderError> {
        let mut out: Vec<String> = Vec::new();
        for item in items {
            if let Some(s) = substitute(item, env)?
                && !out.contains(&s)
            {
                out.push(s);
            }
        }
        Ok(out)
    };
    Ok(match value {
        SettingValue::Strings(items) => SettingValue::Strings(list(items)?),
        SettingValue::Argvs(argvs) => SettingValue::Argvs(
            argvs
                .iter()
                .map(|argv| {
                    argv.iter()
                        .map(|a| Ok(substitute(a, env)?.unwrap_or_default()))
                        .collect::<Result<Vec<_>, PlaceholderError>>()
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        SettingValue::Bytes(_) | SettingValue::Duration(_) | SettingValue::Bool(_) => value.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_unset_and_defaults() {
        let env = |k: &str| (k == "A").then(|| "/a".to_owned());
        assert_eq!(substitute("${A}", &env), Ok(Some("/a".into())));
        assert_eq!(substitute("${B}", &env), Ok(None));
        assert_eq!(substitute("${B:-/b}", &env), Ok(Some("/b".into())));
        assert_eq!(substitute("X=${A}", &env), Ok(Some("X=/a".into())));
        assert_eq!(substitute("plain", &env), Ok(Some("plain".into())));
        assert!(check("${A").is_err());
        assert!(check("${A B}").is_err());
        let v = SettingValue::Strings(vec!["${A:-/x}".into(), "${A:-/y}".into()]);
        assert_eq!(resolve(&v, &env), Ok(SettingValue::Strings(vec!["/a".into()])));
        assert_eq!(
            resolve(&v, &|_| None),
            Ok(SettingValue::Strings(vec!["/x".into(), "/y".into()]))
        );
    }
}
