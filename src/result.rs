//! A fully materialised query result, shared by both backends.
//!
//! Cells are stored column by column, in the arrays that
//! `sqlpool_result_column_data` hands to C as they are (nulls, 64-bit
//! integers, doubles, offsets into one byte buffer): backends append each
//! cell straight into its column, and per-cell getters and whole-column
//! readers both read the same arrays without building anything.

use std::sync::{Arc, OnceLock};

use crate::error::{Error, Result, Status};
use crate::value::{kind_name, Kind, Value};

/// Name and declared type of one result column.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    /// The database's type name (`int4`, `timestamptz`, `INTEGER`, ...), or
    /// an empty string where the database declares none (SQLite expressions).
    pub decl_type: String,
}

/// Rows stored column-major: one [`ColumnData`] per column.
#[derive(Clone, Debug, Default)]
pub struct ResultSet {
    /// Shared with the statement's cached description where there is one.
    columns: Arc<[Column]>,
    data: Vec<ColumnData>,
    rows: usize,
    /// Every column's name and declared type in one buffer, on request.
    description: OnceLock<Vec<u8>>,
    /// The first row packed for bindings, on request.
    first_row: OnceLock<Option<PackedRow>>,
}

/// One row packed in Python `struct` form (little-endian), so a binding
/// that pays per call turns it into values in one step: `format` lists
/// the non-NULL cells (`q` int64, `?` bool, `d` double, `<n>s` text or
/// blob bytes), `data` holds them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PackedRow {
    pub format: Vec<u8>,
    pub data: Vec<u8>,
    /// Bit c: cell c is TEXT.
    pub text_cells: u64,
    /// Bit c: cell c is NULL (not in `format`).
    pub null_cells: u64,
}

impl PartialEq for ResultSet {
    fn eq(&self, other: &ResultSet) -> bool {
        self.columns == other.columns && self.rows == other.rows && self.data == other.data
    }
}

/// One column in arrays (the layout of `sqlpool_column_data`).
///
/// Each array is either unused (empty) or holds one entry per row
/// (`offsets`: rows + 1): an array starts when the first cell of its kind
/// arrives, padded for the rows before, and gets a placeholder (0, empty)
/// for every later cell of another kind. A column of one kind therefore
/// grows one array per cell.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnData {
    /// The kind of every non-NULL cell, `Kind::Null` while all are NULL,
    /// `None` when kinds differ (SQLite; then `kinds` holds each cell's).
    pub kind: Option<Kind>,
    /// One byte per row: 1 = NULL.
    pub nulls: Vec<u8>,
    /// Int64 and bool cells.
    pub ints: Vec<i64>,
    pub doubles: Vec<f64>,
    /// Text and blob cells: row r is `bytes[offsets[r]..offsets[r + 1]]`.
    pub offsets: Vec<u64>,
    pub bytes: Vec<u8>,
    /// Each cell's kind (`Kind as u8`), kept only once kinds differ.
    kinds: Vec<u8>,
    /// Every text cell is valid UTF-8 (SQLite may store any bytes as TEXT;
    /// they are kept as they are, and this says so).
    pub utf8: bool,
}

impl Default for ColumnData {
    fn default() -> ColumnData {
        ColumnData {
            kind: Some(Kind::Null),
            nulls: Vec::new(),
            ints: Vec::new(),
            doubles: Vec::new(),
            offsets: Vec::new(),
            bytes: Vec::new(),
            kinds: Vec::new(),
            utf8: true,
        }
    }
}

/// A cell read from (or appended to) a result, borrowing its bytes.
#[derive(Clone, Debug, PartialEq)]
pub enum CellRef<'a> {
    Null,
    Bool(bool),
    Int64(i64),
    Double(f64),
    /// Text as stored: UTF-8 except SQLite TEXT holding other bytes.
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

