//! Whole columns in the forms a binding that pays per value reads fastest.

use super::{boundary, handle, sqlpool_result, sqlpool_status, Out, RESULTS};
use crate::error::{Error, Status};
use crate::value::Kind;

/// Copies every value of TEXT or BLOB column `column` of `result` into
/// `buf`, each followed by the byte `sep` (0..=255; a NULL cell gives an empty
/// value), so a binding splits the column in one step (Python:
/// `buf.decode().split("\0")`, with no separator after the last value
/// kept). `*written` gets the bytes written: the column's total bytes plus
/// one per row. With `buf` NULL and `buf_len` 0, only `*written` is set,
/// to the size needed. The column must hold one kind (TEXT or BLOB, NULLs
/// aside; `sqlpool_column_data.kind`).
///
/// Errors: `SQLPOOL_TYPE_MISMATCH` (another kind, or kinds that differ),
/// `SQLPOOL_INVALID_ARGUMENT` (`sep` occurs in a value: nothing is
/// written), `SQLPOOL_BUFFER_TOO_SMALL` (`buf_len` below the size needed:
/// nothing is written), `SQLPOOL_OUT_OF_RANGE`, and as
/// `sqlpool_result_row_count`. On failure `*written` is not written.
///
/// Thread-safety: as `sqlpool_result_column_data`; `buf` belongs to the
/// caller, written only during the call.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_result_column_joined(
    result: *const sqlpool_result,
    column: usize,
    sep: u32,
    buf: *mut u8,
    buf_len: usize,
    written: *mut usize,
) -> sqlpool_status {
    boundary(|| {
        let written =
            Out::optional(written).ok_or_else(|| Error::invalid_argument("written is NULL"))?;
        let sep = u8::try_from(sep)
            .map_err(|_| Error::invalid_argument(format!("sep {sep} is not a byte (0..=255)")))?;
        let r = RESULTS.get(handle(result, "result")?)?;
        let data = r.column_data(column)?;
        if !matches!(data.kind, Some(Kind::Text | Kind::Blob | Kind::Null)) {
            return Err(Error::new(
                Status::TypeMismatch,
                format!("column {column} does not hold TEXT or BLOB values only"),
            ));
        }
        let rows = r.row_count();
        let total = data.offsets.last().map_or(0, |&n| n as usize);
        let need = total + rows;
        if buf.is_null() && buf_len == 0 {
            written.put(need);
            return Ok(());
        }
        if buf.is_null() {
            return Err(Error::invalid_argument(format!(
                "buf is NULL but buf_len is {buf_len}"
            )));
        }
        if buf_len < need {
            return Err(Error::new(
                Status::BufferTooSmall,
                format!("buf_len {buf_len} is below the {need} bytes needed"),
            ));
        }
        let bytes = &data.bytes[..total.min(data.bytes.len())];
        if bytes.contains(&sep) {
            return Err(Error::invalid_argument(format!(
                "the separator byte {sep} occurs in a value of column {column}"
            )));
        }
        // SAFETY: checked non-NULL; the caller provides `buf_len` (>= need)
        // writable bytes (documented).
        let out = unsafe { std::slice::from_raw_parts_mut(buf, need) };
        let mut at = 0;
        for row in 0..rows {
            let (a, b) = match (data.offsets.get(row), data.offsets.get(row + 1)) {
                (Some(&a), Some(&b)) => (a as usize, b as usize),
                _ => (0, 0), // an all-NULL column keeps no offsets
            };
            out[at..at + (b - a)].copy_from_slice(&bytes[a..b]);
            at += b - a;
            out[at] = sep;
            at += 1;
        }
        written.put(at);
        Ok(())
    })
}
