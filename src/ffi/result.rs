//! `sqlpool_result`: the rows of a query, read into memory; cell getters.

use std::cell::{Cell, RefCell};
use std::ffi::c_char;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{boundary, handle, out_arg, sqlpool_status, str_arg, Out};
use crate::error::Result;
use crate::handles::{HandleKind, HandleTable};
use crate::result::{CellRef, ResultSet};

/// The rows of a query, fully read into memory.
///
/// Thread-safety: immutable; any thread may read it, also at once. The
/// caller owns it and frees it with `sqlpool_result_free`. Pointers from
/// its getters stay valid until then.
///
/// Functions: `sqlpool_result_column_data`, `sqlpool_result_describe`,
/// `sqlpool_result_free`, `sqlpool_result_row_count`,
/// `sqlpool_result_column_count`, `sqlpool_result_column_name`,
/// `sqlpool_result_column_decltype`, `sqlpool_result_column_index`,
/// `sqlpool_result_kind`, `sqlpool_result_is_null`,
/// `sqlpool_result_get_int64`, `sqlpool_result_get_double`,
/// `sqlpool_result_get_bool`, `sqlpool_result_get_text`,
/// `sqlpool_result_get_blob`, `sqlpool_result_text_is_utf8`,
/// `sqlpool_conn_query`, `sqlpool_conn_query_packed`, `sqlpool_pool_query`
/// (create it).
pub struct sqlpool_result {
    _private: [u8; 0],
}

/// A result in the handle table: its rows, and whether its handle has been
/// freed (so that a copy cached by a reading thread is never used after
/// `sqlpool_result_free`).
pub(crate) struct ResultEntry {
    set: ResultSet,
    freed: AtomicBool,
}

impl ResultEntry {
    fn new(set: ResultSet) -> Arc<ResultEntry> {
        Arc::new(ResultEntry {
            set,
            freed: AtomicBool::new(false),
        })
    }
}

pub(crate) static RESULTS: HandleTable<ResultEntry> = HandleTable::new(HandleKind::Result);

impl std::ops::Deref for ResultEntry {
    type Target = ResultSet;

    fn deref(&self) -> &ResultSet {
        &self.set
    }
}

/// Stores `result` in the handle table; returns its handle.
pub(crate) fn insert_result(result: ResultSet) -> Result<usize> {
    RESULTS.insert(ResultEntry::new(result))
}

/// Stores `result`; returns its handle and `extra(result)` (pointers into
/// the result, which the table keeps alive).
pub(crate) fn insert_result_with<T>(
    result: ResultSet,
    extra: impl FnOnce(&ResultSet) -> T,
) -> Result<(usize, T)> {
    let entry = ResultEntry::new(result);
    let value = extra(&entry.set);
    Ok((RESULTS.insert(entry)?, value))
}

pub(crate) fn store_result(result: ResultSet, out: Out<*mut sqlpool_result>) -> Result<()> {
    store_result_with(result, out, |_| ())
}

/// Stores `result` and writes its handle to `out` and `extra(result)` to
/// `out_extra` (pointers into the result, which the table keeps alive).
pub(crate) fn store_result_with<T>(
    result: ResultSet,
    out: Out<*mut sqlpool_result>,
    extra: impl FnOnce(&ResultSet) -> T,
) -> Result<T> {
    let (h, value) = insert_result_with(result, extra)?;
    out.put(h as *mut sqlpool_result);
    Ok(value)
}

// ---------------------------------------------------------------------------
// Results

/// Value kinds of result cells, from `sqlpool_result_kind`.
pub const SQLPOOL_KIND_NULL: u32 = 0;
pub const SQLPOOL_KIND_BOOL: u32 = 1;
pub const SQLPOOL_KIND_INT64: u32 = 2;
pub const SQLPOOL_KIND_DOUBLE: u32 = 3;
/// Text, also for numeric (exact decimal), dates and times (ISO 8601),
/// intervals (ISO 8601 durations), uuid, json, inet and arrays (JSON); the
/// column's declared type tells which.
pub const SQLPOOL_KIND_TEXT: u32 = 4;
pub const SQLPOOL_KIND_BLOB: u32 = 5;

