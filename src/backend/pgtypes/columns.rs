//! Result cells decoded straight into a result's column arrays (the layout
//! `sqlpool_result_column_data` exposes): the common types without a
//! `Value` or a `String` per cell, the rest through [`super::decode`].

use tokio_postgres::types::{FromSql, Type};

use super::{decode, is_texty, write_timestamp, BoxError, LastDay, NO_DAY};
use crate::result::ColumnData;
use crate::value::{Kind, Value};

/// A cell's binary value as the server sent it (`None`: NULL), any type.
pub struct RawCell<'a>(pub Option<&'a [u8]>);

impl<'a> FromSql<'a> for RawCell<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<RawCell<'a>, BoxError> {
        Ok(RawCell(Some(raw)))
    }

    fn from_sql_null(_: &Type) -> Result<RawCell<'a>, BoxError> {
        Ok(RawCell(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// How one result column's cells are decoded, chosen once per result so
/// that a cell costs no type dispatch.
pub enum ColumnDecoder {
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    Bytea,
    /// text, varchar, bpchar, name, json: the bytes as they are.
    Text,
    Jsonb,
    Uuid,
    Timestamp {
        with_zone: bool,
        last_day: LastDay,
    },
    /// Every other type, through [`decode`].
    Other(Type),
}

impl ColumnDecoder {
    pub fn for_type(ty: &Type) -> ColumnDecoder {
        match *ty {
            Type::BOOL => ColumnDecoder::Bool,
            Type::INT2 => ColumnDecoder::Int2,
            Type::INT4 => ColumnDecoder::Int4,
            Type::INT8 => ColumnDecoder::Int8,
            Type::OID => ColumnDecoder::Oid,
            Type::FLOAT4 => ColumnDecoder::Float4,
            Type::FLOAT8 => ColumnDecoder::Float8,
            Type::BYTEA => ColumnDecoder::Bytea,
            Type::JSON => ColumnDecoder::Text,
            Type::JSONB => ColumnDecoder::Jsonb,
            Type::UUID => ColumnDecoder::Uuid,
            Type::TIMESTAMP => ColumnDecoder::Timestamp {
                with_zone: false,
                last_day: NO_DAY,
            },
            Type::TIMESTAMPTZ => ColumnDecoder::Timestamp {
                with_zone: true,
                last_day: NO_DAY,
            },
            _ if is_texty(ty) => ColumnDecoder::Text,
            _ => ColumnDecoder::Other(ty.clone()),
        }
    }

    /// Appends one cell (`None`: NULL) to `column`. On error the column
    /// may hold part of the cell: the caller gives the result up.
    #[inline]
    pub fn decode_into(
        &mut self,
        raw: Option<&[u8]>,
        column: &mut ColumnData,
    ) -> Result<(), BoxError> {
        let Some(raw) = raw else {
            column.push_null();
            return Ok(());
        };
        match self {
            ColumnDecoder::Bool => {
                column.push_int(Kind::Bool, i64::from(bool::from_sql(&Type::BOOL, raw)?))
            }
            ColumnDecoder::Int2 => {
                column.push_int(Kind::Int64, i16::from_sql(&Type::INT2, raw)?.into())
            }
            ColumnDecoder::Int4 => {
                column.push_int(Kind::Int64, i32::from_sql(&Type::INT4, raw)?.into())
            }
            ColumnDecoder::Int8 => column.push_int(Kind::Int64, i64::from_sql(&Type::INT8, raw)?),
            ColumnDecoder::Oid => {
                column.push_int(Kind::Int64, u32::from_sql(&Type::OID, raw)?.into())
            }
            ColumnDecoder::Float4 => column.push_double(f32::from_sql(&Type::FLOAT4, raw)?.into()),
            ColumnDecoder::Float8 => column.push_double(f64::from_sql(&Type::FLOAT8, raw)?),
            ColumnDecoder::Bytea => {
                column.bytes_cell(Kind::Blob).extend_from_slice(raw);
                column.end_bytes_cell();
            }
            // Checked for UTF-8 once, as the cell ends (bytes that are not
            // are kept, and the column says so).
            ColumnDecoder::Text => {
                column.bytes_cell(Kind::Text).extend_from_slice(raw);
                column.end_bytes_cell();
            }
            ColumnDecoder::Jsonb => match raw.split_first() {
                Some((1, text)) => {
                    column.bytes_cell(Kind::Text).extend_from_slice(text);
                    column.end_bytes_cell();
                }
                _ => return Err("unsupported jsonb version".into()),
            },
            ColumnDecoder::Uuid => {
                let id = uuid::Uuid::from_slice(raw)?;
                let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
                let text = id.hyphenated().encode_lower(&mut buf);
                column
                    .bytes_cell(Kind::Text)
                    .extend_from_slice(text.as_bytes());
                column.end_valid_text_cell();
            }
            ColumnDecoder::Timestamp {
                with_zone,
                last_day,
            } => {
                let micros = i64::from_sql(&Type::INT8, raw)?;
                let out = column.bytes_cell(Kind::Text);
                let written = match micros {
                    i64::MAX => {
                        out.extend_from_slice(b"infinity");
                        true
                    }
                    i64::MIN => {
                        out.extend_from_slice(b"-infinity");
                        true
                    }
                    _ => write_timestamp(micros, *with_zone, out, last_day),
                };
                if !written {
                    // Outside years 1..=9999: the general decoder's forms.
                    let ty = if *with_zone {
                        Type::TIMESTAMPTZ
                    } else {
                        Type::TIMESTAMP
                    };
                    match decode(&ty, raw)? {
                        Value::Text(text) => out.extend_from_slice(text.as_bytes()),
                        other => return Err(format!("unexpected {other:?} for a timestamp").into()),
                    }
                }
                column.end_valid_text_cell();
            }
            ColumnDecoder::Other(ty) => column.push_value(&decode(ty, raw)?),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{Column, ResultSet};

    /// The per-column day cache gives what formatting each value alone gives,
    /// across day boundaries, back and forth, and outside years 1..=9999.
    #[test]
    fn timestamps_of_one_column_format_as_each_alone() {
        const DAY: i64 = 86_400_000_000;
        let values = [
            0,
            DAY - 1,
            DAY,
            5 * DAY + 123_000,
            DAY + 1,
            -1,
            i64::MAX,
            -63_200_000_000_000_000,
            7 * DAY + 654_321,
        ];
        for (ty, with_zone) in [(Type::TIMESTAMP, false), (Type::TIMESTAMPTZ, true)] {
            let mut decoder = ColumnDecoder::for_type(&ty);
            let mut rs = ResultSet::new(vec![Column {
                name: "t".into(),
                decl_type: ty.name().into(),
            }]);
            for v in values {
                let raw = v.to_be_bytes();
                decoder
                    .decode_into(Some(&raw), &mut rs.row_sink()[0])
                    .unwrap();
                rs.end_row();
            }
            for (r, v) in values.iter().enumerate() {
                let want = match decode(&ty, &v.to_be_bytes()).unwrap() {
                    Value::Text(t) => t,
                    other => panic!("{other:?}"),
                };
                let (got, utf8) = rs.text(r, 0).unwrap();
                assert!(utf8);
                assert_eq!(
                    std::str::from_utf8(got).unwrap(),
                    want,
                    "row {r} ({with_zone})"
                );
            }
        }
    }
}