impl CellRef<'_> {
    pub fn kind(&self) -> Kind {
        match self {
            CellRef::Null => Kind::Null,
            CellRef::Bool(_) => Kind::Bool,
            CellRef::Int64(_) => Kind::Int64,
            CellRef::Double(_) => Kind::Double,
            CellRef::Text(_) => Kind::Text,
            CellRef::Blob(_) => Kind::Blob,
        }
    }

    /// An owned value; text that is not UTF-8 becomes a blob (its bytes kept).
    pub fn to_value(&self) -> Value {
        match *self {
            CellRef::Null => Value::Null,
            CellRef::Bool(b) => Value::Bool(b),
            CellRef::Int64(i) => Value::Int64(i),
            CellRef::Double(d) => Value::Double(d),
            CellRef::Text(t) => match std::str::from_utf8(t) {
                Ok(s) => Value::Text(s.to_owned()),
                Err(_) => Value::Blob(t.to_vec()),
            },
            CellRef::Blob(b) => Value::Blob(b.to_vec()),
        }
    }
}

impl<'a> From<&'a Value> for CellRef<'a> {
    fn from(v: &'a Value) -> CellRef<'a> {
        match v {
            Value::Null => CellRef::Null,
            Value::Bool(b) => CellRef::Bool(*b),
            Value::Int64(i) => CellRef::Int64(*i),
            Value::Double(d) => CellRef::Double(*d),
            Value::Text(s) => CellRef::Text(s.as_bytes()),
            Value::Blob(b) => CellRef::Blob(b),
        }
    }
}

/// What [`ResultSet::push_row`] takes: owned values or borrowed cells.
pub trait IntoCell {
    fn push_into(self, column: &mut ColumnData);
}

impl IntoCell for Value {
    fn push_into(self, column: &mut ColumnData) {
        column.push_value(&self);
    }
}

impl IntoCell for &Value {
    fn push_into(self, column: &mut ColumnData) {
        column.push_value(self);
    }
}

impl IntoCell for CellRef<'_> {
    fn push_into(self, column: &mut ColumnData) {
        column.push(self);
    }
}

impl ColumnData {
    pub fn rows(&self) -> usize {
        self.nulls.len()
    }

    /// Notes a cell of kind `k` (not NULL) at the next row.
    #[inline]
    fn note_kind(&mut self, k: Kind) {
        match self.kind {
            Some(current) if current == k => {}
            Some(Kind::Null) => self.kind = Some(k),
            Some(current) => {
                // Kinds differ from here on: remember each cell's.
                let nulls = &self.nulls;
                self.kinds = nulls
                    .iter()
                    .map(|n| if *n == 1 { Kind::Null } else { current } as u8)
                    .collect();
                self.kind = None;
            }
            None => {}
        }
        if self.kind.is_none() {
            self.kinds.push(k as u8);
        }
    }

    /// Appends one cell.
    pub fn push(&mut self, cell: CellRef<'_>) {
        match cell {
            CellRef::Null => self.push_null(),
            CellRef::Bool(b) => self.push_int(Kind::Bool, i64::from(b)),
            CellRef::Int64(i) => self.push_int(Kind::Int64, i),
            CellRef::Double(d) => self.push_double(d),
            CellRef::Text(t) => {
                self.bytes_cell(Kind::Text).extend_from_slice(t);
                self.end_bytes_cell();
            }
            CellRef::Blob(b) => {
                self.bytes_cell(Kind::Blob).extend_from_slice(b);
                self.end_bytes_cell();
            }
        }
    }

    /// Appends one value (its text is a `String`: UTF-8, not checked again).
    pub fn push_value(&mut self, value: &Value) {
        match value {
            Value::Text(t) => {
                self.bytes_cell(Kind::Text).extend_from_slice(t.as_bytes());
                self.end_valid_text_cell();
            }
            other => self.push(CellRef::from(other)),
        }
    }

    pub fn push_null(&mut self) {
        if self.kind.is_none() {
            self.kinds.push(Kind::Null as u8);
        }
        self.nulls.push(1);
        self.pad_others(None);
    }

