//! Text close to PostgreSQL's own output for types outside the type
//! table: timetz, money, bit strings, geometry, ranges, records, tsvector,
//! hstore, enums and the rest.

use std::fmt::Write as _;

use tokio_postgres::types::{Kind as PgKind, Type};

use super::array::push_quoted;
use super::datetime::format_time;
use super::{decode, fallback_text, float_text, hex_text, BoxError, Reader};
use crate::value::Value;

/// Text of a type outside the type table, close to PostgreSQL's own text
/// output. Values whose binary form this module does not know come back as
/// their bytes when those are printable UTF-8 (extension types such as
/// citext send their text), else as `\x` and hex digits.
pub(super) fn decode_other(ty: &Type, raw: &[u8]) -> Result<String, BoxError> {
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

fn point_text(r: &mut Reader<'_>) -> Result<String, BoxError> {
    Ok(format!(
        "({},{})",
        float_text(r.f64()?),
        float_text(r.f64()?)
    ))
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
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        let klen = r.i32()?.max(0) as usize;
        push_quoted(&mut s, std::str::from_utf8(r.take(klen)?)?);
        s.push_str("=>");
        let vlen = r.i32()?;
        if vlen < 0 {
            s.push_str("NULL");
        } else {
            push_quoted(&mut s, std::str::from_utf8(r.take(vlen as usize)?)?);
        }
    }
    Ok(s)
}
