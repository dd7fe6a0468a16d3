//! `sqlpool_conn_execute_many_columns`: parameter sets given column by
//! column store what `sqlpool_conn_execute_many` stores, and every buffer
//! and length is checked before anything runs.
//!
//! The PostgreSQL test prints "skipped" without a server (and with
//! `CI=true` the harness panics instead).

mod common;

use std::ptr;

use common::capi::*;
use common::pg::PgServer;
use sqlpool::ffi::*;
use sqlpool::Status;

/// A column for the call, owning its buffers.
struct Col {
    kind: u32,
    values: Vec<u8>,
    lengths: Option<Vec<u64>>,
    nulls: Option<Vec<u8>>,
}

impl Col {
    fn int(v: &[i64]) -> Col {
        Col::fixed(
            SQLPOOL_KIND_INT64,
            v.iter().flat_map(|i| i.to_ne_bytes()).collect(),
        )
    }

    fn double(v: &[f64]) -> Col {
        Col::fixed(
            SQLPOOL_KIND_DOUBLE,
            v.iter().flat_map(|d| d.to_ne_bytes()).collect(),
        )
    }

    fn boolean(v: &[bool]) -> Col {
        Col::fixed(SQLPOOL_KIND_BOOL, v.iter().map(|b| u8::from(*b)).collect())
    }

    fn null() -> Col {
        Col::fixed(SQLPOOL_KIND_NULL, Vec::new())
    }

    fn fixed(kind: u32, values: Vec<u8>) -> Col {
        Col {
            kind,
            values,
            lengths: None,
            nulls: None,
        }
    }

    /// Text or blob cells with their lengths.
    fn cells(kind: u32, cells: &[&[u8]]) -> Col {
        Col {
            kind,
            values: cells.concat(),
            lengths: Some(cells.iter().map(|c| c.len() as u64).collect()),
            nulls: None,
        }
    }

    /// Text cells each followed by a NUL (no lengths).
    fn terminated(cells: &[&str]) -> Col {
        let mut values = Vec::new();
        for c in cells {
            values.extend_from_slice(c.as_bytes());
            values.push(0);
        }
        Col::fixed(SQLPOOL_KIND_TEXT, values)
    }

    fn with_nulls(mut self, nulls: &[u8]) -> Col {
        self.nulls = Some(nulls.to_vec());
        self
    }

    fn raw(&self) -> sqlpool_param_column {
        sqlpool_param_column {
            kind: self.kind,
            values: if self.values.is_empty() {
                ptr::null()
            } else {
                self.values.as_ptr()
            },
            values_len: self.values.len(),
            lengths: self.lengths.as_ref().map_or(ptr::null(), |l| l.as_ptr()),
            nulls: self.nulls.as_ref().map_or(ptr::null(), |n| n.as_ptr()),
        }
    }
}

fn run_raw(
    conn: *mut sqlpool_conn,
    sql: &str,
    columns: &[sqlpool_param_column],
    rows: usize,
) -> Result<u64, Failure> {
    let s = cstr(sql);
    let mut n = u64::MAX;
    let cols = if columns.is_empty() {
        ptr::null()
    } else {
        columns.as_ptr()
    };
    let st = unsafe {
        sqlpool_conn_execute_many_columns(conn, s.as_ptr(), cols, columns.len(), rows, &mut n)
    };
    check(st).map(|()| n)
}

fn run(conn: *mut sqlpool_conn, sql: &str, columns: &[Col], rows: usize) -> Result<u64, Failure> {
    let raw: Vec<sqlpool_param_column> = columns.iter().map(Col::raw).collect();
    run_raw(conn, sql, &raw, rows)
}

/// The same sets through `sqlpool_conn_execute_many` (parameter lists).
fn run_lists(conn: *mut sqlpool_conn, sql: &str, sets: &[Vec<P>]) -> u64 {
    let list = params(&[]);
    for set in sets {
        add_set(list, set);
    }
    let s = cstr(sql);
    let mut n = 0u64;
    ok(unsafe { sqlpool_conn_execute_many(conn, s.as_ptr(), list, &mut n) });
    ok(sqlpool_params_free(list));
    n
}

fn sqlite() -> (*mut sqlpool_pool, *mut sqlpool_conn) {
    let pool = open("sqlite::memory:");
    let conn = acquire(pool);
    (pool, conn)
}

