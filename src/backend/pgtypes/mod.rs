//! PostgreSQL binary wire format <-> [`Value`], for every type in the
//! documented type table (`docs/types.md`).
//!
//! Types without a C kind of their own travel as text: numeric as an exact
//! decimal string, dates and times as ISO 8601, intervals as ISO 8601
//! durations, uuid, json, inet, and arrays as JSON arrays. Types outside
//! the table are bound as text (parsed by the server) and come back as
//! text close to PostgreSQL's own output, never as an error.
//!
//! This file holds the two dispatches (`encode` for parameters, `decode`
//! for cells) and the helpers every family shares; each type family's
//! conversions live in their own module.

mod array;
mod columns;
mod datetime;
mod network;
mod numeric;
mod other;

use std::error::Error as StdError;
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use tokio_postgres::types::{Format, FromSql, IsNull, Kind as PgKind, ToSql, Type};

use crate::value::Value;
use array::{array_literal, decode_array, encode_array};
pub use columns::{ColumnDecoder, RawCell};
use datetime::{
    decode_interval, format_time, format_timestamp, parse_date, parse_time_micros,
    parse_timestamp_micros, write_timestamp, LastDay, NO_DAY, PG_EPOCH_OFFSET_MICROS,
};
pub use datetime::{format_iso_duration, parse_iso_duration};
use network::{decode_inet, encode_inet};
pub use numeric::decode_numeric;
use numeric::{encode_numeric, format_double_for_numeric, parse_float};
use other::decode_other;

type BoxError = Box<dyn StdError + Sync + Send>;

/// A parameter bind failure that names what is wrong; surfaced as
/// `SQLPOOL_PARAMETER_ERROR`.
#[derive(Debug)]
pub struct BindError(pub String);

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for BindError {}

fn bind_err(value: &Value, ty: &Type, why: &str) -> BoxError {
    let shown = match value {
        Value::Text(s) if s.len() > 40 => {
            format!("text {:?}...", &s[..s.floor_char_boundary_compat(40)])
        }
        Value::Text(s) => format!("text {s:?}"),
        Value::Blob(b) => format!("blob of {} bytes", b.len()),
        Value::Int64(i) => format!("int64 {i}"),
        Value::Double(d) => format!("double {d}"),
        Value::Bool(b) => format!("bool {b}"),
        Value::Null => "null".into(),
    };
    let sep = if why.is_empty() { "" } else { ": " };
    let ty_name = match ty.kind() {
        PgKind::Array(element) => format!("{}[]", element.name()),
        _ => ty.name().to_owned(),
    };
    Box::new(BindError(format!(
        "cannot bind {shown} to a parameter of type {ty_name}{sep}{why}"
    )))
}

trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while i > 0 && !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

/// A parameter value that adapts to the type the server expects.
///
/// Types in the type table are sent in PostgreSQL's binary format; any
/// other type (ranges, timetz, money, composites, extension types, arrays
/// of those, ...) is sent as text and parsed by the server's own input
/// function, so `'[1,5)'` binds to an `int4range` parameter.
#[derive(Debug)]
pub struct PgParam<'a>(pub &'a Value);

impl ToSql for PgParam<'_> {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        encode(self.0, ty, out)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, ty: &Type) -> Format {
        if sent_as_binary(ty) {
            Format::Binary
        } else {
            Format::Text
        }
    }

    tokio_postgres::types::to_sql_checked!();
}

