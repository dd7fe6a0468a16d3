//! numeric (exact decimal text <-> base-10000 digit groups) and the
//! float parsing shared by float4, float8 and numeric parameters.

use std::fmt::Write as _;

use super::{float_text, BoxError, Reader};

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
pub(super) fn encode_numeric(text: &str, out: &mut bytes::BytesMut) -> Result<(), &'static str> {
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

pub(super) fn format_double_for_numeric(d: f64) -> String {
    // Rust prints the shortest representation that round-trips, without
    // an exponent.
    float_text(d)
}

pub(super) fn parse_float(s: &str) -> Option<f64> {
    match s.trim().to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "infinity" | "inf" | "+infinity" | "+inf" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        t => t.parse().ok(),
    }
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
}