    /// An int64 (`Kind::Int64`) or bool (`Kind::Bool`, 0 or 1) cell.
    #[inline]
    pub fn push_int(&mut self, kind: Kind, v: i64) {
        self.note_kind(kind);
        let row = self.nulls.len();
        self.nulls.push(0);
        if self.ints.len() < row {
            self.ints.resize(row, 0);
        }
        self.ints.push(v);
        self.pad_others(Some(Kind::Int64));
    }

    #[inline]
    pub fn push_double(&mut self, v: f64) {
        self.note_kind(Kind::Double);
        let row = self.nulls.len();
        self.nulls.push(0);
        if self.doubles.len() < row {
            self.doubles.resize(row, 0.0);
        }
        self.doubles.push(v);
        self.pad_others(Some(Kind::Double));
    }

    /// Starts a text (`Kind::Text`) or blob cell: the caller appends its
    /// bytes to the returned buffer, then calls [`ColumnData::end_bytes_cell`].
    /// Decoders write text here directly, without a `String` per cell.
    #[inline]
    pub fn bytes_cell(&mut self, kind: Kind) -> &mut Vec<u8> {
        self.note_kind(kind);
        let row = self.nulls.len();
        self.nulls.push(0);
        if self.offsets.len() < row + 1 {
            self.offsets.resize(row + 1, self.bytes.len() as u64);
        }
        self.pad_others(Some(Kind::Text));
        &mut self.bytes
    }

    /// Ends the cell [`ColumnData::bytes_cell`] started; text is checked
    /// for UTF-8 here (bytes that are not are kept, and `utf8` says so).
    #[inline]
    pub fn end_bytes_cell(&mut self) {
        let start = self.offsets[self.offsets.len() - 1] as usize;
        let is_text = match self.kind {
            Some(k) => k == Kind::Text,
            None => self.kinds.last() == Some(&(Kind::Text as u8)),
        };
        if is_text && self.utf8 && std::str::from_utf8(&self.bytes[start..]).is_err() {
            self.utf8 = false;
        }
        self.offsets.push(self.bytes.len() as u64);
    }

    /// Ends a text cell whose bytes the caller knows are UTF-8 (it wrote
    /// them itself), without checking them again.
    #[inline]
    pub fn end_valid_text_cell(&mut self) {
        self.offsets.push(self.bytes.len() as u64);
    }

    /// Gives the arrays other than `filled`'s their placeholder for the row
    /// just appended (only arrays already in use).
    #[inline]
    fn pad_others(&mut self, filled: Option<Kind>) {
        if filled != Some(Kind::Int64) && !self.ints.is_empty() {
            self.ints.push(0);
        }
        if filled != Some(Kind::Double) && !self.doubles.is_empty() {
            self.doubles.push(0.0);
        }
        if filled != Some(Kind::Text) && !self.offsets.is_empty() {
            self.offsets.push(self.bytes.len() as u64);
        }
    }

    fn kind_at(&self, row: usize) -> Kind {
        match self.kind {
            _ if self.nulls[row] == 1 => Kind::Null,
            Some(k) => k,
            None => kind_from_u8(self.kinds[row]),
        }
    }

    /// The bytes of text or blob cell `row`.
    #[inline]
    fn bytes_at(&self, row: usize) -> &[u8] {
        &self.bytes[self.offsets[row] as usize..self.offsets[row + 1] as usize]
    }

    /// Cell `row` (in range).
    fn cell(&self, row: usize) -> CellRef<'_> {
        let bytes = || self.bytes_at(row);
        match self.kind_at(row) {
            Kind::Null => CellRef::Null,
            Kind::Bool => CellRef::Bool(self.ints[row] != 0),
            Kind::Int64 => CellRef::Int64(self.ints[row]),
            Kind::Double => CellRef::Double(self.doubles[row]),
            Kind::Text => CellRef::Text(bytes()),
            Kind::Blob => CellRef::Blob(bytes()),
        }
    }

    /// Rows `from..to` of this column as a column of their own.
    fn slice(&self, from: usize, to: usize) -> ColumnData {
        let mut out = ColumnData::default();
        for r in from..to {
            out.push(self.cell(r));
        }
        out
    }
}

