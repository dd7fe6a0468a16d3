//! Issue 17 §5: each asynchronous completion carries its own error; two
//! failed completions popped back to back keep both errors.

mod common;

use std::ffi::CStr;
use std::ptr;
use std::time::{Duration, Instant};

use common::capi::*;
use sqlpool::ffi::*;
use sqlpool::Status;

fn text(p: *const std::ffi::c_char) -> String {
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

#[test]
fn back_to_back_failures_keep_their_own_errors() {
    let pool = open("sqlite::memory:?max_size=2");
    let (a, b) = (acquire(pool), acquire(pool));
    let mut q = ptr::null_mut();
    ok(unsafe { sqlpool_queue_new(&mut q) });
    for (conn, table) in [(a, "missing_alpha"), (b, "missing_beta")] {
        let sql = cstr(&format!("SELECT * FROM {table}"));
        let mut id = 0;
        ok(unsafe {
            sqlpool_conn_execute_async(
                conn,
                sql.as_ptr(),
                ptr::null(),
                q,
                None,
                ptr::null_mut(),
                &mut id,
            )
        });
    }
    // Wait for both, then pop them back to back.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < 2 {
        let mut c = std::mem::MaybeUninit::<sqlpool_completion>::uninit();
        match unsafe { sqlpool_queue_pop(q, c.as_mut_ptr()) } {
            Status::Ok => got.push(unsafe { c.assume_init() }),
            Status::Empty => {
                assert!(Instant::now() < deadline, "completions did not arrive");
                std::thread::sleep(Duration::from_millis(5));
            }
            s => panic!("pop: {s:?}"),
        }
    }
    let mut messages = Vec::new();
    for c in &got {
        assert_ne!(c.status, Status::Ok);
        assert!(!c.error.is_null());
        assert_eq!(sqlpool_error_status(c.error), c.status);
        messages.push(text(sqlpool_error_message(c.error)));
        assert!(text(sqlpool_error_json(c.error)).contains("\"message\""));
    }
    messages.sort();
    assert!(messages[0].contains("missing_alpha"), "{messages:?}");
    assert!(messages[1].contains("missing_beta"), "{messages:?}");
    for c in &got {
        ok(sqlpool_error_free(c.error));
        assert_eq!(sqlpool_error_free(c.error), Status::Misuse);
    }
    ok(sqlpool_error_free(ptr::null_mut()));
    ok(sqlpool_queue_free(q));
    release(a);
    release(b);
    close(pool);
    assert_eq!(sqlpool_live_handles(), 0, "everything given back");
}