/// Checks that `value` can be bound to a parameter of type `ty` (the
/// encoding is done and thrown away), so a bad value is reported, naming
/// its parameter, before anything is sent. The message says what is wrong.
pub fn check_bind(value: &Value, ty: &Type) -> Result<(), String> {
    match value {
        Value::Null => return Ok(()),
        Value::Blob(_) if *ty == Type::BYTEA => return Ok(()),
        Value::Text(_) if is_texty(ty) => return Ok(()),
        _ => {}
    }
    let mut scratch = bytes::BytesMut::new();
    encode(value, ty, &mut scratch)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Whether parameters of `ty` are sent in binary (the types this module
/// encodes itself) or as text for the server to parse.
fn sent_as_binary(ty: &Type) -> bool {
    match *ty {
        // A parameter left for the server to type (its value is text the
        // server parses once it knows the type).
        Type::UNKNOWN => false,
        Type::BOOL
        | Type::INT2
        | Type::INT4
        | Type::INT8
        | Type::OID
        | Type::FLOAT4
        | Type::FLOAT8
        | Type::NUMERIC
        | Type::BYTEA
        | Type::UUID
        | Type::JSON
        | Type::JSONB
        | Type::DATE
        | Type::TIME
        | Type::TIMESTAMP
        | Type::TIMESTAMPTZ
        | Type::INTERVAL
        | Type::INET
        | Type::CIDR
        | Type::CHAR => true,
        _ if is_texty(ty) => true,
        _ => match ty.kind() {
            PgKind::Array(element) => sent_as_binary(element),
            PgKind::Domain(base) => sent_as_binary(base),
            // The binary form of an enum value is its label.
            PgKind::Enum(_) => true,
            _ => false,
        },
    }
}

fn encode(value: &Value, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
    use bytes::BufMut;
    if let Value::Null = value {
        return Ok(IsNull::Yes);
    }
    let fail = |why: &str| Err(bind_err(value, ty, why));
    match *ty {
        Type::BOOL => match value {
            Value::Bool(b) => out.put_u8(u8::from(*b)),
            Value::Int64(i @ (0 | 1)) => out.put_u8(*i as u8),
            Value::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
                "t" | "true" | "1" | "yes" | "on" | "y" => out.put_u8(1),
                "f" | "false" | "0" | "no" | "off" | "n" => out.put_u8(0),
                _ => return fail("not a boolean"),
            },
            _ => return fail(""),
        },
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => {
            let n: i64 = match value {
                Value::Int64(i) => *i,
                Value::Bool(b) => i64::from(*b),
                Value::Double(d) if d.fract() == 0.0 && d.abs() < 9.2e18 => *d as i64,
                Value::Double(d) if d.is_finite() && d.fract() == 0.0 => {
                    return fail(&format!("out of range for {}", ty.name()))
                }
                Value::Text(s) => s.trim().parse().map_err(|_| {
                    // An integer too big for 64 bits is out of range, not
                    // "not an integer" (Python's 2**70 arrives as text).
                    let t = s.trim();
                    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
                    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                        bind_err(value, ty, &format!("out of range for {}", ty.name()))
                    } else {
                        bind_err(value, ty, "not an integer")
                    }
                })?,
                _ => return fail(""),
            };
            let range_err = || bind_err(value, ty, &format!("out of range for {}", ty.name()));
            match *ty {
                Type::INT2 => out.put_i16(i16::try_from(n).map_err(|_| range_err())?),
                Type::INT4 => out.put_i32(i32::try_from(n).map_err(|_| range_err())?),
                Type::OID => out.put_u32(u32::try_from(n).map_err(|_| range_err())?),
                _ => out.put_i64(n),
            }
        }
        Type::FLOAT4 | Type::FLOAT8 => {
            let f = match value {
                Value::Double(d) => *d,
                Value::Int64(i) => *i as f64,
                Value::Text(s) => {
                    parse_float(s).ok_or_else(|| bind_err(value, ty, "not a number"))?
                }
                _ => return fail(""),
            };
            if *ty == Type::FLOAT4 {
                out.put_f32(f as f32);
            } else {
                out.put_f64(f);
            }
        }
        Type::NUMERIC => {
            let text = match value {
                Value::Int64(i) => i.to_string(),
                Value::Double(d) => format_double_for_numeric(*d),
                Value::Text(s) => s.trim().to_owned(),
                _ => return fail(""),
            };
            encode_numeric(&text, out).map_err(|why| bind_err(value, ty, why))?;
        }
        Type::BYTEA => match value {
            Value::Blob(b) => out.put_slice(b),
            Value::Text(s) => out.put_slice(s.as_bytes()),
            _ => return fail(""),
        },
        Type::UUID => {
            let id = match value {
                Value::Text(s) => uuid::Uuid::parse_str(s.trim())
                    .map_err(|_| bind_err(value, ty, "not a UUID"))?,
                Value::Blob(b) => uuid::Uuid::from_slice(b)
                    .map_err(|_| bind_err(value, ty, "a UUID blob has 16 bytes"))?,
                _ => return fail(""),
            };
            out.put_slice(id.as_bytes());
        }
        Type::JSON | Type::JSONB => {
            let text = match value {
                Value::Text(s) => {
                    serde_json::from_str::<serde_json::Value>(s)
                        .map_err(|e| bind_err(value, ty, &format!("not valid JSON ({e})")))?;
                    s.clone()
                }
                Value::Int64(i) => i.to_string(),
                Value::Double(d) if d.is_finite() => d.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return fail(""),
            };
            if *ty == Type::JSONB {
                out.put_u8(1);
            }
            out.put_slice(text.as_bytes());
        }
        Type::DATE => {
            let Value::Text(s) = value else {
                return fail("dates are bound as text YYYY-MM-DD");
            };
            match s.trim() {
                "infinity" | "+infinity" => out.put_i32(i32::MAX),
                "-infinity" => out.put_i32(i32::MIN),
                t => {
                    let date =
                        parse_date(t).ok_or_else(|| bind_err(value, ty, "expected YYYY-MM-DD"))?;
                    return date.to_sql(ty, out);
                }
            }
        }
        Type::TIME => {
            let micros = match value {
                Value::Text(s) => parse_time_micros(s)
                    .ok_or_else(|| bind_err(value, ty, "expected HH:MM[:SS[.ffffff]]"))?,
                _ => return fail("times are bound as text HH:MM:SS[.ffffff]"),
            };
            out.put_i64(micros);
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let with_zone = *ty == Type::TIMESTAMPTZ;
            let pg_micros = match value {
                Value::Int64(us) => us
                    .checked_sub(PG_EPOCH_OFFSET_MICROS)
                    .ok_or_else(|| bind_err(value, ty, "out of range"))?,
                Value::Text(s) => match s.trim() {
                    "infinity" | "+infinity" => i64::MAX,
                    "-infinity" => i64::MIN,
                    t => parse_timestamp_micros(t, with_zone)
                        .and_then(|us| us.checked_sub(PG_EPOCH_OFFSET_MICROS))
                        .ok_or_else(|| {
                            bind_err(
                                value,
                                ty,
                                "expected ISO 8601 such as 2024-01-31 12:00:00[.ffffff][+02:00]",
                            )
                        })?,
                },
                _ => return fail(""),
            };
            // PostgreSQL counts microseconds from 2000-01-01.
            out.put_i64(pg_micros);
        }
        Type::INTERVAL => {
            let (months, days, micros) = match value {
                Value::Int64(us) => (0, 0, *us),
                Value::Text(s) => parse_iso_duration(s).ok_or_else(|| {
                    bind_err(
                        value,
                        ty,
                        "expected an ISO 8601 duration such as P1DT2H or PT0.5S",
                    )
                })?,
                _ => return fail(""),
            };
            out.put_i64(micros);
            out.put_i32(days);
            out.put_i32(months);
        }
        Type::INET | Type::CIDR => {
            let Value::Text(s) = value else {
                return fail("");
            };
            encode_inet(s.trim(), *ty == Type::CIDR, out)
                .map_err(|why| bind_err(value, ty, why))?;
        }
        Type::CHAR => {
            let Value::Text(s) = value else {
                return fail("");
            };
            let byte = match s.as_bytes() {
                [] => 0,
                [b] => *b,
                [b'\\', d @ ..] if d.len() == 3 && d.iter().all(|c| (b'0'..=b'7').contains(c)) => {
                    u8::from_str_radix(&s[1..], 8)
                        .map_err(|_| bind_err(value, ty, "octal escape out of range"))?
                }
                _ => return fail("a \"char\" holds one byte"),
            };
            out.put_u8(byte);
        }
        _ => match ty.kind() {
            PgKind::Array(element) => {
                let Value::Text(s) = value else {
                    return fail("arrays are bound as JSON array text such as [1, 2, null]");
                };
                let items: Vec<serde_json::Value> = serde_json::from_str(s).map_err(|_| {
                    bind_err(value, ty, "expected a JSON array such as [1, 2, null]")
                })?;
                if sent_as_binary(element) {
                    encode_array(&items, element, out).map_err(|e| bind_err(value, ty, &e))?;
                } else {
                    let mut literal = String::new();
                    array_literal(&items, &mut literal);
                    out.put_slice(literal.as_bytes());
                }
            }
            PgKind::Domain(base) => return encode(value, base, out),
            PgKind::Enum(_) => match value {
                Value::Text(s) => out.put_slice(s.as_bytes()),
                _ => return fail("enum values are bound as text"),
            },
            // text, varchar, char(n), name: the binary form is the text.
            _ if is_texty(ty) => match value {
                Value::Text(s) => out.put_slice(s.as_bytes()),
                Value::Int64(i) => out.put_slice(i.to_string().as_bytes()),
                Value::Double(d) => out.put_slice(float_text(*d).as_bytes()),
                Value::Bool(b) => out.put_slice(b.to_string().as_bytes()),
                _ => return fail(""),
            },
            // Anything else goes as text (see `encode_format`): the server's
            // input function parses it.
            _ => match value {
                Value::Text(s) => out.put_slice(s.as_bytes()),
                Value::Int64(i) => out.put_slice(i.to_string().as_bytes()),
                Value::Double(d) => out.put_slice(float_text(*d).as_bytes()),
                Value::Bool(b) => out.put_slice(b.to_string().as_bytes()),
                _ => return fail("values of this type are bound as text"),
            },
        },
    }
    Ok(IsNull::No)
}