fn kind_from_u8(k: u8) -> Kind {
    match k {
        1 => Kind::Bool,
        2 => Kind::Int64,
        3 => Kind::Double,
        4 => Kind::Text,
        5 => Kind::Blob,
        _ => Kind::Null,
    }
}

impl ResultSet {
    pub fn new(columns: impl Into<Arc<[Column]>>) -> ResultSet {
        let columns = columns.into();
        ResultSet {
            data: (0..columns.len()).map(|_| ColumnData::default()).collect(),
            description: OnceLock::new(),
            first_row: OnceLock::new(),
            columns,
            rows: 0,
        }
    }

    pub fn reserve_rows(&mut self, rows: usize) {
        for d in &mut self.data {
            d.nulls.reserve(rows);
        }
    }

    /// Appends one row; `row` must yield exactly one cell per column.
    pub fn push_row<C: IntoCell>(&mut self, row: impl IntoIterator<Item = C>) {
        let mut n = 0;
        for (cell, column) in row.into_iter().zip(self.data.iter_mut()) {
            cell.push_into(column);
            n += 1;
        }
        debug_assert_eq!(n, self.columns.len());
        self.rows += 1;
    }

    /// The columns to append a row to cell by cell (each exactly once),
    /// then [`ResultSet::end_row`].
    pub fn row_sink(&mut self) -> &mut [ColumnData] {
        &mut self.data
    }

    /// Ends a row appended through [`ResultSet::row_sink`].
    pub fn end_row(&mut self) {
        self.rows += 1;
        debug_assert!(self.data.iter().all(|d| d.rows() == self.rows));
    }

    /// Rows `from..to` as a result of their own (the same columns).
    pub fn slice_rows(&self, from: usize, to: usize) -> ResultSet {
        let to = to.min(self.rows);
        let from = from.min(to);
        ResultSet {
            columns: self.columns.clone(),
            data: self.data.iter().map(|d| d.slice(from, to)).collect(),
            rows: to - from,
            description: OnceLock::new(),
            first_row: OnceLock::new(),
        }
    }

    pub fn row_count(&self) -> usize {
        self.rows
    }

    pub fn column_count(&self) -> usize {
        self.columns.len()
    }

    /// `name\0decltype\0` for each column, in order, built on first request.
    pub fn description(&self) -> &[u8] {
        self.description.get_or_init(|| {
            let mut out = Vec::new();
            for c in self.columns.iter() {
                out.extend_from_slice(c.name.as_bytes());
                out.push(0);
                out.extend_from_slice(c.decl_type.as_bytes());
                out.push(0);
            }
            out
        })
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The columns, shared (no copy).
    pub fn shared_columns(&self) -> Arc<[Column]> {
        self.columns.clone()
    }

    /// The first row packed (see [`PackedRow`]); `None` without rows or
    /// with more than 64 columns. Built on first request and kept.
    pub fn first_row_packed(&self) -> Option<&PackedRow> {
        self.first_row
            .get_or_init(|| {
                if self.rows == 0 || self.columns.len() > 64 {
                    return None;
                }
                let mut p = PackedRow {
                    format: b"<".to_vec(),
                    ..PackedRow::default()
                };
                for (c, column) in self.data.iter().enumerate() {
                    match column.cell(0) {
                        CellRef::Null => p.null_cells |= 1 << c,
                        CellRef::Bool(b) => {
                            p.format.push(b'?');
                            p.data.push(u8::from(b));
                        }
                        CellRef::Int64(i) => {
                            p.format.push(b'q');
                            p.data.extend_from_slice(&i.to_le_bytes());
                        }
                        CellRef::Double(d) => {
                            p.format.push(b'd');
                            p.data.extend_from_slice(&d.to_le_bytes());
                        }
                        CellRef::Text(b) | CellRef::Blob(b) => {
                            if column.kind_at(0) == Kind::Text {
                                p.text_cells |= 1 << c;
                            }
                            p.format
                                .extend_from_slice(format!("{}s", b.len()).as_bytes());
                            p.data.extend_from_slice(b);
                        }
                    }
                }
                Some(p)
            })
            .as_ref()
    }

    pub fn column(&self, col: usize) -> Result<&Column> {
        self.columns.get(col).ok_or_else(|| {
            Error::new(
                Status::OutOfRange,
                format!(
                    "column index {col} is out of range (the result has {} column{})",
                    self.columns.len(),
                    if self.columns.len() == 1 { "" } else { "s" }
                ),
            )
        })
    }

    /// Index of the first column with this name. Duplicate names are kept
    /// positionally; a lookup by name finds the leftmost one.
    pub fn column_index(&self, name: &str) -> Result<usize> {
        self.columns
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| Error::new(Status::OutOfRange, format!("no column named {name:?}")))
    }

