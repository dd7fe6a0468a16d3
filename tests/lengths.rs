//! Issue 17 §2: a length the library can rule out is refused with
//! SQLPOOL_INVALID_ARGUMENT before the pointer is read — no panic, no
//! abort, no read past the buffer.

mod common;

use std::ptr;

use common::capi::*;
use sqlpool::ffi::*;
use sqlpool::Status;

#[test]
fn impossible_lengths_are_refused_before_the_pointer_is_read() {
    let mut params = ptr::null_mut();
    ok(sqlpool_params_new(&mut params));
    let buf = *b"abcd";
    let huge = [
        usize::MAX,
        i64::MAX as usize,
        isize::MAX as usize + 1,
        1 << 31,
        SQLPOOL_MAX_VALUE_SIZE + 1,
    ];
    for len in huge {
        let st = unsafe { sqlpool_params_add_blob(params, ptr::null(), buf.as_ptr(), len) };
        assert_eq!(st, Status::InvalidArgument, "blob len {len}");
        assert!(
            last_message().contains("maximum value size"),
            "{}",
            last_message()
        );
        let st = unsafe { sqlpool_params_add_text(params, ptr::null(), buf.as_ptr().cast(), len) };
        assert_eq!(st, Status::InvalidArgument, "text len {len}");
    }
    // Nothing was added; the list still works.
    let st = unsafe { sqlpool_params_add_blob(params, ptr::null(), buf.as_ptr(), 4) };
    assert_eq!(st, Status::Ok);
    ok(sqlpool_params_free(params));
    // A batch's count.
    let pool = open("sqlite::memory:?max_size=1");
    let conn = acquire(pool);
    let sets = [ptr::null::<sqlpool_params>()];
    let c = cstr("SELECT 1");
    for count in [usize::MAX, 1 << 62] {
        let st = unsafe {
            sqlpool_conn_execute_batch(conn, c.as_ptr(), sets.as_ptr(), count, ptr::null_mut())
        };
        assert_eq!(st, Status::InvalidArgument, "count {count}");
    }
    release(conn);
    close(pool);
}

#[test]
fn the_header_states_the_maximum_value_size() {
    let header = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("include/sqlpool.h"),
    )
    .unwrap();
    assert!(
        header.contains(&format!(
            "#define SQLPOOL_MAX_VALUE_SIZE {}",
            SQLPOOL_MAX_VALUE_SIZE
        )) || header.contains("#define SQLPOOL_MAX_VALUE_SIZE (1 << 30)"),
        "header lacks SQLPOOL_MAX_VALUE_SIZE"
    );
}
