//! Arrays: JSON array text <-> PostgreSQL's binary array format (or an
//! array literal for element types sent as text).

use tokio_postgres::types::Type;

use super::{decode, encode, float_text, hex_text, BoxError, Reader};
use crate::value::Value;

/// The dimensions of a (possibly nested) JSON array: `[[1,2],[3,4]]` is
/// `[2, 2]`. Nested arrays must be rectangular; JSON and JSONB elements are
/// never nested dimensions (a JSON array is one element).
fn array_dims(items: &[serde_json::Value], element: &Type) -> Result<Vec<usize>, String> {
    let mut dims = vec![items.len()];
    if matches!(*element, Type::JSON | Type::JSONB) {
        return Ok(dims);
    }
    let mut level = items;
    while let Some(serde_json::Value::Array(inner)) = level.first() {
        dims.push(inner.len());
        level = inner;
    }
    if dims.len() > 6 {
        return Err("arrays have at most 6 dimensions".into());
    }
    Ok(dims)
}

/// The leaves of a nested JSON array in row-major order, checking that it
/// has exactly the dimensions `dims`.
fn flatten<'j>(
    items: &'j [serde_json::Value],
    dims: &[usize],
    out: &mut Vec<&'j serde_json::Value>,
) -> Result<(), String> {
    if items.len() != dims[0] {
        return Err(
            "multidimensional arrays must be rectangular (sub-arrays of equal length)".into(),
        );
    }
    for item in items {
        match (item, dims.len()) {
            (serde_json::Value::Array(inner), n) if n > 1 => flatten(inner, &dims[1..], out)?,
            (serde_json::Value::Array(_), _) => {
                return Err(
                    "multidimensional arrays must be rectangular (sub-arrays of equal length)"
                        .into(),
                )
            }
            (_, n) if n > 1 => {
                return Err(
                    "multidimensional arrays must be rectangular (sub-arrays of equal length)"
                        .into(),
                )
            }
            (leaf, _) => out.push(leaf),
        }
    }
    Ok(())
}

pub(super) fn encode_array(
    items: &[serde_json::Value],
    element: &Type,
    out: &mut bytes::BytesMut,
) -> Result<(), String> {
    use bytes::BufMut;
    if items.is_empty() {
        out.put_i32(0); // no dimensions: the empty array
        out.put_i32(0);
        out.put_u32(element.oid());
        return Ok(());
    }
    let dims = array_dims(items, element)?;
    let mut leaves = Vec::new();
    if matches!(*element, Type::JSON | Type::JSONB) {
        // A JSON array inside is one element, not a dimension.
        leaves.extend(items);
    } else {
        flatten(items, &dims, &mut leaves)?;
    }
    let has_null = leaves.iter().any(|v| v.is_null());
    out.put_i32(dims.len() as i32);
    out.put_i32(i32::from(has_null));
    out.put_u32(element.oid());
    for d in &dims {
        out.put_i32(i32::try_from(*d).map_err(|_| "array too long")?);
        out.put_i32(1); // lower bound
    }
    for item in leaves {
        let value = match item {
            serde_json::Value::Null => {
                out.put_i32(-1);
                continue;
            }
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int64(i),
                None if matches!(*element, Type::NUMERIC | Type::JSON | Type::JSONB) => {
                    Value::Text(n.to_string())
                }
                None => Value::Double(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) if matches!(*element, Type::JSON | Type::JSONB) => {
                // A JSON string element is the JSON string, quotes and all.
                Value::Text(item.to_string())
            }
            serde_json::Value::String(s) => Value::Text(s.clone()),
            nested => {
                if matches!(*element, Type::JSON | Type::JSONB) {
                    Value::Text(nested.to_string())
                } else {
                    return Err(format!("element {nested} is not a {}", element.name()));
                }
            }
        };
        let len_at = out.len();
        out.put_i32(0);
        encode(&value, element, out).map_err(|e| {
            let why = e.to_string();
            // "cannot bind ... to a parameter of type int4: out of range"
            match why.split_once(" to a parameter of type ") {
                Some((what, rest)) => format!("element: {what} to an array element of type {rest}"),
                None => why,
            }
        })?;
        let len = i32::try_from(out.len() - len_at - 4).map_err(|_| "element too large")?;
        out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
    }
    Ok(())
}

/// A PostgreSQL array literal (`{"a",NULL,{"b"}}`) from a JSON array, for
/// arrays of types sent as text.
pub(super) fn array_literal(items: &[serde_json::Value], out: &mut String) {
    out.push('{');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match item {
            serde_json::Value::Null => out.push_str("NULL"),
            serde_json::Value::Array(inner) => array_literal(inner, out),
            serde_json::Value::String(s) => push_quoted(out, s),
            other => push_quoted(out, &other.to_string()),
        }
    }
    out.push('}');
}

/// `"text"` with `"` and `\` backslash-escaped (array and hstore literal
/// syntax).
pub(super) fn push_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// An array as JSON: nested arrays for more than one dimension, lower
/// bounds dropped.
pub(super) fn decode_array(element: &Type, raw: &[u8]) -> Result<String, BoxError> {
    let mut r = Reader(raw);
    let ndim = r.i32()?;
    let _has_null = r.i32()?;
    let _oid = r.u32()?;
    if ndim <= 0 {
        return Ok("[]".into());
    }
    let mut dims = Vec::with_capacity(ndim as usize);
    for _ in 0..ndim {
        dims.push(r.i32()?.max(0) as usize);
        let _lower = r.i32()?;
    }
    let total: usize = dims.iter().product();
    let mut items = Vec::with_capacity(total.min(raw.len()));
    for _ in 0..total {
        let n = r.i32()?;
        let value = if n < 0 {
            Value::Null
        } else {
            decode(element, r.take(n as usize)?)?
        };
        items.push(json_of(element, value));
    }
    let mut items = items.into_iter();
    Ok(nest(&dims, &mut items).to_string())
}

fn nest(dims: &[usize], items: &mut impl Iterator<Item = serde_json::Value>) -> serde_json::Value {
    match dims {
        [] => items.next().unwrap_or(serde_json::Value::Null),
        [n, rest @ ..] => serde_json::Value::Array((0..*n).map(|_| nest(rest, items)).collect()),
    }
}

/// One array element as JSON: numbers and booleans as such (NaN and the
/// infinities as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`), json
/// and jsonb as JSON values, bytea as `\x` hex strings, the rest as strings.
fn json_of(element: &Type, value: Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => b.into(),
        Value::Int64(i) => i.into(),
        Value::Double(d) => serde_json::Number::from_f64(d)
            .map(serde_json::Value::Number)
            .unwrap_or_else(|| float_text(d).into()),
        Value::Text(t) if matches!(*element, Type::JSON | Type::JSONB) => {
            serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t))
        }
        Value::Text(t) => t.into(),
        Value::Blob(b) => hex_text(&b).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_literals() {
        let items: Vec<serde_json::Value> =
            serde_json::from_str(r#"["a\"b", null, ["x,y"], 1, true]"#).unwrap();
        let mut s = String::new();
        array_literal(&items, &mut s);
        assert_eq!(s, r#"{"a\"b",NULL,{"x,y"},"1","true"}"#);
    }
}