    pub fn cell(&self, row: usize, col: usize) -> Result<CellRef<'_>> {
        Ok(self.cell_column(row, col)?.cell(row))
    }

    /// The column of cell (`row`, `col`), both checked: the getters' one
    /// range check.
    #[inline]
    fn cell_column(&self, row: usize, col: usize) -> Result<&ColumnData> {
        match self.data.get(col) {
            Some(d) if row < self.rows => Ok(d),
            _ => Err(self.out_of_range(row, col)),
        }
    }

    #[cold]
    fn out_of_range(&self, row: usize, col: usize) -> Error {
        if row >= self.rows {
            return Error::new(
                Status::OutOfRange,
                format!(
                    "row index {row} is out of range (the result has {} row{})",
                    self.rows,
                    if self.rows == 1 { "" } else { "s" }
                ),
            );
        }
        match self.column(col) {
            Err(e) => e,
            Ok(_) => unreachable!("called for an index out of range"),
        }
    }

    // The typed getters read a column of their own kind straight from its
    // array (the per-cell C getters' path); other cells go through
    // [`CellRef`].

    #[inline]
    pub fn int64(&self, row: usize, col: usize) -> Result<i64> {
        let d = self.cell_column(row, col)?;
        if d.kind == Some(Kind::Int64) && d.nulls[row] == 0 {
            return Ok(d.ints[row]);
        }
        match d.cell(row) {
            CellRef::Int64(v) => Ok(v),
            CellRef::Bool(b) => Ok(i64::from(b)),
            other => Err(self.wrong_kind(row, col, other, Kind::Int64)),
        }
    }

    #[inline]
    pub fn double(&self, row: usize, col: usize) -> Result<f64> {
        let d = self.cell_column(row, col)?;
        if d.kind == Some(Kind::Double) && d.nulls[row] == 0 {
            return Ok(d.doubles[row]);
        }
        match d.cell(row) {
            CellRef::Double(v) => Ok(v),
            // Exact only up to 2^53; larger integers are a type mismatch.
            CellRef::Int64(v) if v.unsigned_abs() <= (1u64 << 53) => Ok(v as f64),
            other => Err(self.wrong_kind(row, col, other, Kind::Double)),
        }
    }

    pub fn bool(&self, row: usize, col: usize) -> Result<bool> {
        match self.cell(row, col)? {
            CellRef::Bool(v) => Ok(v),
            CellRef::Int64(v @ (0 | 1)) => Ok(v == 1),
            other => Err(self.wrong_kind(row, col, other, Kind::Bool)),
        }
    }

    /// A text cell's bytes as stored, and whether they are UTF-8.
    pub fn text(&self, row: usize, col: usize) -> Result<(&[u8], bool)> {
        let t = self.text_bytes(row, col)?;
        let utf8 = self.data[col].utf8 || std::str::from_utf8(t).is_ok();
        Ok((t, utf8))
    }

    /// A text cell's bytes as stored (UTF-8 or not).
    #[inline]
    pub fn text_bytes(&self, row: usize, col: usize) -> Result<&[u8]> {
        let d = self.cell_column(row, col)?;
        if d.kind == Some(Kind::Text) && d.nulls[row] == 0 {
            return Ok(d.bytes_at(row));
        }
        match d.cell(row) {
            CellRef::Text(t) => Ok(t),
            other => Err(self.wrong_kind(row, col, other, Kind::Text)),
        }
    }

    #[inline]
    pub fn blob(&self, row: usize, col: usize) -> Result<&[u8]> {
        let d = self.cell_column(row, col)?;
        if matches!(d.kind, Some(Kind::Blob | Kind::Text)) && d.nulls[row] == 0 {
            return Ok(d.bytes_at(row));
        }
        match d.cell(row) {
            CellRef::Blob(b) | CellRef::Text(b) => Ok(b),
            other => Err(self.wrong_kind(row, col, other, Kind::Blob)),
        }
    }

    #[cold]
    fn wrong_kind(&self, row: usize, col: usize, cell: CellRef<'_>, want: Kind) -> Error {
        let status = if cell == CellRef::Null {
            Status::NullValue
        } else {
            Status::TypeMismatch
        };
        Error::new(
            status,
            format!(
                "cell ({row}, {col}) of column {:?} holds {}, not {}",
                self.columns[col].name,
                kind_name(cell.kind()),
                kind_name(want)
            ),
        )
    }

    /// The whole column as arrays (the result's own storage).
    pub fn column_data(&self, col: usize) -> Result<&ColumnData> {
        self.column(col)?;
        Ok(&self.data[col])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(n: usize) -> Vec<Column> {
        (0..n)
            .map(|i| Column {
                name: format!("c{i}"),
                decl_type: String::new(),
            })
            .collect()
    }

    #[test]
    fn homogeneous_columns_fill_one_array_each() {
        let mut rs = ResultSet::new(columns(3));
        rs.push_row([Value::Null, Value::Null, Value::Text("a".into())]);
        rs.push_row([Value::Int64(7), Value::Double(0.5), Value::Null]);
        rs.push_row([Value::Null, Value::Double(1.5), Value::Text("bc".into())]);
        let ints = rs.column_data(0).unwrap();
        assert_eq!(ints.kind, Some(Kind::Int64));
        assert_eq!(ints.nulls, [1, 0, 1]);
        assert_eq!(ints.ints, [0, 7, 0]);
        assert!(ints.doubles.is_empty() && ints.offsets.is_empty());
        let doubles = rs.column_data(1).unwrap();
        assert_eq!(doubles.doubles, [0.0, 0.5, 1.5]);
        let text = rs.column_data(2).unwrap();
        assert_eq!(text.offsets, [0, 1, 1, 3]);
        assert_eq!(text.bytes, b"abc");
        assert_eq!(rs.cell(2, 2).unwrap(), CellRef::Text(b"bc"));
        assert_eq!(rs.int64(1, 0).unwrap(), 7);
        assert_eq!(rs.int64(0, 0).unwrap_err().status, Status::NullValue);
        assert_eq!(rs.text(1, 1).unwrap_err().status, Status::TypeMismatch);
    }

    /// The typed getters answer the same whether a column is of one kind
    /// (read straight from its array) or mixed (read cell by cell).
    #[test]
    fn typed_getters_agree_on_uniform_and_mixed_columns() {
        let cells = [
            Value::Int64(3),
            Value::Null,
            Value::Text("tx".into()),
            Value::Double(0.5),
            Value::Blob(vec![9]),
            Value::Bool(true),
        ];
        let mut mixed = ResultSet::new(columns(1));
        for v in &cells {
            mixed.push_row([v]);
        }
        for (r, v) in cells.iter().enumerate() {
            let mut uniform = ResultSet::new(columns(1));
            uniform.push_row([Value::Null]);
            uniform.push_row([v]);
            for (rs, row) in [(&uniform, 1), (&mixed, r)] {
                let status = |e: Error| e.status;
                let what = format!("{v:?} at row {row}");
                assert_eq!(
                    rs.int64(row, 0).map_err(status),
                    match v {
                        Value::Int64(i) => Ok(*i),
                        Value::Bool(b) => Ok(i64::from(*b)),
                        Value::Null => Err(Status::NullValue),
                        _ => Err(Status::TypeMismatch),
                    },
                    "int64 of {what}"
                );
                assert_eq!(
                    rs.double(row, 0).map_err(status),
                    match v {
                        Value::Double(d) => Ok(*d),
                        Value::Int64(i) => Ok(*i as f64),
                        Value::Null => Err(Status::NullValue),
                        _ => Err(Status::TypeMismatch),
                    },
                    "double of {what}"
                );
                assert_eq!(
                    rs.text_bytes(row, 0).map_err(status),
                    match v {
                        Value::Text(t) => Ok(t.as_bytes()),
                        Value::Null => Err(Status::NullValue),
                        _ => Err(Status::TypeMismatch),
                    },
                    "text of {what}"
                );
                assert_eq!(
                    rs.blob(row, 0).map_err(status),
                    match v {
                        Value::Text(t) => Ok(t.as_bytes()),
                        Value::Blob(b) => Ok(&b[..]),
                        Value::Null => Err(Status::NullValue),
                        _ => Err(Status::TypeMismatch),
                    },
                    "blob of {what}"
                );
            }
            assert_eq!(uniform.int64(2, 0).unwrap_err().status, Status::OutOfRange);
            assert_eq!(uniform.int64(0, 1).unwrap_err().status, Status::OutOfRange);
        }
    }

    #[test]
    fn mixed_columns_keep_each_cells_kind() {
        let mut rs = ResultSet::new(columns(1));
        let cells = [
            Value::Int64(1),
            Value::Null,
            Value::Text("x".into()),
            Value::Double(2.5),
            Value::Blob(vec![0, 1]),
            Value::Bool(true),
        ];
        for v in &cells {
            rs.push_row([v]);
        }
        assert_eq!(rs.column_data(0).unwrap().kind, None);
        for (r, v) in cells.iter().enumerate() {
            assert_eq!(rs.cell(r, 0).unwrap().to_value(), *v, "row {r}");
        }
        let tail = rs.slice_rows(2, 4);
        assert_eq!(tail.row_count(), 2);
        assert_eq!(tail.cell(1, 0).unwrap(), CellRef::Double(2.5));
    }

    #[test]
    fn the_first_row_packs_for_struct_unpack() {
        let mut rs = ResultSet::new(columns(5));
        rs.push_row([
            Value::Int64(-2),
            Value::Null,
            Value::Text("ab".into()),
            Value::Double(0.5),
            Value::Bool(true),
        ]);
        let p = rs.first_row_packed().unwrap();
        assert_eq!(p.format, b"<q2sd?");
        let mut data = (-2i64).to_le_bytes().to_vec();
        data.extend_from_slice(b"ab");
        data.extend_from_slice(&0.5f64.to_le_bytes());
        data.push(1);
        assert_eq!(p.data, data);
        assert_eq!((p.text_cells, p.null_cells), (0b100, 0b10));
        assert!(ResultSet::new(columns(1)).first_row_packed().is_none());
    }

    #[test]
    fn text_that_is_not_utf8_keeps_its_bytes() {
        let mut rs = ResultSet::new(columns(1));
        rs.push_row([CellRef::Text(b"ok")]);
        rs.push_row([CellRef::Text(b"A\xffB")]);
        assert!(!rs.column_data(0).unwrap().utf8);
        assert_eq!(rs.text(0, 0).unwrap(), (&b"ok"[..], true));
        assert_eq!(rs.text(1, 0).unwrap(), (&b"A\xffB"[..], false));
        assert_eq!(rs.blob(1, 0).unwrap(), b"A\xffB");
    }
}
