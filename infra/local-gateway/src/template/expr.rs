//! The values the template writes with intrinsic functions (`Ref`, `GetAtt`, `Sub`, `Join`),
//! read into [`Expr`] for the stack to resolve; any other form is an error, never a guess.

use super::{shape, TemplateError};
use serde_norway::Value;

/// A value that may refer to another resource or a parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(String),
    Ref(String),
    GetAtt(String, String),
    /// `!Sub` text with `${Name}` / `${Name.Attribute}` placeholders.
    Sub(String),
    /// `!Join [separator, [parts]]`; a part that is a list parameter's `!Ref` is its text.
    Join(String, Vec<Expr>),
}

pub(super) fn expr(v: &Value) -> Result<Expr, TemplateError> {
    match v {
        Value::String(s) => Ok(Expr::Literal(s.clone())),
        Value::Number(n) => Ok(Expr::Literal(n.to_string())),
        Value::Bool(b) => Ok(Expr::Literal(b.to_string())),
        Value::Tagged(t) if t.tag == "Ref" => Ok(Expr::Ref(str_of(&t.value)?.to_owned())),
        Value::Tagged(t) if t.tag == "Sub" => Ok(Expr::Sub(str_of(&t.value)?.to_owned())),
        Value::Tagged(t) if t.tag == "Join" => join(&t.value),
        Value::Tagged(t) if t.tag == "GetAtt" => {
            let s = str_of(&t.value)?;
            let (res, att) = s
                .split_once('.')
                .ok_or_else(|| shape(format!("bad GetAtt {s}")))?;
            Ok(Expr::GetAtt(res.to_owned(), att.to_owned()))
        }
        Value::Mapping(m) if m.len() == 1 => {
            if let Some(r) = m.get("Ref") {
                return Ok(Expr::Ref(str_of(r)?.to_owned()));
            }
            if let Some(args) = m.get("Fn::Join") {
                return join(args);
            }
            if let Some(text) = m.get("Fn::Sub") {
                return Ok(Expr::Sub(str_of(text)?.to_owned()));
            }
            if let Some(Value::Sequence(parts)) = m.get("Fn::GetAtt") {
                if let [res, att] = parts.as_slice() {
                    return Ok(Expr::GetAtt(
                        str_of(res)?.to_owned(),
                        str_of(att)?.to_owned(),
                    ));
                }
            }
            Err(shape(format!("unsupported intrinsic {v:?}")))
        }
        other => Err(shape(format!("unsupported value {other:?}"))),
    }
}

fn join(args: &Value) -> Result<Expr, TemplateError> {
    let Some([separator, parts]) = args.as_sequence().map(Vec::as_slice) else {
        return Err(shape(format!("bad Join {args:?}")));
    };
    let parts = match parts.as_sequence() {
        Some(list) => list.iter().map(expr).collect::<Result<_, _>>()?,
        None => vec![expr(parts)?],
    };
    Ok(Expr::Join(str_of(separator)?.to_owned(), parts))
}

pub(super) fn str_of(v: &Value) -> Result<&str, TemplateError> {
    v.as_str()
        .ok_or_else(|| shape(format!("expected a string, got {v:?}")))
}

pub(super) fn pairs(
    v: Option<&Value>,
    a: &str,
    b: &str,
) -> Result<Vec<(String, String)>, TemplateError> {
    let seq = v
        .and_then(Value::as_sequence)
        .ok_or_else(|| shape(format!("missing list of {a}/{b}")))?;
    seq.iter()
        .map(|e| Ok((str_of(&e[a])?.to_owned(), str_of(&e[b])?.to_owned())))
        .collect()
}