/// Every kind, NULL flags, both text layouts: the rows match those the
/// parameter-list path stores, value and type.
fn every_kind(conn: *mut sqlpool_conn, table: &str, placeholders: &str) {
    let cols = [
        Col::boolean(&[true, false, true]),
        Col::int(&[i64::MIN, 0, i64::MAX]).with_nulls(&[0, 1, 0]),
        Col::double(&[0.5, -0.0, 1e300]),
        Col::cells(SQLPOOL_KIND_TEXT, &[b"h\xc3\xa9", b"", b"a;b"]),
        Col::terminated(&["x", "", "\u{1F600}"]).with_nulls(&[0, 0, 9]),
        Col::cells(SQLPOOL_KIND_BLOB, &[b"\0\xff", b"", b"z"]),
        Col::null(),
    ];
    let sql = format!("INSERT INTO {table}_cols VALUES ({placeholders})");
    assert_eq!(run(conn, &sql, &cols, 3).unwrap(), 3);
    let sets = vec![
        vec![
            P::Bool(true),
            P::I(i64::MIN),
            P::D(0.5),
            P::T("hé"),
            P::T("x"),
            P::B(b"\0\xff"),
            P::Null,
        ],
        vec![
            P::Bool(false),
            P::Null,
            P::D(-0.0),
            P::T(""),
            P::T(""),
            P::B(b""),
            P::Null,
        ],
        vec![
            P::Bool(true),
            P::I(i64::MAX),
            P::D(1e300),
            P::T("a;b"),
            P::Null,
            P::B(b"z"),
            P::Null,
        ],
    ];
    let sql = format!("INSERT INTO {table}_lists VALUES ({placeholders})");
    assert_eq!(run_lists(conn, &sql, &sets), 3);
    let read = |suffix: &str| {
        query(
            conn,
            &format!("SELECT * FROM {table}_{suffix} ORDER BY k"),
            &[],
        )
        .unwrap()
    };
    let (cols, lists) = (read("cols"), read("lists"));
    assert_eq!(format!("{cols:?}"), format!("{lists:?}"));
    assert_eq!(cols.len(), 3);
}

#[test]
fn every_kind_stores_what_parameter_lists_store_on_sqlite() {
    let (pool, conn) = sqlite();
    for t in ["t_cols", "t_lists"] {
        script(
            conn,
            &format!("CREATE TABLE {t} (k INTEGER PRIMARY KEY AUTOINCREMENT, b BOOLEAN, i, d, t, u, x, n)"),
        )
        .unwrap();
    }
    every_kind(conn, "t", "NULL, $1, $2, $3, $4, $5, $6, $7");
    let typed = query(
        conn,
        "SELECT typeof(b), typeof(i), typeof(d), typeof(t), typeof(x) FROM t_cols ORDER BY k",
        &[],
    )
    .unwrap();
    assert_eq!(
        format!("{:?}", typed[0]),
        r#"[T("integer"), T("integer"), T("real"), T("text"), T("blob")]"#
    );
    release(conn);
    close(pool);
}

