//! PostgreSQL binary wire format <-> [`Value`], for every type in the
//! documented type table (`docs/types.md`).
//!
//! Types without a C kind of their own travel as text: numeric as an exact
//! decimal string, dates and times as ISO 8601, intervals as ISO 8601
//! durations, uuid, json, inet, and arrays as JSON arrays. Types outside
//! the table are bound as text (parsed by the server) and come back as
//! text close to PostgreSQL's own output, never as an error.

use std::error::Error as StdError;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use tokio_postgres::types::{Format, FromSql, IsNull, Kind as PgKind, ToSql, Type};

use crate::value::Value;

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

fn encode_array(
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
fn array_literal(items: &[serde_json::Value], out: &mut String) {
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

/// `"text"` with `"` and `\` backslash-escaped (array literal syntax).
fn push_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// A result cell decoded from any column type.
pub struct Cell(pub Value);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Cell, BoxError> {
        decode(ty, raw).map(Cell)
    }

    fn from_sql_null(_: &Type) -> Result<Cell, BoxError> {
        Ok(Cell(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Microseconds between 1970-01-01 and PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

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

/// `YYYY-MM-DD HH:MM:SS[.fff|.ffffff]` (and `+00:00` for timestamptz) for
/// years 1..=9999, formatted by hand: result sets can hold a great many
/// timestamps, and this is several times faster than chrono's formatter.
/// The fraction has 3 digits when whole milliseconds, else 6, as chrono's
/// `%.f` gives.
fn format_timestamp(pg_micros: i64, with_zone: bool) -> Option<String> {
    const DAY: i64 = 86_400_000_000;
    let unix = pg_micros.checked_add(PG_EPOCH_OFFSET_MICROS)?;
    let days = unix.div_euclid(DAY);
    let of_day = unix.rem_euclid(DAY);
    // Howard Hinnant's days-from-civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(1..=9999).contains(&year) {
        return None;
    }
    let secs = of_day / 1_000_000;
    let micros = of_day % 1_000_000;
    let mut text = String::with_capacity(32);
    push_padded(&mut text, year, 4);
    for (sep, n) in [
        ('-', month),
        ('-', day),
        (' ', secs / 3600),
        (':', secs / 60 % 60),
        (':', secs % 60),
    ] {
        text.push(sep);
        push_padded(&mut text, n, 2);
    }
    if micros != 0 {
        text.push('.');
        if micros % 1000 == 0 {
            push_padded(&mut text, micros / 1000, 3);
        } else {
            push_padded(&mut text, micros, 6);
        }
    }
    if with_zone {
        text.push_str("+00:00");
    }
    Some(text)
}

/// Appends `n` (non-negative) with leading zeros to `width` digits.
fn push_padded(out: &mut String, n: i64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut len = 0;
    let mut v = n.unsigned_abs();
    while v > 0 || len == 0 {
        digits[len] = b'0' + (v % 10) as u8;
        v /= 10;
        len += 1;
    }
    for _ in len..width {
        out.push('0');
    }
    out.extend(digits[..len].iter().rev().map(|d| char::from(*d)));
}

/// Text of a type outside the type table, close to PostgreSQL's own text
/// output. Values whose binary form this module does not know come back as
/// their bytes when those are printable UTF-8 (extension types such as
/// citext send their text), else as `\x` and hex digits.
fn decode_other(ty: &Type, raw: &[u8]) -> Result<String, BoxError> {
    let mut r = Reader(raw);
    Ok(match *ty {
        Type::CHAR => match raw.first() {
            None | Some(0) => String::new(),
            Some(b) if b.is_ascii() => char::from(*b).to_string(),
            Some(b) => format!("\\{b:03o}"),
        },
        Type::TIMETZ => {
            let micros = r.i64()?;
            // Stored as seconds *west* of UTC.
            let east = -r.i32()?;
            let sign = if east < 0 { '-' } else { '+' };
            let abs = east.unsigned_abs();
            let mut s = format!(
                "{}{sign}{:02}:{:02}",
                format_time(micros),
                abs / 3600,
                abs % 3600 / 60
            );
            if abs % 60 != 0 {
                let _ = write!(s, ":{:02}", abs % 60);
            }
            s
        }
        Type::MONEY => {
            // In the currency's smallest unit; two fraction digits assumed.
            let cents = r.i64()?;
            let sign = if cents < 0 { "-" } else { "" };
            let abs = cents.unsigned_abs();
            format!("{sign}{}.{:02}", abs / 100, abs % 100)
        }
        Type::BIT | Type::VARBIT => {
            let bits = r.i32()?.max(0) as usize;
            let bytes = r.take(bits.div_ceil(8))?;
            (0..bits)
                .map(|i| {
                    if bytes[i / 8] & (0x80 >> (i % 8)) != 0 {
                        '1'
                    } else {
                        '0'
                    }
                })
                .collect()
        }
        Type::MACADDR | Type::MACADDR8 => raw
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
        Type::POINT => point_text(&mut r)?,
        Type::LSEG => format!("[{},{}]", point_text(&mut r)?, point_text(&mut r)?),
        Type::BOX => format!("{},{}", point_text(&mut r)?, point_text(&mut r)?),
        Type::LINE => format!(
            "{{{},{},{}}}",
            float_text(r.f64()?),
            float_text(r.f64()?),
            float_text(r.f64()?)
        ),
        Type::CIRCLE => format!("<{},{}>", point_text(&mut r)?, float_text(r.f64()?)),
        Type::PATH | Type::POLYGON => {
            let closed = if *ty == Type::PATH {
                r.take(1)?[0] != 0
            } else {
                true
            };
            let n = r.i32()?.max(0);
            let points = (0..n)
                .map(|_| point_text(&mut r))
                .collect::<Result<Vec<_>, _>>()?
                .join(",");
            if closed {
                format!("({points})")
            } else {
                format!("[{points}]")
            }
        }
        Type::PG_LSN => {
            let lsn = r.u64()?;
            format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
        }
        Type::TID => format!("({},{})", r.u32()?, r.u16()?),
        Type::XID8 => r.u64()?.to_string(),
        Type::XID
        | Type::CID
        | Type::REGPROC
        | Type::REGPROCEDURE
        | Type::REGOPER
        | Type::REGOPERATOR
        | Type::REGCLASS
        | Type::REGTYPE
        | Type::REGCONFIG
        | Type::REGDICTIONARY
        | Type::REGNAMESPACE
        | Type::REGROLE
        | Type::REGCOLLATION => r.u32()?.to_string(),
        Type::JSONPATH => match raw.split_first() {
            Some((1, text)) => std::str::from_utf8(text)?.to_owned(),
            _ => return Err("unsupported jsonpath version".into()),
        },
        Type::TS_VECTOR => decode_tsvector(raw)?,
        Type::RECORD => decode_record(None, raw)?,
        _ => match ty.kind() {
            PgKind::Enum(_) => std::str::from_utf8(raw)?.to_owned(),
            PgKind::Range(sub) => decode_range(sub, raw)?,
            PgKind::Multirange(sub) => {
                let n = r.i32()?.max(0);
                let mut s = String::from("{");
                for i in 0..n {
                    if i > 0 {
                        s.push(',');
                    }
                    let len = r.i32()?.max(0) as usize;
                    s.push_str(&decode_range(sub, r.take(len)?)?);
                }
                s.push('}');
                s
            }
            PgKind::Composite(fields) => decode_record(Some(fields), raw)?,
            _ if ty.name() == "hstore" => decode_hstore(raw)?,
            _ => fallback_text(raw),
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

fn point_text(r: &mut Reader<'_>) -> Result<String, BoxError> {
    Ok(format!(
        "({},{})",
        float_text(r.f64()?),
        float_text(r.f64()?)
    ))
}

/// `HH:MM:SS` plus `.fff` (whole milliseconds) or `.ffffff`, as chrono's
/// `%.f` does for the timestamps; `24:00:00` is valid for `time`.
fn format_time(micros: i64) -> String {
    let neg = micros < 0;
    let abs = micros.unsigned_abs();
    let (h, rem) = (abs / 3_600_000_000, abs % 3_600_000_000);
    let (m, rem) = (rem / 60_000_000, rem % 60_000_000);
    let (s, frac) = (rem / 1_000_000, rem % 1_000_000);
    let mut out = format!("{}{h:02}:{m:02}:{s:02}", if neg { "-" } else { "" });
    if frac != 0 {
        if frac % 1000 == 0 {
            let _ = write!(out, ".{:03}", frac / 1000);
        } else {
            let _ = write!(out, ".{frac:06}");
        }
    }
    out
}

/// `HH:MM[:SS[.fraction]]` to microseconds since midnight (up to 24:00:00).
fn parse_time_micros(s: &str) -> Option<i64> {
    let mut parts = s.trim().split(':');
    let h: i64 = parse_digits(parts.next()?)?;
    let m: i64 = parse_digits(parts.next()?)?;
    let (sec, frac) = match parts.next() {
        None => (0, 0),
        Some(p) => {
            let (whole, frac) = p.split_once('.').unwrap_or((p, ""));
            let sec: i64 = parse_digits(whole)?;
            if !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Microseconds, rounded half up as PostgreSQL does.
            let mut digits: Vec<u8> = frac.bytes().map(|b| b - b'0').collect();
            digits.resize(digits.len().max(7), 0);
            let mut us = digits[..6].iter().fold(0i64, |a, d| a * 10 + i64::from(*d));
            if digits[6] >= 5 {
                us += 1;
            }
            (sec, us)
        }
    };
    if parts.next().is_some() || m > 59 || sec > 59 {
        return None;
    }
    let total = ((h * 60 + m) * 60 + sec) * 1_000_000 + frac;
    (total <= 86_400_000_000).then_some(total)
}

fn parse_digits(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Text of one element inside a range, record or hstore: PostgreSQL's
/// spelling for booleans, this module's text for everything else.
fn element_text(value: Value) -> Option<String> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => if b { "t" } else { "f" }.into(),
        Value::Int64(i) => i.to_string(),
        Value::Double(d) => float_text(d),
        Value::Text(s) => s,
        Value::Blob(b) => hex_text(&b),
    })
}

fn decode_element(ty: &Type, raw: &[u8]) -> String {
    match decode(ty, raw) {
        Ok(v) => element_text(v).unwrap_or_default(),
        Err(_) => fallback_text(raw),
    }
}

/// Appends `s`, double-quoted (with `"` and `\` doubled) when it is empty
/// or holds a character in `special` or white space, as range and record
/// output do.
fn push_maybe_quoted(out: &mut String, s: &str, special: &str) {
    if !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || special.contains(c)) {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push('"');
}

const RANGE_EMPTY: u8 = 0x01;
const RANGE_LB_INC: u8 = 0x02;
const RANGE_UB_INC: u8 = 0x04;
const RANGE_LB_INF: u8 = 0x08;
const RANGE_UB_INF: u8 = 0x10;

/// `[1,5)`, `(,3]`, `empty`.
fn decode_range(sub: &Type, raw: &[u8]) -> Result<String, BoxError> {
    let mut r = Reader(raw);
    let flags = r.take(1)?[0];
    if flags & RANGE_EMPTY != 0 {
        return Ok("empty".into());
    }
    let mut s = String::from(if flags & RANGE_LB_INC != 0 { "[" } else { "(" });
    let special = "\"\\()[],";
    if flags & RANGE_LB_INF == 0 {
        let len = r.i32()?.max(0) as usize;
        push_maybe_quoted(&mut s, &decode_element(sub, r.take(len)?), special);
    }
    s.push(',');
    if flags & RANGE_UB_INF == 0 {
        let len = r.i32()?.max(0) as usize;
        push_maybe_quoted(&mut s, &decode_element(sub, r.take(len)?), special);
    }
    s.push(if flags & RANGE_UB_INC != 0 { ']' } else { ')' });
    Ok(s)
}

/// `(1,"a b",,2.5)`: a composite value or anonymous record; NULL fields
/// are empty.
fn decode_record(
    fields: Option<&[tokio_postgres::types::Field]>,
    raw: &[u8],
) -> Result<String, BoxError> {
    let mut r = Reader(raw);
    let n = r.i32()?.max(0) as usize;
    let mut s = String::from("(");
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        let oid = r.u32()?;
        let len = r.i32()?;
        if len < 0 {
            continue;
        }
        let bytes = r.take(len as usize)?;
        let ty = fields
            .and_then(|f| f.get(i))
            .map(|f| f.type_().clone())
            .or_else(|| Type::from_oid(oid));
        let text = match ty {
            Some(ty) => decode_element(&ty, bytes),
            None => fallback_text(bytes),
        };
        push_maybe_quoted(&mut s, &text, "\"\\(),");
    }
    s.push(')');
    Ok(s)
}

/// `'a':1A 'cat' 'fat':2,3`.
fn decode_tsvector(raw: &[u8]) -> Result<String, BoxError> {
    let mut r = Reader(raw);
    let n = r.i32()?.max(0);
    let mut s = String::new();
    for i in 0..n {
        if i > 0 {
            s.push(' ');
        }
        let end = r.0.iter().position(|&b| b == 0).ok_or("truncated value")?;
        let word = std::str::from_utf8(r.take(end)?)?;
        r.take(1)?;
        s.push('\'');
        for c in word.chars() {
            if c == '\'' || c == '\\' {
                s.push(c);
            }
            s.push(c);
        }
        s.push('\'');
        let npos = r.u16()?;
        for p in 0..npos {
            let pos = r.u16()?;
            s.push(if p == 0 { ':' } else { ',' });
            let _ = write!(s, "{}", pos & 0x3fff);
            match pos >> 14 {
                3 => s.push('A'),
                2 => s.push('B'),
                1 => s.push('C'),
                _ => {}
            }
        }
    }
    Ok(s)
}

/// `"a"=>"1", "b"=>NULL`.
fn decode_hstore(raw: &[u8]) -> Result<String, BoxError> {
    let mut r = Reader(raw);
    let n = r.i32()?.max(0);
    let mut s = String::new();
    let quoted = |s: &mut String, t: &str| {
        s.push('"');
        for c in t.chars() {
            if c == '"' || c == '\\' {
                s.push('\\');
            }
            s.push(c);
        }
        s.push('"');
    };
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        let klen = r.i32()?.max(0) as usize;
        quoted(&mut s, std::str::from_utf8(r.take(klen)?)?);
        s.push_str("=>");
        let vlen = r.i32()?;
        if vlen < 0 {
            s.push_str("NULL");
        } else {
            quoted(&mut s, std::str::from_utf8(r.take(vlen as usize)?)?);
        }
    }
    Ok(s)
}

/// An array as JSON: nested arrays for more than one dimension, lower
/// bounds dropped.
fn decode_array(element: &Type, raw: &[u8]) -> Result<String, BoxError> {
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

const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// Exact decimal text of a binary numeric (base-10000 digit groups).
pub fn decode_numeric(raw: &[u8]) -> Result<String, BoxError> {
    let mut r = Reader(raw);
    let ndigits = r.i16()?.max(0) as usize;
    let weight = r.i16()? as i32;
    let sign = r.u16()?;
    let dscale = r.u16()? as usize;
    match sign {
        NUMERIC_NAN => return Ok("NaN".into()),
        NUMERIC_PINF => return Ok("Infinity".into()),
        NUMERIC_NINF => return Ok("-Infinity".into()),
        _ => {}
    }
    let mut groups = Vec::with_capacity(ndigits);
    for _ in 0..ndigits {
        groups.push(r.i16()?);
    }
    let group = |i: i32| -> i16 {
        if i >= 0 && (i as usize) < groups.len() {
            groups[i as usize]
        } else {
            0
        }
    };
    let mut s = String::new();
    if sign == NUMERIC_NEG {
        s.push('-');
    }
    if weight < 0 {
        s.push('0');
    } else {
        for i in 0..=weight {
            if i == 0 {
                let _ = write!(s, "{}", group(i));
            } else {
                let _ = write!(s, "{:04}", group(i));
            }
        }
    }
    if dscale > 0 {
        s.push('.');
        let mut frac = String::new();
        let mut i = weight + 1;
        while frac.len() < dscale {
            let _ = write!(frac, "{:04}", group(i));
            i += 1;
        }
        frac.truncate(dscale);
        s.push_str(&frac);
    }
    Ok(s)
}

/// Most digits before / after the decimal point PostgreSQL's numeric holds.
const NUMERIC_MAX_INT_DIGITS: usize = 131_072;
const NUMERIC_MAX_SCALE: usize = 16_383;

/// Decimal text (`-12.50`, `.5`, `1.5e-7`, `1E+5`, `NaN`, `Infinity`) to
/// binary numeric. The scale is the number of digits after the point once
/// any exponent is applied, as in PostgreSQL.
fn encode_numeric(text: &str, out: &mut bytes::BytesMut) -> Result<(), &'static str> {
    use bytes::BufMut;
    let special = match text.to_ascii_lowercase().as_str() {
        "nan" => Some(NUMERIC_NAN),
        "infinity" | "+infinity" | "inf" | "+inf" => Some(NUMERIC_PINF),
        "-infinity" | "-inf" => Some(NUMERIC_NINF),
        _ => None,
    };
    if let Some(sign) = special {
        out.put_i16(0);
        out.put_i16(0);
        out.put_u16(sign);
        out.put_u16(0);
        return Ok(());
    }
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match body.split_once(['e', 'E']) {
        Some((m, e)) => {
            let e = e.strip_prefix('+').unwrap_or(e);
            let digits = e.strip_prefix('-').unwrap_or(e);
            if digits.is_empty() || digits.len() > 7 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err("not a decimal number");
            }
            (m, e.parse::<i64>().map_err(|_| "not a decimal number")?)
        }
        None => (body, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !digits_ok(int_part)
        || !digits_ok(frac_part)
    {
        return Err("not a decimal number");
    }
    // Apply the exponent by moving the decimal point.
    let (int_digits, frac_digits) = if exponent == 0 {
        (int_part.to_owned(), frac_part.to_owned())
    } else {
        let all = format!("{int_part}{frac_part}");
        let point = int_part.len() as i64 + exponent;
        let frac_len = (all.len() as i64 - point).max(0) as usize;
        if frac_len > NUMERIC_MAX_SCALE || point > NUMERIC_MAX_INT_DIGITS as i64 + all.len() as i64
        {
            return Err("too many digits");
        }
        if point <= 0 {
            let zeros = "0".repeat((-point) as usize);
            (String::new(), format!("{zeros}{all}"))
        } else if point as usize >= all.len() {
            let zeros = "0".repeat(point as usize - all.len());
            (format!("{all}{zeros}"), String::new())
        } else {
            let (i, f) = all.split_at(point as usize);
            (i.to_owned(), f.to_owned())
        }
    };
    let int_part = int_digits.trim_start_matches('0');
    let frac_part = frac_digits.as_str();
    let dscale = frac_part.len();
    if dscale > NUMERIC_MAX_SCALE || int_part.len() > NUMERIC_MAX_INT_DIGITS {
        return Err("too many digits");
    }
    // Align to 4-digit groups around the decimal point.
    let int_pad = (4 - int_part.len() % 4) % 4;
    let frac_pad = (4 - frac_part.len() % 4) % 4;
    let mut all = String::with_capacity(int_pad + int_part.len() + frac_part.len() + frac_pad);
    all.extend(std::iter::repeat('0').take(int_pad));
    all.push_str(int_part);
    all.push_str(frac_part);
    all.extend(std::iter::repeat('0').take(frac_pad));
    let mut groups: Vec<i16> = all
        .as_bytes()
        .chunks(4)
        .map(|c| c.iter().fold(0i16, |acc, d| acc * 10 + i16::from(d - b'0')))
        .collect();
    let mut weight = ((int_pad + int_part.len()) / 4) as i32 - 1;
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= leading as i32;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    out.put_i16(groups.len() as i16);
    out.put_i16(weight as i16);
    out.put_u16(if negative && !groups.is_empty() {
        NUMERIC_NEG
    } else {
        0
    });
    out.put_u16(dscale as u16);
    for g in groups {
        out.put_i16(g);
    }
    Ok(())
}

fn format_double_for_numeric(d: f64) -> String {
    // Rust prints the shortest representation that round-trips, without
    // an exponent.
    float_text(d)
}

fn parse_float(s: &str) -> Option<f64> {
    match s.trim().to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "infinity" | "inf" | "+infinity" | "+inf" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        t => t.parse().ok(),
    }
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

/// Microseconds since 1970-01-01 UTC. Text without an offset is taken as
/// UTC for timestamptz (and as is for timestamp); an offset is honoured
/// for timestamptz and ignored for timestamp (as PostgreSQL's cast does).
/// `infinity` is handled by the caller.
fn parse_timestamp_micros(s: &str, with_zone: bool) -> Option<i64> {
    let t = s.trim();
    let normalized = t.replacen(' ', "T", 1);
    let zoned = |dt: DateTime<chrono::FixedOffset>| {
        if with_zone {
            dt.timestamp_micros()
        } else {
            dt.naive_local().and_utc().timestamp_micros()
        }
    };
    if let Ok(dt) = DateTime::parse_from_rfc3339(&normalized) {
        return Some(zoned(dt));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f%#z",
        "%Y-%m-%dT%H:%M:%S%#z",
        "%Y-%m-%dT%H:%M%#z",
        "%Y-%m-%dT%H:%M:%S%.f %#z",
    ] {
        if let Ok(dt) = DateTime::parse_from_str(&normalized, fmt) {
            return Some(zoned(dt));
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(&normalized, fmt) {
            return Some(naive.and_utc().timestamp_micros());
        }
    }
    parse_date(t).map(|d| {
        d.and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc()
            .timestamp_micros()
    })
}

/// ISO 8601 duration (`P1Y2M3DT4H5M6.5S`, `-PT1S`) to (months, days, microseconds).
pub fn parse_iso_duration(s: &str) -> Option<(i32, i32, i64)> {
    let t = s.trim();
    let (negative, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let body = t.strip_prefix('P').or_else(|| t.strip_prefix('p'))?;
    let (date_part, time_part) = match body.split_once(['T', 't']) {
        Some((d, t)) => (d, Some(t)),
        None => (body, None),
    };
    let (mut months, mut days, mut micros) = (0i64, 0i64, 0i64);
    let mut any = false;
    let mut number = String::new();
    for c in date_part.chars() {
        if c.is_ascii_digit() || c == '-' {
            number.push(c);
            continue;
        }
        let n: i64 = number.parse().ok()?;
        number.clear();
        any = true;
        match c.to_ascii_uppercase() {
            'Y' => months = months.checked_add(n.checked_mul(12)?)?,
            'M' => months = months.checked_add(n)?,
            'W' => days = days.checked_add(n.checked_mul(7)?)?,
            'D' => days = days.checked_add(n)?,
            _ => return None,
        }
    }
    if !number.is_empty() {
        return None;
    }
    if let Some(time) = time_part {
        for c in time.chars() {
            if c.is_ascii_digit() || c == '.' || c == '-' {
                number.push(c);
                continue;
            }
            let unit: i64 = match c.to_ascii_uppercase() {
                'H' => 3_600_000_000,
                'M' => 60_000_000,
                'S' => 1_000_000,
                _ => return None,
            };
            micros = micros.checked_add(scaled_micros(&number, unit)?)?;
            number.clear();
            any = true;
        }
        if !number.is_empty() {
            return None;
        }
    }
    if !any {
        return None;
    }
    let sign = if negative { -1 } else { 1 };
    Some((
        i32::try_from(sign * months).ok()?,
        i32::try_from(sign * days).ok()?,
        sign * micros,
    ))
}

/// `number` (`-1`, `6.5`, `0.000001`) times `unit` microseconds, exactly
/// (no binary floating point), rounded to the microsecond.
fn scaled_micros(number: &str, unit: i64) -> Option<i64> {
    let (negative, digits) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if (whole.is_empty() && frac.is_empty())
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut total = whole.checked_mul(unit)?;
    // The fraction, to 1e-9 of a unit, then scaled and rounded.
    let mut nanos_of_unit: i128 = 0;
    for (i, d) in frac.bytes().take(9).enumerate() {
        nanos_of_unit += i128::from(d - b'0') * 10i128.pow(8 - i as u32);
    }
    let frac_micros = (nanos_of_unit * i128::from(unit) + 500_000_000) / 1_000_000_000;
    total = total.checked_add(i64::try_from(frac_micros).ok()?)?;
    Some(if negative { -total } else { total })
}

fn decode_interval(raw: &[u8]) -> Result<String, BoxError> {
    let mut r = Reader(raw);
    let micros = r.i64()?;
    let days = r.i32()?;
    let months = r.i32()?;
    Ok(format_iso_duration(months, days, micros))
}

pub fn format_iso_duration(months: i32, days: i32, micros: i64) -> String {
    let mut s = String::from("P");
    let (years, months) = (months / 12, months % 12);
    if years != 0 {
        let _ = write!(s, "{years}Y");
    }
    if months != 0 {
        let _ = write!(s, "{months}M");
    }
    if days != 0 {
        let _ = write!(s, "{days}D");
    }
    if micros != 0 {
        s.push('T');
        let neg = micros < 0;
        let abs = micros.unsigned_abs();
        let (h, rem) = (abs / 3_600_000_000, abs % 3_600_000_000);
        let (m, rem) = (rem / 60_000_000, rem % 60_000_000);
        let (sec, frac) = (rem / 1_000_000, rem % 1_000_000);
        let sign = if neg { "-" } else { "" };
        if h != 0 {
            let _ = write!(s, "{sign}{h}H");
        }
        if m != 0 {
            let _ = write!(s, "{sign}{m}M");
        }
        if sec != 0 || frac != 0 {
            if frac != 0 {
                let f = format!("{frac:06}");
                let _ = write!(s, "{sign}{sec}.{}S", f.trim_end_matches('0'));
            } else {
                let _ = write!(s, "{sign}{sec}S");
            }
        }
    }
    if s == "P" {
        s.push_str("T0S");
    }
    s
}

const PGSQL_AF_INET: u8 = 2;
const PGSQL_AF_INET6: u8 = 3;

fn decode_inet(raw: &[u8], cidr: bool) -> Result<String, BoxError> {
    let mut r = Reader(raw);
    let family = r.take(1)?[0];
    let bits = r.take(1)?[0];
    let _is_cidr = r.take(1)?[0];
    let len = r.take(1)?[0] as usize;
    let addr = r.take(len)?;
    let (ip, full): (IpAddr, u8) = match family {
        PGSQL_AF_INET if len == 4 => (
            IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
            32,
        ),
        PGSQL_AF_INET6 if len == 16 => {
            let octets: [u8; 16] = addr.try_into()?;
            (IpAddr::V6(Ipv6Addr::from(octets)), 128)
        }
        _ => return Err("unknown inet address family".into()),
    };
    Ok(if bits == full && !cidr {
        ip.to_string()
    } else {
        format!("{ip}/{bits}")
    })
}

fn encode_inet(s: &str, cidr: bool, out: &mut bytes::BytesMut) -> Result<(), &'static str> {
    use bytes::BufMut;
    let (addr, bits) = match s.split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<u8>().map_err(|_| "bad prefix length")?)),
        None => (s, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| "not an IP address")?;
    let (family, octets, full): (u8, Vec<u8>, u8) = match ip {
        IpAddr::V4(v4) => (PGSQL_AF_INET, v4.octets().to_vec(), 32),
        IpAddr::V6(v6) => (PGSQL_AF_INET6, v6.octets().to_vec(), 128),
    };
    let bits = bits.unwrap_or(full);
    if bits > full {
        return Err("prefix length too large");
    }
    if cidr {
        // cidr requires the bits right of the mask to be zero.
        for (i, byte) in octets.iter().enumerate() {
            let keep = (usize::from(bits).saturating_sub(i * 8)).min(8);
            let mask = if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
            if byte & !mask != 0 {
                return Err("a cidr value has bits set to the right of its mask");
            }
        }
    }
    out.put_u8(family);
    out.put_u8(bits);
    out.put_u8(u8::from(cidr));
    out.put_u8(octets.len() as u8);
    out.put_slice(&octets);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_timestamps_match_chrono() {
        for unix_micros in [
            0i64,
            -1,
            1_500,
            1_000,
            86_399_999_999,
            -62_135_596_800_000_000,
            253_402_300_799_999_999,
            1_700_000_000_123_456,
            -1_234_567_890_000_001,
        ] {
            let pg = unix_micros - PG_EPOCH_OFFSET_MICROS;
            let dt = chrono::DateTime::<Utc>::from_timestamp_micros(unix_micros).unwrap();
            assert_eq!(
                format_timestamp(pg, false).unwrap(),
                dt.naive_utc().format("%Y-%m-%d %H:%M:%S%.f").to_string()
            );
            assert_eq!(
                format_timestamp(pg, true).unwrap(),
                dt.format("%Y-%m-%d %H:%M:%S%.f+00:00").to_string()
            );
        }
        assert_eq!(
            format_timestamp(-63_200_000_000_000_000, false),
            None,
            "year 0 goes to chrono"
        );
    }

    fn numeric_round_trip(text: &str) -> String {
        let mut buf = bytes::BytesMut::new();
        encode_numeric(text, &mut buf).unwrap();
        decode_numeric(&buf).unwrap()
    }

    #[test]
    fn numerics() {
        for t in [
            "0",
            "1",
            "-1",
            "12345.6789",
            "0.0001",
            "0.00000123",
            "1234567890123456789012345678901234567890",
            "-98765432109876543210.12345678901234567890",
            "10000",
            "100000000.00",
            "NaN",
            "Infinity",
            "-Infinity",
        ] {
            assert_eq!(numeric_round_trip(t), t);
        }
        assert_eq!(numeric_round_trip("007.50"), "7.50");
        assert_eq!(numeric_round_trip(".5"), "0.5");
        // Exponents move the point; the scale follows, as in PostgreSQL.
        assert_eq!(numeric_round_trip("1E+5"), "100000");
        assert_eq!(numeric_round_trip("1.5e-7"), "0.00000015");
        assert_eq!(numeric_round_trip("-1.50E+1"), "-15.0");
        assert_eq!(numeric_round_trip("123e-2"), "1.23");
        let mut buf = bytes::BytesMut::new();
        for bad in ["", "-", "1e", "1e+", "1.2.3", "1e99999999", "abc", "1 2"] {
            assert!(encode_numeric(bad, &mut buf).is_err(), "{bad:?}");
        }
        assert_eq!(format_double_for_numeric(0.1), "0.1");
        assert_eq!(format_double_for_numeric(1e21), "1000000000000000000000");
        assert_eq!(format_double_for_numeric(-1e-7), "-0.0000001");
    }

    #[test]
    fn times() {
        assert_eq!(parse_time_micros("12:34"), Some(45_240_000_000));
        assert_eq!(parse_time_micros("24:00:00"), Some(86_400_000_000));
        assert_eq!(parse_time_micros("00:00:00.0000005"), Some(1));
        assert_eq!(parse_time_micros("24:00:01"), None);
        assert_eq!(parse_time_micros("12:60"), None);
        assert_eq!(parse_time_micros("1:2:3:4"), None);
        assert_eq!(format_time(45_296_500_000), "12:34:56.500");
        assert_eq!(format_time(45_296_000_001), "12:34:56.000001");
        assert_eq!(format_time(86_400_000_000), "24:00:00");
    }

    #[test]
    fn exact_durations() {
        assert_eq!(parse_iso_duration("PT0.000001S"), Some((0, 0, 1)));
        assert_eq!(parse_iso_duration("PT0.1S"), Some((0, 0, 100_000)));
        assert_eq!(parse_iso_duration("PT1.5H"), Some((0, 0, 5_400_000_000)));
        assert_eq!(parse_iso_duration("P1DT-1H"), Some((0, 1, -3_600_000_000)));
        assert_eq!(parse_iso_duration("P"), None);
        assert_eq!(parse_iso_duration("PT.S"), None);
    }

    #[test]
    fn cidr_masks() {
        let mut buf = bytes::BytesMut::new();
        assert!(encode_inet("10.0.0.0/8", true, &mut buf).is_ok());
        assert!(encode_inet("10.0.0.1/8", true, &mut buf).is_err());
        assert!(encode_inet("10.0.0.1/8", false, &mut buf).is_ok());
        assert!(encode_inet("2001:db8::/32", true, &mut buf).is_ok());
        assert!(encode_inet("10.0.0.0/33", false, &mut buf).is_err());
    }

    #[test]
    fn array_literals() {
        let items: Vec<serde_json::Value> =
            serde_json::from_str(r#"["a\"b", null, ["x,y"], 1, true]"#).unwrap();
        let mut s = String::new();
        array_literal(&items, &mut s);
        assert_eq!(s, r#"{"a\"b",NULL,{"x,y"},"1","true"}"#);
    }

    #[test]
    fn unknown_binary_is_hex_not_garbage() {
        assert_eq!(fallback_text(b"plain text"), "plain text");
        assert_eq!(fallback_text(&[0, 0, 0, 4]), "\\x00000004");
        assert_eq!(fallback_text(&[0xff]), "\\xff");
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_iso_duration("P1Y2M3DT4H5M6.5S"),
            Some((14, 3, 14_706_500_000))
        );
        assert_eq!(
            format_iso_duration(14, 3, 14_706_500_000),
            "P1Y2M3DT4H5M6.5S"
        );
        assert_eq!(format_iso_duration(0, 0, 0), "PT0S");
        assert_eq!(parse_iso_duration("-PT1S"), Some((0, 0, -1_000_000)));
        assert_eq!(parse_iso_duration("nonsense"), None);
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            parse_timestamp_micros("1970-01-01 00:00:01", true),
            Some(1_000_000)
        );
        assert_eq!(
            parse_timestamp_micros("1970-01-01T02:00:00+02:00", true),
            Some(0)
        );
        assert_eq!(
            parse_timestamp_micros("1969-12-31 23:59:59.5", false),
            Some(-500_000)
        );
    }
}
