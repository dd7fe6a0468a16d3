//! `sqlpool_conn_execute_many_columns`: a statement's parameter sets given
//! column by column, for bindings that hold their data as arrays.

use std::ffi::c_char;

use super::params::utf8_text;
use super::{
    boundary, bytes_arg, sqlpool_conn, sqlpool_status, str_arg, with_conn, Out, SQLPOOL_KIND_BLOB,
    SQLPOOL_KIND_BOOL, SQLPOOL_KIND_DOUBLE, SQLPOOL_KIND_INT64, SQLPOOL_KIND_NULL,
    SQLPOOL_KIND_TEXT,
};
use crate::backend::param_columns::{ColumnValues, ParamColumns};
use crate::error::{Error, Result};

/// One parameter's values for every set of
/// `sqlpool_conn_execute_many_columns` (row `i` belongs to set `i`).
///
/// `values` holds `values_len` bytes, by `kind` (`SQLPOOL_KIND_*`):
/// NULL: nothing (every value is NULL); BOOL: one byte per row (nonzero =
/// true); INT64: an `int64_t` per row; DOUBLE: a `double` per row (native
/// byte order, no alignment needed); TEXT (UTF-8) and BLOB: the cells' bytes
/// one after another, each cell as long as its entry in `lengths` (a
/// `uint64_t` per row), or, when `lengths` is NULL, each cell followed by
/// one NUL byte (cells that hold no NUL). `nulls`: NULL, or one byte per
/// row, nonzero making that row's value NULL (its cell keeps its place in
/// `values`). The caller owns every buffer; the call only reads them.
///
/// Functions: `sqlpool_conn_execute_many_columns`,
/// `sqlpool_conn_execute_many_columns_start`.
#[repr(C)]
pub struct sqlpool_param_column {
    pub kind: u32,
    pub values: *const u8,
    pub values_len: usize,
    pub lengths: *const u64,
    pub nulls: *const u8,
}

/// `sqlpool_conn_execute_many` with the parameter sets given as
/// `column_count` columns (`columns`, one per positional parameter) of
/// `row_count` values each: runs `sql` once per row, all or nothing, as
/// `sqlpool_conn_execute_many` (`*rows_affected`, if not NULL, gets the
/// total). SQLite binds each value straight from its column. Errors: as
/// `sqlpool_conn_execute_many` ("parameter set #N: ..." names the failing
/// row); `SQLPOOL_INVALID_ARGUMENT` for an unknown kind, a buffer whose
/// length does not fit `row_count` (or above `SQLPOOL_MAX_VALUE_SIZE`), or
/// a NULL pointer with a nonzero length; `SQLPOOL_INVALID_UTF8` for text
/// that is not UTF-8, before anything runs.
///
/// Blocks as `sqlpool_conn_execute_batch`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_conn_execute_many_columns(
    conn: *mut sqlpool_conn,
    sql: *const c_char,
    columns: *const sqlpool_param_column,
    column_count: usize,
    row_count: usize,
    rows_affected: *mut u64,
) -> sqlpool_status {
    boundary(|| {
        let sql = unsafe { str_arg(sql, "sql") }?;
        let columns = unsafe { param_columns_of(columns, column_count, row_count) }?;
        let n = with_conn(conn, |c| c.conn().execute_many_columns(sql, &columns))?;
        if let Some(out) = Out::optional(rows_affected) {
            out.put(n);
        }
        Ok(())
    })
}

/// The caller's columns, checked and borrowed.
pub(super) unsafe fn param_columns_of<'a>(
    columns: *const sqlpool_param_column,
    count: usize,
    rows: usize,
) -> Result<ParamColumns<'a>> {
    let mut out = ParamColumns::new(rows);
    if count == 0 {
        return Ok(out);
    }
    if columns.is_null() {
        return Err(Error::invalid_argument(
            "columns is NULL but column_count is not 0",
        ));
    }
    if count > isize::MAX as usize / std::mem::size_of::<sqlpool_param_column>() {
        return Err(Error::invalid_argument(format!(
            "column_count {count} is larger than any array of columns can be"
        )));
    }
    // SAFETY: non-NULL, a length an array can have, and the caller passes
    // `count` elements.
    let columns = unsafe { std::slice::from_raw_parts(columns, count) };
    for (i, column) in columns.iter().enumerate() {
        let (values, nulls) = unsafe { column_of(column, i, rows) }?;
        out.push(values, nulls).map_err(|e| in_column(e, i))?;
    }
    Ok(out)
}