#[test]
fn wrong_counts_and_bad_buffers_are_refused_before_anything_runs() {
    let (pool, conn) = sqlite();
    script(conn, "CREATE TABLE t (a, b)").unwrap();
    let sql = "INSERT INTO t VALUES ($1, $2)";
    let count = || scalar(conn, "SELECT count(*) FROM t");

    // The statement's parameter count, named as the first set's error.
    let e = run(conn, sql, &[Col::int(&[1, 2])], 2).unwrap_err();
    assert_eq!(e.status, Status::ParameterError);
    assert_eq!(
        e.message,
        "parameter set #1: statement expects 2 parameters, 1 was given"
    );
    let three = [Col::int(&[1]), Col::int(&[2]), Col::int(&[3])];
    let e = run(conn, sql, &three, 1).unwrap_err();
    assert_eq!(e.status, Status::ParameterError);
    assert!(
        e.message.contains("expects 2 parameters, 3 were given"),
        "{}",
        e.message
    );
    // No rows: nothing to run, as with an empty list of sets.
    assert_eq!(run(conn, sql, &[Col::int(&[])], 0).unwrap(), 0);

    let refused = |cols: &[sqlpool_param_column], rows: usize, what: &str| {
        let e = run_raw(conn, sql, cols, rows).unwrap_err();
        assert_eq!(e.status, Status::InvalidArgument, "{what}: {}", e.message);
        e.message
    };
    let good = Col::int(&[1, 2]);
    // A fixed-width column that does not hold one value per row.
    let msg = refused(&[good.raw(), Col::int(&[1]).raw()], 2, "short int column");
    assert!(msg.starts_with("columns[1]: values_len is 8"), "{msg}");
    refused(
        &[good.raw(), Col::boolean(&[true]).raw()],
        2,
        "short bool column",
    );
    // Lengths that add up to more, or less, than the bytes given.
    let mut text = Col::cells(SQLPOOL_KIND_TEXT, &[b"ab", b"c"]);
    text.lengths = Some(vec![2, 5]);
    let msg = refused(&[good.raw(), text.raw()], 2, "lengths too long");
    assert!(msg.contains("lengths[1] is 5"), "{msg}");
    text.lengths = Some(vec![1, 1]);
    let msg = refused(&[good.raw(), text.raw()], 2, "lengths too short");
    assert!(
        msg.contains("add up to 2 bytes, but values_len is 3"),
        "{msg}"
    );
    text.lengths = Some(vec![u64::MAX, 0]);
    refused(&[good.raw(), text.raw()], 2, "absurd length");
    // NUL-ended cells: one too few, or bytes after the last NUL.
    refused(
        &[good.raw(), Col::terminated(&["a"]).raw()],
        2,
        "too few cells",
    );
    let mut trailing = Col::terminated(&["a", "b"]);
    trailing.values.push(b'c');
    refused(&[good.raw(), trailing.raw()], 2, "bytes after the last NUL");
    // Absurd sizes: rows that overflow a buffer's length, a huge values_len.
    refused(&[good.raw(), good.raw()], usize::MAX, "absurd row count");
    let mut huge = good.raw();
    huge.values_len = usize::MAX;
    refused(&[good.raw(), huge], 2, "absurd values_len");
    let mut unknown = good.raw();
    unknown.kind = 6;
    let msg = refused(&[good.raw(), unknown], 2, "unknown kind");
    assert!(msg.contains("unknown kind 6"), "{msg}");

    // NULL pointers.
    let mut no_values = good.raw();
    no_values.values = ptr::null();
    let msg = refused(&[good.raw(), no_values], 2, "NULL values");
    assert!(msg.contains("values is NULL"), "{msg}");
    let blobs = Col::cells(SQLPOOL_KIND_BLOB, &[b"\0", b"\0"]);
    let mut no_lengths = blobs.raw();
    no_lengths.lengths = ptr::null();
    // (NULL lengths mean NUL-ended cells: two of them here, so it runs.)
    assert_eq!(run_raw(conn, sql, &[good.raw(), no_lengths], 2).unwrap(), 2);
    script(conn, "DELETE FROM t").unwrap();
    let s = cstr(sql);
    let mut n = 0u64;
    let st =
        unsafe { sqlpool_conn_execute_many_columns(conn, s.as_ptr(), ptr::null(), 2, 2, &mut n) };
    assert_eq!(st, Status::InvalidArgument);
    let cols = [good.raw(), good.raw()];
    let st = unsafe {
        sqlpool_conn_execute_many_columns(conn, ptr::null(), cols.as_ptr(), 2, 2, &mut n)
    };
    assert_eq!(st, Status::InvalidArgument);
    let st = unsafe {
        sqlpool_conn_execute_many_columns(ptr::null_mut(), s.as_ptr(), cols.as_ptr(), 2, 2, &mut n)
    };
    assert_eq!(st, Status::InvalidArgument);
    // rows_affected may be NULL.
    let st = unsafe {
        sqlpool_conn_execute_many_columns(conn, s.as_ptr(), cols.as_ptr(), 2, 2, ptr::null_mut())
    };
    assert_eq!(st, Status::Ok);
    assert_eq!(count(), V::I(2));
    script(conn, "DELETE FROM t").unwrap();

    // Text that is not UTF-8, named by its set, before anything runs.
    let bad = Col::cells(SQLPOOL_KIND_TEXT, &[b"ok", b"\xff"]);
    let e = run(conn, sql, &[Col::int(&[1, 2]), bad], 2).unwrap_err();
    assert_eq!(e.status, Status::InvalidUtf8);
    assert_eq!(
        e.message,
        "parameter set #2: columns[1]: text value is not valid UTF-8 (at byte 0)"
    );
    assert_eq!(count(), V::I(0));
    // The connection is fine afterwards.
    assert_eq!(run(conn, sql, &[good, Col::null()], 2).unwrap(), 2);
    release(conn);
    close(pool);
}

