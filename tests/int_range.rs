//! Issue 17 §3: binding an integer beyond a column's range says "out of
//! range for int8" (Python sends 2**70 as decimal text), not "not an integer".

use sqlpool::backend::pgtypes::check_bind;
use sqlpool::value::Value;
use tokio_postgres::types::Type;

#[test]
fn integers_out_of_range_name_the_type() {
    let big = Value::Text((1u128 << 70).to_string());
    let e = check_bind(&big, &Type::INT8).unwrap_err();
    assert!(e.contains("out of range for int8"), "{e}");
    let e = check_bind(&Value::Text("-99999999999999999999".into()), &Type::INT8).unwrap_err();
    assert!(e.contains("out of range for int8"), "{e}");
    let e = check_bind(&Value::Int64(1 << 40), &Type::INT4).unwrap_err();
    assert!(e.contains("out of range for int4"), "{e}");
    let e = check_bind(&Value::Text("12abc".into()), &Type::INT8).unwrap_err();
    assert!(e.contains("not an integer"), "{e}");
}
