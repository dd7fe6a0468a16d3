//! date, time, timestamp, timestamptz and interval: ISO 8601 text <->
//! PostgreSQL's microseconds from 2000-01-01.

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, NaiveDateTime};

use super::{BoxError, Reader};

/// Microseconds between 1970-01-01 and PostgreSQL's epoch, 2000-01-01.
pub(super) const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// `YYYY-MM-DD HH:MM:SS[.fff|.ffffff]` (and `+00:00` for timestamptz) for
/// years 1..=9999, formatted by hand: result sets can hold a great many
/// timestamps, and this is several times faster than chrono's formatter.
/// The fraction has 3 digits when whole milliseconds, else 6, as chrono's
/// `%.f` gives.
pub(super) fn format_timestamp(pg_micros: i64, with_zone: bool) -> Option<String> {
    let mut text = Vec::with_capacity(32);
    if !write_timestamp(pg_micros, with_zone, &mut text, &mut NO_DAY.clone()) {
        return None;
    }
    String::from_utf8(text).ok()
}

/// A day (days since 1970-01-01) and its `YYYY-MM-DD` text: kept per
/// result column, whose timestamps often share their day.
pub(super) type LastDay = (i64, [u8; 10]);
pub(super) const NO_DAY: LastDay = (i64::MIN, [0; 10]);

/// Appends the text of [`format_timestamp`] to `out`; false (nothing
/// appended) outside years 1..=9999. Result columns are written this way,
/// without a `String` per cell, the date reused from `last_day` when the
/// day is the same.
pub(super) fn write_timestamp(
    pg_micros: i64,
    with_zone: bool,
    out: &mut Vec<u8>,
    last_day: &mut LastDay,
) -> bool {
    const DAY: i64 = 86_400_000_000;
    let Some(unix) = pg_micros.checked_add(PG_EPOCH_OFFSET_MICROS) else {
        return false;
    };
    let days = unix.div_euclid(DAY);
    let of_day = unix.rem_euclid(DAY);
    if days != last_day.0 {
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
            return false;
        }
        let mut date = *b"0000-00-00";
        put_digits(&mut date[0..4], year as u32);
        put_digits(&mut date[5..7], month as u32);
        put_digits(&mut date[8..10], day as u32);
        *last_day = (days, date);
    }
    // Every field is now in range for u32 (cheaper division than i64).
    let secs = (of_day / 1_000_000) as u32;
    let micros = (of_day % 1_000_000) as u32;
    // Filled in place and appended once: this runs for every cell.
    let mut buf = *b"0000-00-00 00:00:00.000000+00:00";
    buf[..10].copy_from_slice(&last_day.1);
    put_digits(&mut buf[11..13], secs / 3600);
    put_digits(&mut buf[14..16], secs / 60 % 60);
    put_digits(&mut buf[17..19], secs % 60);
    let mut len = if micros == 0 {
        19
    } else if micros % 1000 == 0 {
        put_digits(&mut buf[20..23], micros / 1000);
        23
    } else {
        put_digits(&mut buf[20..26], micros);
        26
    };
    if with_zone {
        buf.copy_within(26..32, len);
        len += 6;
    }
    out.extend_from_slice(&buf[..len]);
    true
}

/// "00" to "99": two digits per step (timestamps are formatted per cell).
const DIGIT_PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// Writes `n` (non-negative, fitting) as decimal digits filling `out`,
/// with leading zeros.
fn put_digits(out: &mut [u8], mut n: u32) {
    let mut end = out.len();
    while end >= 2 {
        let pair = (n % 100) as usize * 2;
        out[end - 2..end].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
        n /= 100;
        end -= 2;
    }
    if end == 1 {
        out[0] = b'0' + (n % 10) as u8;
    }
}

/// `HH:MM:SS` plus `.fff` (whole milliseconds) or `.ffffff`, as chrono's
/// `%.f` does for the timestamps; `24:00:00` is valid for `time`.
pub(super) fn format_time(micros: i64) -> String {
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
pub(super) fn parse_time_micros(s: &str) -> Option<i64> {
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

pub(super) fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

/// Microseconds since 1970-01-01 UTC. Text without an offset is taken as
/// UTC for timestamptz (and as is for timestamp); an offset is honoured
/// for timestamptz and ignored for timestamp (as PostgreSQL's cast does).
/// `infinity` is handled by the caller.
pub(super) fn parse_timestamp_micros(s: &str, with_zone: bool) -> Option<i64> {
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

pub(super) fn decode_interval(raw: &[u8]) -> Result<String, BoxError> {
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

#[cfg(test)]
mod tests {
    use chrono::Utc;

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