/// Names the column (`columns[i]`) an error is about.
fn in_column(mut e: Error, i: usize) -> Error {
    e.message = format!("columns[{i}]: {}", e.message);
    e
}

/// Column `i`'s values and NULL flags.
unsafe fn column_of<'a>(
    column: &sqlpool_param_column,
    i: usize,
    rows: usize,
) -> Result<(ColumnValues<'a>, Option<&'a [u8]>)> {
    let arg = |e| in_column(e, i);
    let nulls = if column.nulls.is_null() {
        None
    } else {
        Some(unsafe { bytes_arg(column.nulls, rows, "nulls") }.map_err(arg)?)
    };
    let values = unsafe { bytes_arg(column.values, column.values_len, "values") }.map_err(arg)?;
    let fixed = |width: usize| -> Result<std::slice::ChunksExact<'a, u8>> {
        if rows.checked_mul(width) != Some(values.len()) {
            return Err(arg(Error::invalid_argument(format!(
                "values_len is {}, not {width} bytes for each of {rows} rows",
                values.len()
            ))));
        }
        Ok(values.chunks_exact(width))
    };
    let values = match column.kind {
        SQLPOOL_KIND_NULL => ColumnValues::Null,
        SQLPOOL_KIND_BOOL => ColumnValues::Bool(fixed(1)?.map(|c| c[0] != 0).collect()),
        SQLPOOL_KIND_INT64 => {
            ColumnValues::Int64(fixed(8)?.map(|c| i64::from_ne_bytes(word(c))).collect())
        }
        SQLPOOL_KIND_DOUBLE => {
            ColumnValues::Double(fixed(8)?.map(|c| f64::from_ne_bytes(word(c))).collect())
        }
        SQLPOOL_KIND_TEXT => {
            let cells = unsafe { cells_of(values, column.lengths, rows) }.map_err(arg)?;
            let text = cells
                .into_iter()
                .enumerate()
                .map(|(row, cell)| utf8_text(cell).map_err(|e| arg(e).in_set(row)))
                .collect::<Result<_>>()?;
            ColumnValues::Text(text)
        }
        SQLPOOL_KIND_BLOB => {
            ColumnValues::Blob(unsafe { cells_of(values, column.lengths, rows) }.map_err(arg)?)
        }
        other => {
            return Err(arg(Error::invalid_argument(format!(
                "unknown kind {other} (expected a SQLPOOL_KIND_* from NULL to BLOB)"
            ))))
        }
    };
    Ok((values, nulls))
}

/// An 8-byte chunk (of `chunks_exact(8)`) as an array.
fn word(chunk: &[u8]) -> [u8; 8] {
    <[u8; 8]>::try_from(chunk).unwrap_or_default()
}

/// `values` cut into `rows` cells: by `lengths` (a `uint64_t` per row), or
/// at each NUL when `lengths` is NULL.
unsafe fn cells_of(values: &[u8], lengths: *const u64, rows: usize) -> Result<Vec<&[u8]>> {
    let mut cells = Vec::with_capacity(rows.min(values.len() + 1));
    let mut rest = values;
    if lengths.is_null() {
        while let Some(end) = rest.iter().position(|&b| b == 0) {
            cells.push(&rest[..end]);
            rest = &rest[end + 1..];
        }
        if !rest.is_empty() || cells.len() != rows {
            return Err(Error::invalid_argument(format!(
                "lengths is NULL, so every cell ends with a NUL byte, but values holds {} of {rows} cells{}",
                cells.len(),
                if rest.is_empty() { "" } else { " and bytes after the last NUL" }
            )));
        }
        return Ok(cells);
    }
    let Some(size) = rows.checked_mul(8) else {
        return Err(Error::invalid_argument(format!(
            "lengths: {rows} rows are more than any array can hold"
        )));
    };
    let lengths = unsafe { bytes_arg(lengths.cast::<u8>(), size, "lengths") }?;
    for (row, len) in lengths.chunks_exact(8).enumerate() {
        let len = u64::from_ne_bytes(word(len));
        let Some(cell) = usize::try_from(len).ok().and_then(|n| rest.get(..n)) else {
            return Err(Error::invalid_argument(format!(
                "lengths[{row}] is {len}, more than the {} bytes of values left",
                rest.len()
            )));
        };
        cells.push(cell);
        rest = &rest[cell.len()..];
    }
    if !rest.is_empty() {
        return Err(Error::invalid_argument(format!(
            "the lengths add up to {} bytes, but values_len is {}",
            values.len() - rest.len(),
            values.len()
        )));
    }
    Ok(cells)
}
