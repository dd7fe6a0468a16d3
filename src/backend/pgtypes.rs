//! PostgreSQL binary wire format <-> [`Value`], for every type in the
//! documented type table (`docs/types.md`).
//!
//! Types without a C kind of their own travel as text: numeric as an exact
//! decimal string, dates and times as ISO 8601, intervals as ISO 8601
//! durations, uuid, json, inet, and one-dimensional arrays as JSON arrays.

use std::error::Error as StdError;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use postgres::types::{FromSql, IsNull, Kind as PgKind, ToSql, Type};

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
    Box::new(BindError(format!(
        "cannot bind {shown} to a parameter of type {}{sep}{why}",
        ty.name()
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
#[derive(Debug)]
pub struct PgParam<'a>(pub &'a Value);

impl ToSql for PgParam<'_> {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        encode(self.0, ty, out)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
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
            Value::Text(s) => match s.to_ascii_lowercase().as_str() {
                "t" | "true" | "1" | "yes" | "on" => out.put_u8(1),
                "f" | "false" | "0" | "no" | "off" => out.put_u8(0),
                _ => return fail("not a boolean"),
            },
            _ => return fail(""),
        },
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => {
            let n: i64 = match value {
                Value::Int64(i) => *i,
                Value::Bool(b) => i64::from(*b),
                Value::Double(d) if d.fract() == 0.0 && d.abs() < 9.2e18 => *d as i64,
                Value::Text(s) => s
                    .trim()
                    .parse()
                    .map_err(|_| bind_err(value, ty, "not an integer"))?,
                _ => return fail(""),
            };
            let range_err = || bind_err(value, ty, "out of range");
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
            let date = match value {
                Value::Text(s) => {
                    parse_date(s).ok_or_else(|| bind_err(value, ty, "expected YYYY-MM-DD"))?
                }
                _ => return fail(""),
            };
            return date.to_sql(ty, out);
        }
        Type::TIME => {
            let time = match value {
                Value::Text(s) => NaiveTime::parse_from_str(s.trim(), "%H:%M:%S%.f")
                    .map_err(|_| bind_err(value, ty, "expected HH:MM:SS[.ffffff]"))?,
                _ => return fail(""),
            };
            return time.to_sql(ty, out);
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let micros = match value {
                Value::Int64(us) => *us,
                Value::Text(s) => {
                    parse_timestamp_micros(s, *ty == Type::TIMESTAMPTZ).ok_or_else(|| {
                        bind_err(
                            value,
                            ty,
                            "expected ISO 8601 such as 2024-01-31 12:00:00[.ffffff][+02:00]",
                        )
                    })?
                }
                _ => return fail(""),
            };
            // PostgreSQL counts microseconds from 2000-01-01.
            out.put_i64(micros - PG_EPOCH_OFFSET_MICROS);
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
        _ => match ty.kind() {
            PgKind::Array(element) => {
                let Value::Text(s) = value else {
                    return fail("arrays are bound as JSON array text such as [1, 2, null]");
                };
                let items: Vec<serde_json::Value> = serde_json::from_str(s).map_err(|_| {
                    bind_err(value, ty, "expected a JSON array such as [1, 2, null]")
                })?;
                encode_array(&items, element, out)?;
            }
            PgKind::Domain(base) => return encode(value, base, out),
            _ => match value {
                // text, varchar, char, name, citext, enums and other types
                // whose binary form is their text.
                Value::Text(s) => out.put_slice(s.as_bytes()),
                Value::Int64(i) if is_texty(ty) => out.put_slice(i.to_string().as_bytes()),
                Value::Double(d) if is_texty(ty) => out.put_slice(d.to_string().as_bytes()),
                Value::Bool(b) if is_texty(ty) => out.put_slice(b.to_string().as_bytes()),
                _ => return fail(""),
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

fn encode_array(
    items: &[serde_json::Value],
    element: &Type,
    out: &mut bytes::BytesMut,
) -> Result<(), BoxError> {
    use bytes::BufMut;
    let has_null = items.iter().any(serde_json::Value::is_null);
    out.put_i32(1); // dimensions
    out.put_i32(i32::from(has_null));
    out.put_u32(element.oid());
    out.put_i32(i32::try_from(items.len()).map_err(|_| "array too long")?);
    out.put_i32(1); // lower bound
    for item in items {
        let value = match item {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int64(i),
                None => Value::Double(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::Text(s.clone()),
            nested => {
                if matches!(*element, Type::JSON | Type::JSONB) {
                    Value::Text(nested.to_string())
                } else {
                    return Err(Box::new(BindError(format!(
                        "only one-dimensional arrays are supported (element {nested})"
                    ))));
                }
            }
        };
        if let Value::Null = value {
            out.put_i32(-1);
            continue;
        }
        let len_at = out.len();
        out.put_i32(0);
        encode(&value, element, out)?;
        let len = i32::try_from(out.len() - len_at - 4).map_err(|_| "element too large")?;
        out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
    }
    Ok(())
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
        Type::TIME => Value::Text(
            NaiveTime::from_sql(ty, raw)?
                .format("%H:%M:%S%.f")
                .to_string(),
        ),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            Value::Text(match i64::from_sql(&Type::INT8, raw)? {
                i64::MAX => "infinity".into(),
                i64::MIN => "-infinity".into(),
                _ if *ty == Type::TIMESTAMP => NaiveDateTime::from_sql(ty, raw)?
                    .format("%Y-%m-%d %H:%M:%S%.f")
                    .to_string(),
                _ => DateTime::<Utc>::from_sql(ty, raw)?
                    .format("%Y-%m-%d %H:%M:%S%.f+00:00")
                    .to_string(),
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
        Type::CHAR => Value::Text((raw.first().copied().unwrap_or(0) as char).to_string()),
        _ => match ty.kind() {
            PgKind::Array(element) => Value::Text(decode_array(element, raw)?),
            PgKind::Domain(base) => decode(base, raw)?,
            // text, varchar, name, enums, citext, ...: the binary form is the
            // text itself. Anything else unknown is returned as text too.
            _ => Value::Text(match std::str::from_utf8(raw) {
                Ok(s) => s.to_owned(),
                Err(_) => hex_text(raw),
            }),
        },
    })
}

fn hex_text(raw: &[u8]) -> String {
    let mut s = String::with_capacity(2 + raw.len() * 2);
    s.push_str("\\x");
    for b in raw {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn decode_array(element: &Type, raw: &[u8]) -> Result<String, BoxError> {
    let mut r = Reader(raw);
    let ndim = r.i32()?;
    let _has_null = r.i32()?;
    let _oid = r.u32()?;
    if ndim == 0 {
        return Ok("[]".into());
    }
    if ndim != 1 {
        return Err(format!("{ndim}-dimensional arrays are not supported").into());
    }
    let len = r.i32()?;
    let _lower = r.i32()?;
    let mut items = Vec::with_capacity(len.max(0) as usize);
    for _ in 0..len {
        let n = r.i32()?;
        let value = if n < 0 {
            Value::Null
        } else {
            decode(element, r.take(n as usize)?)?
        };
        let json = match value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => b.into(),
            Value::Int64(i) => i.into(),
            Value::Double(d) => serde_json::Number::from_f64(d)
                .map(serde_json::Value::Number)
                .unwrap_or_else(|| d.to_string().into()),
            Value::Text(t) if matches!(*element, Type::JSON | Type::JSONB) => {
                serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t))
            }
            Value::Text(t) => t.into(),
            Value::Blob(b) => hex_text(&b).into(),
        };
        items.push(json);
    }
    Ok(serde_json::Value::Array(items).to_string())
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

fn encode_numeric(text: &str, out: &mut bytes::BytesMut) -> Result<(), &'static str> {
    use bytes::BufMut;
    let special = match text.to_ascii_lowercase().as_str() {
        "nan" => Some(NUMERIC_NAN),
        "infinity" | "+infinity" | "inf" => Some(NUMERIC_PINF),
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
    let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !digits_ok(int_part)
        || !digits_ok(frac_part)
    {
        return Err("not a decimal number");
    }
    let int_part = int_part.trim_start_matches('0');
    let dscale = frac_part.len();
    if dscale > 16383 || int_part.len() > 131072 {
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
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
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
    if d.is_nan() {
        "NaN".into()
    } else if d.is_infinite() {
        if d > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        }
    } else {
        // Shortest representation that round-trips, without an exponent.
        let s = format!("{d}");
        if s.contains('e') {
            format!("{d:.17}")
        } else {
            s
        }
    }
}

fn parse_float(s: &str) -> Option<f64> {
    match s.trim().to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "infinity" | "inf" | "+infinity" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        t => t.parse().ok(),
    }
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

/// Microseconds since 1970-01-01 UTC. Text without an offset is taken as
/// UTC for timestamptz (and as is for timestamp); an offset is honoured.
fn parse_timestamp_micros(s: &str, with_zone: bool) -> Option<i64> {
    let t = s.trim();
    match t {
        "infinity" => return Some(i64::MAX),
        "-infinity" => return Some(i64::MIN + PG_EPOCH_OFFSET_MICROS),
        _ => {}
    }
    let normalized = t.replacen(' ', "T", 1);
    if let Ok(dt) = DateTime::parse_from_rfc3339(&normalized) {
        if !with_zone {
            return Some(dt.naive_local().and_utc().timestamp_micros());
        }
        return Some(dt.timestamp_micros());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%#z"] {
        if let Ok(dt) = DateTime::parse_from_str(&normalized, fmt) {
            return Some(if with_zone {
                dt.timestamp_micros()
            } else {
                dt.naive_local().and_utc().timestamp_micros()
            });
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
            'Y' => months += n * 12,
            'M' => months += n,
            'W' => days += n * 7,
            'D' => days += n,
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
            let n: f64 = number.parse().ok()?;
            number.clear();
            any = true;
            let unit = match c.to_ascii_uppercase() {
                'H' => 3_600_000_000.0,
                'M' => 60_000_000.0,
                'S' => 1_000_000.0,
                _ => return None,
            };
            micros += (n * unit).round() as i64;
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