thread_local! {
    /// The result this thread read last: its handle and its entry, so that
    /// reading a result cell by cell takes no lock per call. `LAST_KEPT`
    /// holds the reference that keeps the entry alive while it is cached
    /// here; the two change together, only in `read_uncached` and
    /// `sqlpool_result_free` on this thread.
    ///
    /// Used while the entry is not marked freed: `sqlpool_result_free`
    /// marks it (on whichever thread frees it) before it returns, so a read
    /// that starts after the free asks the handle table, which answers
    /// "already freed". A read racing with a free on another thread reads
    /// memory this thread still holds, never freed memory.
    ///
    /// When the thread exits, `LAST_KEPT` goes first (`LAST_READ` has no
    /// destructor) and empties `LAST_READ` as it goes ([`Kept`]), so a read
    /// made later by another thread-local destructor never uses the entry.
    static LAST_READ: Cell<(usize, *const ResultEntry)> = const { Cell::new((0, std::ptr::null())) };
    static LAST_KEPT: RefCell<Kept> = const { RefCell::new(Kept(None)) };
}

/// The reference behind `LAST_READ`.
struct Kept(Option<Arc<ResultEntry>>);

impl Drop for Kept {
    fn drop(&mut self) {
        LAST_READ.set((0, std::ptr::null()));
    }
}

#[inline]
fn with_result<R>(
    result: *const sqlpool_result,
    f: impl FnOnce(&ResultSet) -> Result<R>,
) -> Result<R> {
    let h = handle(result, "result")?;
    let (cached, entry) = LAST_READ.get();
    if cached == h && !entry.is_null() {
        // SAFETY: `entry` is the entry `LAST_KEPT` holds a reference to on
        // this thread; both are replaced only by `read_uncached` and
        // `sqlpool_result_free` on this thread, never while `f` runs (it
        // only reads the result).
        let entry = unsafe { &*entry };
        if !entry.freed.load(Ordering::Acquire) {
            return f(&entry.set);
        }
    }
    read_uncached(h, f)
}

/// A read past this thread's cache: the handle table decides (a stale
/// handle is `SQLPOOL_MISUSE`), and the entry is cached for the next reads.
#[inline(never)]
fn read_uncached<R>(h: usize, f: impl FnOnce(&ResultSet) -> Result<R>) -> Result<R> {
    forget_last_read(|_| true);
    let entry = RESULTS.get(h)?;
    let r = f(&entry.set);
    let ptr = Arc::as_ptr(&entry);
    // (Not cached once this thread's cache is gone: the thread is exiting.)
    if LAST_KEPT
        .try_with(|kept| kept.borrow_mut().0 = Some(entry))
        .is_ok()
    {
        LAST_READ.set((h, ptr));
    }
    r
}

/// Empties this thread's cache if `which(handle)` says so; the cached
/// entry's last reference may go here.
fn forget_last_read(which: impl FnOnce(usize) -> bool) {
    let (cached, entry) = LAST_READ.get();
    if !entry.is_null() && which(cached) {
        LAST_READ.set((0, std::ptr::null()));
        let kept = LAST_KEPT.try_with(|kept| kept.borrow_mut().0.take());
        drop(kept);
    }
}

/// Kind reported by `sqlpool_result_column_data` when a column's non-NULL
/// cells are of different kinds (possible on SQLite); read such a column
/// cell by cell.
pub const SQLPOOL_KIND_MIXED: u32 = 6;

/// Flag of `sqlpool_column_data.flags`: some TEXT cell of the column holds
/// bytes that are not valid UTF-8 (SQLite stores whatever bytes it is
/// given as TEXT); they are in `bytes` unchanged.
pub const SQLPOOL_COLUMN_NOT_UTF8: u32 = 1;

/// A whole result column as arrays, from `sqlpool_result_column_data`.
/// Every pointer is owned by the result and valid until
/// `sqlpool_result_free`; arrays not used by `kind` are NULL.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sqlpool_column_data {
    /// `SQLPOOL_KIND_*` of every non-NULL cell; `SQLPOOL_KIND_NULL` when all
    /// cells are NULL; `SQLPOOL_KIND_MIXED` when kinds differ.
    pub kind: u32,
    /// `SQLPOOL_COLUMN_*` bits: `SQLPOOL_COLUMN_NOT_UTF8`.
    pub flags: u32,
    /// Number of rows = length of `nulls`, `ints`, `doubles`.
    pub rows: usize,
    /// One byte per row: 1 = NULL.
    pub nulls: *const u8,
    /// INT64 and BOOL columns: one value per row (0 where NULL).
    pub ints: *const i64,
    /// DOUBLE columns: one value per row (0 where NULL).
    pub doubles: *const f64,
    /// TEXT and BLOB columns: `rows + 1` offsets; row r is
    /// `bytes[offsets[r] .. offsets[r + 1]]` (empty where NULL).
    pub offsets: *const u64,
    pub bytes: *const u8,
}