fn is_texty(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
    )
}

/// `float8` text as PostgreSQL spells it: `NaN`, `Infinity`, `-Infinity`,
/// otherwise the shortest decimal that reads back as the same double.
fn float_text(d: f64) -> String {
    if d.is_nan() {
        "NaN".into()
    } else if d.is_infinite() {
        if d > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        }
    } else {
        d.to_string()
    }
}

/// Decodes one non-NULL cell. Types in the type table decode exactly (an
/// error means corrupt data); every other type comes back as text, never
/// as an error (see `decode_other`).
pub fn decode(ty: &Type, raw: &[u8]) -> Result<Value, BoxError> {
    Ok(match *ty {
        Type::BOOL => Value::Bool(bool::from_sql(ty, raw)?),
        Type::INT2 => Value::Int64(i16::from_sql(ty, raw)?.into()),
        Type::INT4 => Value::Int64(i32::from_sql(ty, raw)?.into()),
        Type::INT8 => Value::Int64(i64::from_sql(ty, raw)?),
        Type::OID => Value::Int64(u32::from_sql(ty, raw)?.into()),
        Type::FLOAT4 => Value::Double(f32::from_sql(ty, raw)?.into()),
        Type::FLOAT8 => Value::Double(f64::from_sql(ty, raw)?),
        Type::BYTEA => Value::Blob(raw.to_vec()),
        Type::NUMERIC => Value::Text(decode_numeric(raw)?),
        Type::DATE => Value::Text(match i32::from_sql(ty, raw)? {
            i32::MAX => "infinity".into(),
            i32::MIN => "-infinity".into(),
            _ => NaiveDate::from_sql(ty, raw)?.format("%Y-%m-%d").to_string(),
        }),
        Type::TIME => Value::Text(format_time(Reader(raw).i64()?)),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            Value::Text(match i64::from_sql(&Type::INT8, raw)? {
                i64::MAX => "infinity".into(),
                i64::MIN => "-infinity".into(),
                pg_micros => match format_timestamp(pg_micros, *ty == Type::TIMESTAMPTZ) {
                    Some(text) => text,
                    // Outside years 1..=9999: chrono's forms.
                    None if *ty == Type::TIMESTAMP => NaiveDateTime::from_sql(ty, raw)?
                        .format("%Y-%m-%d %H:%M:%S%.f")
                        .to_string(),
                    None => DateTime::<Utc>::from_sql(ty, raw)?
                        .format("%Y-%m-%d %H:%M:%S%.f+00:00")
                        .to_string(),
                },
            })
        }
        Type::INTERVAL => Value::Text(decode_interval(raw)?),
        Type::UUID => Value::Text(uuid::Uuid::from_slice(raw)?.hyphenated().to_string()),
        Type::JSON => Value::Text(std::str::from_utf8(raw)?.to_owned()),
        Type::JSONB => match raw.split_first() {
            Some((1, text)) => Value::Text(std::str::from_utf8(text)?.to_owned()),
            _ => return Err("unsupported jsonb version".into()),
        },
        Type::INET | Type::CIDR => Value::Text(decode_inet(raw, *ty == Type::CIDR)?),
        _ if is_texty(ty) => Value::Text(std::str::from_utf8(raw)?.to_owned()),
        _ => match ty.kind() {
            PgKind::Array(element) => Value::Text(decode_array(element, raw)?),
            PgKind::Domain(base) => decode(base, raw)?,
            _ => Value::Text(decode_other(ty, raw).unwrap_or_else(|_| fallback_text(raw))),
        },
    })
}