#[test]
fn a_failing_set_is_named_and_undoes_the_whole_batch() {
    let (pool, conn) = sqlite();
    script(conn, "CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT)").unwrap();
    let sql = "INSERT INTO t VALUES ($1, $2)";
    let names = Col::terminated(&["a", "b", "c", "d"]);
    // Its own transaction: set #3 repeats id 1, nothing stays.
    let e = run(conn, sql, &[Col::int(&[1, 2, 1, 4]), names], 4).unwrap_err();
    assert_eq!(e.status, Status::ConstraintViolation);
    assert!(e.message.starts_with("parameter set #3: "), "{}", e.message);
    assert_eq!(e.sqlstate, "23505");
    assert_eq!(scalar(conn, "SELECT count(*) FROM t"), V::I(0));
    // Inside the caller's transaction: the batch is undone, the
    // transaction goes on with what it did before.
    ok(sqlpool_conn_begin(conn, 0, 0));
    exec(conn, "INSERT INTO t VALUES (10, 'kept')", &[]).unwrap();
    let names = Col::terminated(&["a", "b"]);
    let e = run(conn, sql, &[Col::int(&[11, 10]), names], 2).unwrap_err();
    assert!(e.message.starts_with("parameter set #2: "), "{}", e.message);
    let names = Col::terminated(&["a", "b"]);
    assert_eq!(run(conn, sql, &[Col::int(&[11, 12]), names], 2).unwrap(), 2);
    ok(sqlpool_conn_commit(conn));
    assert_eq!(
        query(conn, "SELECT id FROM t ORDER BY id", &[]).unwrap(),
        query(
            conn,
            "SELECT 10 UNION ALL SELECT 11 UNION ALL SELECT 12",
            &[]
        )
        .unwrap()
    );
    release(conn);
    close(pool);
}

#[test]
fn postgres_takes_columns_as_parameter_lists() {
    let Some(pg) = PgServer::shared() else {
        eprintln!(
            "postgres_takes_columns_as_parameter_lists: skipped (no PostgreSQL server available)"
        );
        return;
    };
    let pool = open(&pg.url());
    let conn = acquire(pool);
    let table = format!("colbatch_{}", std::process::id());
    for suffix in ["cols", "lists"] {
        script(
            conn,
            &format!(
                "DROP TABLE IF EXISTS {table}_{suffix}; CREATE TABLE {table}_{suffix} \
                 (k serial PRIMARY KEY, b boolean, i int8, d float8, t text, u text, x bytea, n int4)"
            ),
        )
        .unwrap();
    }
    every_kind(conn, &table, "DEFAULT, $1, $2, $3, $4, $5, $6, $7");
    // A failing set is named, and nothing of the batch stays.
    let sql = format!("INSERT INTO {table}_cols (k) VALUES ($1)");
    let e = run(conn, &sql, &[Col::int(&[100, 1, 101])], 3).unwrap_err();
    assert_eq!(e.status, Status::ConstraintViolation);
    assert!(e.message.starts_with("parameter set #2: "), "{}", e.message);
    assert_eq!(
        scalar(conn, &format!("SELECT count(*) FROM {table}_cols")),
        V::I(3)
    );
    for suffix in ["cols", "lists"] {
        script(conn, &format!("DROP TABLE {table}_{suffix}")).unwrap();
    }
    release(conn);
    close(pool);
}

/// `sqlpool_conn_execute_many_columns_start`: the batch as a task, polled
/// to its end (at most 10 s). The columns are dropped as soon as the task
/// has started: the call copies what it needs.
fn run_task(
    conn: *mut sqlpool_conn,
    sql: &str,
    columns: Vec<Col>,
    rows: usize,
) -> Result<u64, Failure> {
    let s = cstr(sql);
    let raw: Vec<sqlpool_param_column> = columns.iter().map(Col::raw).collect();
    let mut task = ptr::null_mut();
    let st = unsafe {
        sqlpool_conn_execute_many_columns_start(
            conn,
            s.as_ptr(),
            raw.as_ptr(),
            raw.len(),
            rows,
            &mut task,
        )
    };
    drop(raw);
    drop(columns);
    if let Err(e) = check(st) {
        assert!(task.is_null(), "no task after a refused start");
        return Err(e);
    }
    let started = std::time::Instant::now();
    let mut wait = empty_wait();
    let mut out = empty_completion();
    loop {
        let st =
            unsafe { sqlpool_task_poll(task, 100_000, -1, &mut wait, &mut out, ptr::null_mut()) };
        if st != Status::Empty {
            ok(st);
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the task did not complete"
        );
    }
    ok(sqlpool_task_free(task));
    assert_eq!(out.kind, SQLPOOL_OP_BATCH);
    let outcome = check(out.status).map(|()| out.rows_affected);
    if !out.error.is_null() {
        ok(sqlpool_error_free(out.error));
    }
    outcome
}