/// Fills `*out` with column `column` as arrays, for reading a result in a
/// few calls instead of one per cell (bindings use this). The arrays are
/// the result's own storage (nothing is copied). Errors:
/// `SQLPOOL_OUT_OF_RANGE`, and as `sqlpool_result_row_count`.
#[no_mangle]
pub extern "C" fn sqlpool_result_column_data(
    result: *const sqlpool_result,
    column: usize,
    out: *mut sqlpool_column_data,
) -> sqlpool_status {
    boundary(|| {
        let out = out_arg(out, "out")?;
        with_result(result, |r| {
            let d = r.column_data(column)?;
            let ptr_or_null =
                |len: usize, p: *const u8| if len == 0 { std::ptr::null() } else { p };
            let data = sqlpool_column_data {
                kind: d.kind.map_or(SQLPOOL_KIND_MIXED, |k| k as u32),
                flags: if d.utf8 { 0 } else { SQLPOOL_COLUMN_NOT_UTF8 },
                rows: r.row_count(),
                nulls: ptr_or_null(d.nulls.len(), d.nulls.as_ptr()),
                ints: ptr_or_null(d.ints.len(), d.ints.as_ptr().cast()).cast(),
                doubles: ptr_or_null(d.doubles.len(), d.doubles.as_ptr().cast()).cast(),
                offsets: ptr_or_null(d.offsets.len(), d.offsets.as_ptr().cast()).cast(),
                bytes: if d.offsets.is_empty() {
                    std::ptr::null()
                } else {
                    d.bytes.as_ptr()
                },
            };
            out.put(data);
            Ok(())
        })
    })
}

/// The shape of a result in one call, from `sqlpool_result_describe`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sqlpool_result_info {
    pub rows: usize,
    pub columns: usize,
    /// For each column in order: its name, a NUL byte, its declared type
    /// (as `sqlpool_result_column_decltype`), a NUL byte. `names_len` bytes,
    /// owned by the result and valid until `sqlpool_result_free`.
    pub names: *const c_char,
    pub names_len: usize,
}

/// Row count, column count and every column's name and declared type in
/// one call, for bindings that pay per call (ctypes). Thread-safe like
/// every result getter. Errors: as `sqlpool_result_row_count`.
#[no_mangle]
pub extern "C" fn sqlpool_result_describe(
    result: *const sqlpool_result,
    out: *mut sqlpool_result_info,
) -> sqlpool_status {
    boundary(|| {
        let out = out_arg(out, "out")?;
        with_result(result, |r| {
            let names = r.description();
            let info = sqlpool_result_info {
                rows: r.row_count(),
                columns: r.column_count(),
                names: names.as_ptr().cast(),
                names_len: names.len(),
            };
            out.put(info);
            Ok(())
        })
    })
}

/// The body of every getter of one value: checks `out`, reads the value
/// under the result's handle, writes it on success only.
fn getter_boundary<T>(
    result: *const sqlpool_result,
    out: *mut T,
    read: impl FnOnce(&ResultSet) -> Result<T>,
) -> sqlpool_status {
    boundary(|| {
        let out = out_arg(out, "out")?;
        let v = with_result(result, read)?;
        out.put(v);
        Ok(())
    })
}

/// The body of the getters of borrowed bytes (text, blob): `*ptr` and
/// `*len`, both required, written on success only.
fn bytes_getter_boundary<P>(
    result: *const sqlpool_result,
    ptr: *mut *const P,
    len: *mut usize,
    read: impl for<'a> FnOnce(&'a ResultSet) -> Result<&'a [u8]>,
) -> sqlpool_status {
    boundary(|| {
        let ptr = out_arg(ptr, "ptr")?;
        let len = out_arg(len, "len")?;
        with_result(result, |r| {
            let bytes = read(r)?;
            ptr.put(bytes.as_ptr().cast());
            len.put(bytes.len());
            Ok(())
        })
    })
}

/// A query's result shape and first row in one struct, from
/// `sqlpool_conn_query_packed`. Every pointer is owned by the result and
/// valid until `sqlpool_result_free`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sqlpool_query_info {
    pub rows: usize,
    pub columns: usize,
    /// As `sqlpool_result_info.names`.
    pub names: *const c_char,
    pub names_len: usize,
    /// The first row packed in Python `struct` form (little-endian, no
    /// padding): `row_format` (ASCII, `row_format_len` bytes, e.g.
    /// `<q4sd`) lists its non-NULL cells in order, `q` int64, `?` bool,
    /// `d` double, `<n>s` n bytes of text or blob; `row_data` holds them.
    /// Both empty (length 0) when there is no row or more than 64 columns.
    pub row_format: *const c_char,
    pub row_format_len: usize,
    pub row_data: *const u8,
    pub row_data_len: usize,
    /// Bit c set: cell c of the first row is TEXT (UTF-8 unless
    /// `sqlpool_result_text_is_utf8` says otherwise).
    pub text_cells: u64,
    /// Bit c set: cell c of the first row is NULL (absent from `row_format`).
    pub null_cells: u64,
}