/// Printable UTF-8 as is; anything else as `\x` and hex digits (as
/// PostgreSQL shows bytea).
fn fallback_text(raw: &[u8]) -> String {
    match std::str::from_utf8(raw) {
        Ok(s)
            if !s
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) =>
        {
            s.to_owned()
        }
        _ => hex_text(raw),
    }
}

fn hex_text(raw: &[u8]) -> String {
    let mut s = String::with_capacity(2 + raw.len() * 2);
    s.push_str("\\x");
    for b in raw {
        let _ = write!(s, "{b:02x}");
    }
    s
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BoxError> {
        if self.0.len() < n {
            return Err("truncated value".into());
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn i16(&mut self) -> Result<i16, BoxError> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into()?))
    }
    fn u16(&mut self) -> Result<u16, BoxError> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into()?))
    }
    fn i32(&mut self) -> Result<i32, BoxError> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into()?))
    }
    fn u32(&mut self) -> Result<u32, BoxError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into()?))
    }
    fn i64(&mut self) -> Result<i64, BoxError> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into()?))
    }
    fn u64(&mut self) -> Result<u64, BoxError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into()?))
    }
    fn f64(&mut self) -> Result<f64, BoxError> {
        Ok(f64::from_be_bytes(self.take(8)?.try_into()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_binary_is_hex_not_garbage() {
        assert_eq!(fallback_text(b"plain text"), "plain text");
        assert_eq!(fallback_text(&[0, 0, 0, 4]), "\\x00000004");
        assert_eq!(fallback_text(&[0xff]), "\\xff");
    }
}