/// The same batch started as a task on each database: the rows land,
/// the caller's buffers may go at once, a failing set is named and leaves
/// nothing, and a bad column is refused before any task exists.
#[test]
fn a_column_batch_runs_as_a_task_on_both_databases() {
    let pg = PgServer::shared();
    if pg.is_none() {
        eprintln!("a_column_batch_runs_as_a_task_on_both_databases: PostgreSQL part skipped (no server available)");
    }
    let targets = std::iter::once("sqlite::memory:".to_owned()).chain(pg.map(|p| p.url()));
    for url in targets {
        let pool = open(&url);
        let conn = acquire(pool);
        let table = format!("coltask_{}", std::process::id());
        script(
            conn,
            &format!(
                "DROP TABLE IF EXISTS {table}; \
                 CREATE TABLE {table} (id int8 PRIMARY KEY, d float8, t text, n int4)"
            ),
        )
        .unwrap();
        let sql = format!("INSERT INTO {table} VALUES ($1, $2, $3, $4)");
        let columns = vec![
            Col::int(&[1, 2, 3]),
            Col::double(&[0.5, -1.25, 2.0]).with_nulls(&[0, 1, 0]),
            Col::terminated(&["a", "é", ""]),
            Col::null(),
        ];
        assert_eq!(run_task(conn, &sql, columns, 3).unwrap(), 3, "{url}");
        assert_eq!(
            query(
                conn,
                &format!("SELECT id, d, t, n FROM {table} ORDER BY id"),
                &[]
            )
            .unwrap(),
            vec![
                vec![V::I(1), V::D(0.5), V::T("a".into()), V::Null],
                vec![V::I(2), V::Null, V::T("é".into()), V::Null],
                vec![V::I(3), V::D(2.0), V::T("".into()), V::Null],
            ],
            "{url}"
        );
        // Set #2 repeats id 1: named, and none of the batch stays.
        let columns = vec![Col::int(&[10, 1]), Col::null(), Col::null(), Col::null()];
        let e = run_task(conn, &sql, columns, 2).unwrap_err();
        assert_eq!(e.status, Status::ConstraintViolation, "{url}");
        assert!(
            e.message.starts_with("parameter set #2: "),
            "{url}: {}",
            e.message
        );
        assert_eq!(
            scalar(conn, &format!("SELECT count(*) FROM {table}")),
            V::I(3)
        );
        // A column one row short: refused at the start.
        let columns = vec![Col::int(&[20, 21]), Col::null(), Col::null(), Col::null()];
        let e = run_task(conn, &sql, columns, 3).unwrap_err();
        assert_eq!(e.status, Status::InvalidArgument, "{url}");
        assert!(
            e.message.contains("values_len is 16"),
            "{url}: {}",
            e.message
        );
        script(conn, &format!("DROP TABLE {table}")).unwrap();
        release(conn);
        close(pool);
    }
}

/// NULL and stale arguments to the task's start get a status, no task.
#[test]
fn a_column_task_with_bad_arguments_is_refused() {
    let (pool, conn) = sqlite();
    let col = Col::int(&[1]);
    let raw = [col.raw()];
    let sql = cstr("SELECT $1");
    let start = |conn: *mut sqlpool_conn,
                 sql: *const std::ffi::c_char,
                 task: *mut *mut sqlpool_task| unsafe {
        sqlpool_conn_execute_many_columns_start(conn, sql, raw.as_ptr(), 1, 1, task)
    };
    let mut task = ptr::null_mut();
    assert_eq!(
        start(conn, sql.as_ptr(), ptr::null_mut()),
        Status::InvalidArgument
    );
    assert_eq!(start(conn, ptr::null(), &mut task), Status::InvalidArgument);
    assert_eq!(
        start(ptr::null_mut(), sql.as_ptr(), &mut task),
        Status::InvalidArgument
    );
    release(conn);
    assert_eq!(start(conn, sql.as_ptr(), &mut task), Status::Misuse);
    assert!(task.is_null());
    close(pool);
}