impl sqlpool_query_info {
    pub(crate) fn of(r: &ResultSet) -> sqlpool_query_info {
        let names = r.description();
        let packed = r.first_row_packed();
        let (format, data) = packed.map_or((&[][..], &[][..]), |p| (&p.format[..], &p.data[..]));
        sqlpool_query_info {
            rows: r.row_count(),
            columns: r.column_count(),
            names: names.as_ptr().cast(),
            names_len: names.len(),
            row_format: format.as_ptr().cast(),
            row_format_len: format.len(),
            row_data: data.as_ptr(),
            row_data_len: data.len(),
            text_cells: packed.map_or(0, |p| p.text_cells),
            null_cells: packed.map_or(0, |p| p.null_cells),
        }
    }
}

/// Frees a result; pointers obtained from it become invalid. NULL is
/// accepted and ignored; freeing twice returns `SQLPOOL_MISUSE`.
#[no_mangle]
pub extern "C" fn sqlpool_result_free(result: *mut sqlpool_result) -> sqlpool_status {
    boundary(|| {
        if result.is_null() {
            return Ok(());
        }
        let entry = RESULTS.remove(result as usize)?;
        // Other threads' cached copies are not used after this.
        entry.freed.store(true, Ordering::Release);
        drop(entry);
        // This thread's cached copy goes now (other threads' on their next read).
        forget_last_read(|cached| cached == result as usize);
        Ok(())
    })
}

/// Number of rows. Errors: `SQLPOOL_INVALID_ARGUMENT`, `SQLPOOL_MISUSE`.
#[no_mangle]
pub extern "C" fn sqlpool_result_row_count(
    result: *const sqlpool_result,
    out: *mut usize,
) -> sqlpool_status {
    getter_boundary(result, out, |r| Ok(r.row_count()))
}

/// Number of columns. Errors: as `sqlpool_result_row_count`.
#[no_mangle]
pub extern "C" fn sqlpool_result_column_count(
    result: *const sqlpool_result,
    out: *mut usize,
) -> sqlpool_status {
    getter_boundary(result, out, |r| Ok(r.column_count()))
}

fn put_str(s: &str, ptr: Out<*const c_char>, len: Option<Out<usize>>) {
    ptr.put(s.as_ptr().cast());
    if let Some(len) = len {
        len.put(s.len());
    }
}

/// A column's name: `*ptr` points at `*len` bytes of UTF-8, NOT
/// NUL-terminated, valid until `sqlpool_result_free`. `len` may be NULL.
/// Duplicate names are kept, in column order. Errors:
/// `SQLPOOL_OUT_OF_RANGE`, and as `sqlpool_result_row_count`.
#[no_mangle]
pub extern "C" fn sqlpool_result_column_name(
    result: *const sqlpool_result,
    column: usize,
    ptr: *mut *const c_char,
    len: *mut usize,
) -> sqlpool_status {
    boundary(|| {
        let ptr = out_arg(ptr, "ptr")?;
        with_result(result, |r| {
            put_str(&r.column(column)?.name, ptr, Out::optional(len));
            Ok(())
        })
    })
}

/// A column's declared type as the database names it (`int4`,
/// `timestamptz`, `text[]`; SQLite: the declared type, "" for expressions).
/// Pointer and lifetime as `sqlpool_result_column_name`.
#[no_mangle]
pub extern "C" fn sqlpool_result_column_decltype(
    result: *const sqlpool_result,
    column: usize,
    ptr: *mut *const c_char,
    len: *mut usize,
) -> sqlpool_status {
    boundary(|| {
        let ptr = out_arg(ptr, "ptr")?;
        with_result(result, |r| {
            put_str(&r.column(column)?.decl_type, ptr, Out::optional(len));
            Ok(())
        })
    })
}

/// Index of the first (leftmost) column named `name`. Errors:
/// `SQLPOOL_OUT_OF_RANGE` when there is none, and as
/// `sqlpool_result_row_count`.
#[no_mangle]
pub unsafe extern "C" fn sqlpool_result_column_index(
    result: *const sqlpool_result,
    name: *const c_char,
    out: *mut usize,
) -> sqlpool_status {
    getter_boundary(result, out, |r| {
        r.column_index(unsafe { str_arg(name, "name") }?)
    })
}

