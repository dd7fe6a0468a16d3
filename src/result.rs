//! A fully materialised query result, shared by both backends.

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

/// Rows stored row-major in one vector: cell (r, c) is `cells[r * ncols + c]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResultSet {
    columns: Vec<Column>,
    cells: Vec<Value>,
    rows: usize,
}

impl ResultSet {
    pub fn new(columns: Vec<Column>) -> ResultSet {
        ResultSet {
            columns,
            cells: Vec::new(),
            rows: 0,
        }
    }

    pub fn reserve_rows(&mut self, rows: usize) {
        self.cells.reserve(rows * self.columns.len());
    }

    /// Appends one row; `row` must yield exactly one value per column.
    pub fn push_row(&mut self, row: impl IntoIterator<Item = Value>) {
        let before = self.cells.len();
        self.cells.extend(row);
        debug_assert_eq!(self.cells.len() - before, self.columns.len());
        self.rows += 1;
    }

    pub fn row_count(&self) -> usize {
        self.rows
    }

    pub fn column_count(&self) -> usize {
        self.columns.len()
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    pub fn column(&self, col: usize) -> Result<&Column> {
        self.columns.get(col).ok_or_else(|| {
            Error::new(
                Status::OutOfRange,
                format!(
                    "column index {col} is out of range (the result has {} columns)",
                    self.columns.len()
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

    pub fn cell(&self, row: usize, col: usize) -> Result<&Value> {
        if row >= self.rows {
            return Err(Error::new(
                Status::OutOfRange,
                format!(
                    "row index {row} is out of range (the result has {} rows)",
                    self.rows
                ),
            ));
        }
        self.column(col)?;
        Ok(&self.cells[row * self.columns.len() + col])
    }

    /// The cell, which must be of kind `want` (or convertible to it without
    /// loss); `NullValue` for NULL, `TypeMismatch` otherwise.
    pub fn typed_cell(&self, row: usize, col: usize, want: Kind) -> Result<&Value> {
        let value = self.cell(row, col)?;
        if value.kind() == want {
            return Ok(value);
        }
        let status = if matches!(value, Value::Null) {
            Status::NullValue
        } else {
            Status::TypeMismatch
        };
        Err(Error::new(
            status,
            format!(
                "cell ({row}, {col}) of column {:?} holds {}, not {}",
                self.columns[col].name,
                value.kind_name(),
                kind_name(want)
            ),
        ))
    }

    pub fn int64(&self, row: usize, col: usize) -> Result<i64> {
        match self.cell(row, col)? {
            Value::Int64(v) => Ok(*v),
            Value::Bool(b) => Ok(i64::from(*b)),
            _ => self.typed_cell(row, col, Kind::Int64).map(|_| 0),
        }
    }

    pub fn double(&self, row: usize, col: usize) -> Result<f64> {
        match self.cell(row, col)? {
            Value::Double(v) => Ok(*v),
            // Exact only up to 2^53; larger integers are a type mismatch.
            Value::Int64(v) if v.unsigned_abs() <= (1u64 << 53) => Ok(*v as f64),
            _ => self.typed_cell(row, col, Kind::Double).map(|_| 0.0),
        }
    }

    pub fn bool(&self, row: usize, col: usize) -> Result<bool> {
        match self.cell(row, col)? {
            Value::Bool(v) => Ok(*v),
            Value::Int64(v @ (0 | 1)) => Ok(*v == 1),
            _ => self.typed_cell(row, col, Kind::Bool).map(|_| false),
        }
    }

    pub fn text(&self, row: usize, col: usize) -> Result<&str> {
        match self.typed_cell(row, col, Kind::Text)? {
            Value::Text(s) => Ok(s),
            _ => unreachable!("typed_cell checked the kind"),
        }
    }

    pub fn blob(&self, row: usize, col: usize) -> Result<&[u8]> {
        match self.cell(row, col)? {
            Value::Blob(b) => Ok(b),
            Value::Text(s) => Ok(s.as_bytes()),
            _ => self.typed_cell(row, col, Kind::Blob).map(|_| &[][..]),
        }
    }
}
