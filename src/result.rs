//! A fully materialised query result, shared by both backends.

use std::sync::OnceLock;

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
    /// Column-major copies made on request, for bulk readers.
    column_data: Vec<OnceLock<ColumnData>>,
    /// Every column's name and declared type in one buffer, on request.
    description: OnceLock<Vec<u8>>,
}

/// One column in arrays, for readers that want a whole column per call
/// (the Python binding). `kind` is the kind of every non-NULL cell,
/// `Kind::Null` when all are NULL, or `None` when kinds differ (SQLite).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ColumnData {
    pub kind: Option<Kind>,
    pub nulls: Vec<u8>,
    pub ints: Vec<i64>,
    pub doubles: Vec<f64>,
    pub offsets: Vec<u64>,
    pub bytes: Vec<u8>,
}

impl ResultSet {
    pub fn new(columns: Vec<Column>) -> ResultSet {
        ResultSet {
            column_data: (0..columns.len()).map(|_| OnceLock::new()).collect(),
            description: OnceLock::new(),
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

    /// `name\0decltype\0` for each column, in order, built on first request.
    pub fn description(&self) -> &[u8] {
        self.description.get_or_init(|| {
            let mut out = Vec::new();
            for c in &self.columns {
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

    pub fn cell(&self, row: usize, col: usize) -> Result<&Value> {
        if row >= self.rows {
            return Err(Error::new(
                Status::OutOfRange,
                format!(
                    "row index {row} is out of range (the result has {} row{})",
                    self.rows,
                    if self.rows == 1 { "" } else { "s" }
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

    /// The whole column as arrays, built on first request and kept.
    pub fn column_data(&self, col: usize) -> Result<&ColumnData> {
        self.column(col)?;
        Ok(self.column_data[col].get_or_init(|| self.build_column_data(col)))
    }

    fn build_column_data(&self, col: usize) -> ColumnData {
        let ncols = self.columns.len();
        let cells = || {
            self.cells
                .iter()
                .skip(col)
                .step_by(ncols.max(1))
                .take(self.rows)
        };
        let mut kind = Some(Kind::Null);
        for v in cells() {
            kind = match (kind, v.kind()) {
                (k, Kind::Null) => k,
                (Some(Kind::Null), k) => Some(k),
                (Some(a), b) if a == b => Some(a),
                _ => None,
            };
        }
        let mut data = ColumnData {
            kind,
            ..ColumnData::default()
        };
        data.nulls = cells()
            .map(|v| u8::from(matches!(v, Value::Null)))
            .collect();
        match kind {
            Some(Kind::Int64 | Kind::Bool) => {
                data.ints = cells()
                    .map(|v| match v {
                        Value::Int64(i) => *i,
                        Value::Bool(b) => i64::from(*b),
                        _ => 0,
                    })
                    .collect()
            }
            Some(Kind::Double) => {
                data.doubles = cells()
                    .map(|v| if let Value::Double(d) = v { *d } else { 0.0 })
                    .collect()
            }
            Some(Kind::Text | Kind::Blob) => {
                data.offsets.reserve(self.rows + 1);
                data.offsets.push(0);
                for v in cells() {
                    match v {
                        Value::Text(t) => data.bytes.extend_from_slice(t.as_bytes()),
                        Value::Blob(b) => data.bytes.extend_from_slice(b),
                        _ => {}
                    }
                    data.offsets.push(data.bytes.len() as u64);
                }
            }
            _ => {}
        }
        data
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