/// The kind (`SQLPOOL_KIND_*`) of cell (`row`, `column`). Errors:
/// `SQLPOOL_OUT_OF_RANGE`, and as `sqlpool_result_row_count`.
#[no_mangle]
pub extern "C" fn sqlpool_result_kind(
    result: *const sqlpool_result,
    row: usize,
    column: usize,
    out: *mut u32,
) -> sqlpool_status {
    getter_boundary(result, out, |r| Ok(r.cell(row, column)?.kind() as u32))
}

/// `*out` = 1 when the cell is NULL, else 0. Errors: as
/// `sqlpool_result_kind`.
#[no_mangle]
pub extern "C" fn sqlpool_result_is_null(
    result: *const sqlpool_result,
    row: usize,
    column: usize,
    out: *mut i32,
) -> sqlpool_status {
    getter_boundary(result, out, |r| {
        Ok(i32::from(r.cell(row, column)? == CellRef::Null))
    })
}

/// A cell as int64 (int64 or bool cells). Errors: `SQLPOOL_NULL_VALUE`,
/// `SQLPOOL_TYPE_MISMATCH`, and as `sqlpool_result_kind`.
#[no_mangle]
pub extern "C" fn sqlpool_result_get_int64(
    result: *const sqlpool_result,
    row: usize,
    column: usize,
    out: *mut i64,
) -> sqlpool_status {
    getter_boundary(result, out, |r| r.int64(row, column))
}

/// A cell as double (double cells, and int64 cells exactly representable).
/// Errors: as `sqlpool_result_get_int64`.
#[no_mangle]
pub extern "C" fn sqlpool_result_get_double(
    result: *const sqlpool_result,
    row: usize,
    column: usize,
    out: *mut f64,
) -> sqlpool_status {
    getter_boundary(result, out, |r| r.double(row, column))
}

/// A cell as bool, 1 or 0 (bool cells, and int64 cells holding 0 or 1).
/// Errors: as `sqlpool_result_get_int64`.
#[no_mangle]
pub extern "C" fn sqlpool_result_get_bool(
    result: *const sqlpool_result,
    row: usize,
    column: usize,
    out: *mut i32,
) -> sqlpool_status {
    getter_boundary(result, out, |r| Ok(i32::from(r.bool(row, column)?)))
}

/// A text cell: `*ptr` points at `*len` bytes, NOT NUL-terminated
/// (print it with `printf("%.*s", (int)len, ptr)`), valid until
/// `sqlpool_result_free`; for empty text `*len` is 0 and `*ptr` is non-NULL.
/// Both `ptr` and `len` are required. The bytes are UTF-8, except on
/// SQLite, which stores any bytes as TEXT: like `sqlite3_column_text`, they
/// come back unchanged, and `sqlpool_result_text_is_utf8` (or the
/// `SQLPOOL_COLUMN_NOT_UTF8` flag of `sqlpool_result_column_data`) tells.
/// Errors: as `sqlpool_result_get_int64`.
#[no_mangle]
pub extern "C" fn sqlpool_result_get_text(
    result: *const sqlpool_result,
    row: usize,
    column: usize,
    ptr: *mut *const c_char,
    len: *mut usize,
) -> sqlpool_status {
    bytes_getter_boundary(result, ptr, len, |r| r.text_bytes(row, column))
}

/// `*out` = 1 when text cell (`row`, `column`) is valid UTF-8, 0 when it
/// holds other bytes (only SQLite stores such TEXT; see
/// `sqlpool_result_get_text`). Errors: as `sqlpool_result_get_int64`.
#[no_mangle]
pub extern "C" fn sqlpool_result_text_is_utf8(
    result: *const sqlpool_result,
    row: usize,
    column: usize,
    out: *mut i32,
) -> sqlpool_status {
    getter_boundary(result, out, |r| Ok(i32::from(r.text(row, column)?.1)))
}

/// A blob cell (text cells give their bytes, as stored): `*ptr` points at `*len`
/// bytes valid until `sqlpool_result_free` (`*ptr` may be non-NULL with
/// `*len` 0). Errors: as `sqlpool_result_get_int64`.
#[no_mangle]
pub extern "C" fn sqlpool_result_get_blob(
    result: *const sqlpool_result,
    row: usize,
    column: usize,
    ptr: *mut *const u8,
    len: *mut usize,
) -> sqlpool_status {
    bytes_getter_boundary(result, ptr, len, |r| r.blob(row, column))
}
