//! Parameter styles and batches, through the C ABI only, on SQLite (file
//! and `:memory:`) and PostgreSQL: named `:name`, positional `$n`, SQLite
//! `?`/`?NNN`; parameter errors (reported before anything is sent); values
//! bound, never interpolated; placeholder look-alikes in strings, comments
//! and casts left alone; `sqlpool_conn_execute_batch`.
//!
//! PostgreSQL tests use the shared test server (`tests/common/pg.rs`) and
//! skip themselves, saying why, when there is none (they fail under CI).

// The C wrapper below is the one of tests/types.rs; not every part of it
// is used here.
#![allow(dead_code)]

mod common;

use std::ptr;

use common::pg::PgServer;
use sqlpool::ffi::*;
use sqlpool::Status;

use common::typed::*;

impl Db {
    fn count(&self, table: &str) -> i64 {
        match self.one(&format!("SELECT count(*) FROM {table}"), &[]) {
            V::I(n) => n,
            other => panic!("count: {other:?}"),
        }
    }

    fn try_batch(&self, sql: &str, sets: &[Params]) -> Result<u64, Failure> {
        let s = cstr(sql);
        let handles: Vec<*const sqlpool_params> = sets.iter().map(|p| p.0.cast_const()).collect();
        let mut n = u64::MAX;
        let st = unsafe {
            sqlpool_conn_execute_batch(
                self.conn,
                s.as_ptr(),
                handles.as_ptr(),
                handles.len(),
                &mut n,
            )
        };
        if st == Status::Ok {
            Ok(n)
        } else {
            Err(last_error(st))
        }
    }

    fn begin(&self) {
        check(
            sqlpool_conn_begin(self.conn, SQLPOOL_ISOLATION_DEFAULT, 0),
            "begin",
        );
    }

    fn commit(&self) {
        check(sqlpool_conn_commit(self.conn), "commit");
    }

    fn rollback(&self) {
        check(sqlpool_conn_rollback(self.conn), "rollback");
    }
}

/// The databases every test runs on: an SQLite file, SQLite `:memory:`
/// and, when there is one, PostgreSQL. The temp dir lives as long as the
/// list.
struct Dbs {
    _dir: tempfile::TempDir,
    list: Vec<(&'static str, Db)>,
}

fn dbs() -> Dbs {
    let dir = tempfile::tempdir().unwrap();
    let mut list = vec![
        (
            "sqlite file",
            Db::open(&format!(
                "sqlite:{}",
                dir.path().join("params.db").display()
            )),
        ),
        ("sqlite memory", Db::open("sqlite::memory:")),
    ];
    match (!cfg!(sqlpool_no_pg)).then(PgServer::shared).flatten() {
        Some(server) => list.push(("postgresql", Db::open(&server.url()))),
        None => eprintln!(
            "PostgreSQL part skipped: no server (set SQLPOOL_TEST_PG_URL or install PostgreSQL)"
        ),
    }
    Dbs { _dir: dir, list }
}

fn is_pg(name: &str) -> bool {
    name == "postgresql"
}

/// A fresh table `name (id, a text, b bigint, c text)`, same SQL on both.
/// (Plain statements, not a script: on PostgreSQL a script makes the
/// library assume a transaction may be open, see
/// `pg_batch_after_a_script_is_still_all_or_nothing`.)
fn table(db: &Db, name: &str) {
    db.exec(&format!("DROP TABLE IF EXISTS {name}"), &[]);
    db.exec(
        &format!("CREATE TABLE {name} (id INTEGER PRIMARY KEY, a TEXT, b BIGINT, c TEXT)"),
        &[],
    );
}

fn expect_param_error(r: Result<impl std::fmt::Debug, Failure>, mentions: &[&str], what: &str) {
    let e = match r {
        Ok(v) => panic!("{what}: expected a parameter error, got {v:?}"),
        Err(e) => e,
    };
    assert_eq!(e.status, Status::ParameterError, "{what}: {}", e.message);
    for m in mentions {
        assert!(e.message.contains(m), "{what}: {:?} lacks {m:?}", e.message);
    }
}

// ---------------------------------------------------------------------------
// Styles

#[test]
fn named_parameters_with_a_repeated_name() {
    for (db_name, db) in &dbs().list {
        table(db, "p_named");
        // One SQL text for both databases; :word used twice, values given
        // in another order than they appear, one name with its colon.
        let insert = "INSERT INTO p_named (id, a, b, c) VALUES (:id, :word, :n, :word)";
        let n = db
            .try_exec(
                insert,
                &Params::named(&[("n", V::I(-7)), (":word", t("wörd")), ("id", V::I(1))]),
            )
            .unwrap_or_else(|e| panic!("{db_name}: {e:?}"));
        assert_eq!(n, 1, "{db_name}");
        let rows = db
            .try_query(
                "SELECT id, a, b, c FROM p_named WHERE a = :w AND c = :w AND b < :zero",
                &Params::named(&[("w", t("wörd")), ("zero", V::I(0))]),
            )
            .unwrap();
        assert_eq!(
            rows.rows,
            vec![vec![V::I(1), t("wörd"), V::I(-7), t("wörd")]],
            "{db_name}"
        );
        // The same statement again (cached) with other values.
        db.try_exec(
            insert,
            &Params::named(&[("id", V::I(2)), ("word", t("x")), ("n", V::Null)]),
        )
        .unwrap();
        assert_eq!(db.count("p_named"), 2, "{db_name}");
    }
}

#[test]
fn positional_dollar_parameters() {
    for (db_name, db) in &dbs().list {
        table(db, "p_dollar");
        // Out of order and repeated.
        db.exec(
            "INSERT INTO p_dollar (id, a, b, c) VALUES ($3, $1, $2, $1)",
            &[t("one"), V::I(10), V::I(1)],
        );
        db.exec(
            "INSERT INTO p_dollar (id, a, b, c) VALUES ($1, $2, $3, $4)",
            &[V::I(2), t("two"), V::I(20), V::Null],
        );
        let rows = db.query(
            "SELECT id, a, b, c FROM p_dollar WHERE b >= $1 ORDER BY id",
            &[V::I(10)],
        );
        assert_eq!(
            rows.rows,
            vec![
                vec![V::I(1), t("one"), V::I(10), t("one")],
                vec![V::I(2), t("two"), V::I(20), V::Null],
            ],
            "{db_name}"
        );
        // Ten and more: $10 is not $1 followed by 0.
        let sql = "SELECT $1 || $2 || $3 || $4 || $5 || $6 || $7 || $8 || $9 || $10 || $11";
        let values: Vec<V> = (0..11).map(|i| t(&i.to_string())).collect();
        assert_eq!(db.one(sql, &values), t("012345678910"), "{db_name}");
    }
}

#[test]
fn sqlite_question_mark_parameters() {
    let dbs = dbs();
    for (db_name, db) in dbs.list.iter().filter(|(n, _)| !is_pg(n)) {
        table(db, "p_question");
        db.exec(
            "INSERT INTO p_question (id, a, b, c) VALUES (?, ?, ?, ?)",
            &[V::I(1), t("q"), V::I(5), V::Null],
        );
        db.exec(
            "INSERT INTO p_question (id, a, b, c) VALUES (?3, ?1, ?2, ?1)",
            &[t("r"), V::I(6), V::I(2)],
        );
        let rows = db.query("SELECT id, a, b, c FROM p_question ORDER BY id", &[]);
        assert_eq!(
            rows.rows,
            vec![
                vec![V::I(1), t("q"), V::I(5), V::Null],
                vec![V::I(2), t("r"), V::I(6), t("r")],
            ],
            "{db_name}"
        );
        // `?` is positional: it does not mix with :name.
        expect_param_error(
            db.try_query("SELECT ?, :x", &Params::positional(&[V::I(1), V::I(2)])),
            &["cannot mix", ":x"],
            db_name,
        );
        // SQLite's own @name / $name forms are refused, not half-bound.
        expect_param_error(
            db.try_query("SELECT @x", &Params::named(&[("x", V::I(1))])),
            &["@x"],
            db_name,
        );
    }
}

/// On PostgreSQL `?` is an operator (jsonb), never a placeholder.
#[test]
fn pg_question_mark_is_an_operator() {
    let dbs = dbs();
    let Some((_, db)) = dbs.list.iter().find(|(n, _)| is_pg(n)) else {
        return;
    };
    assert_eq!(
        db.one(r#"SELECT '{"a": 1}'::jsonb ? 'a'"#, &[]),
        V::Bool(true)
    );
    assert_eq!(
        db.one(r#"SELECT '{"a": 1}'::jsonb ? $1"#, &[t("b")]),
        V::Bool(false)
    );
    assert_eq!(
        db.try_query(
            r#"SELECT '{"k": 1}'::jsonb ? :key"#,
            &Params::named(&[("key", t("k"))])
        )
        .unwrap()
        .rows[0][0],
        V::Bool(true)
    );
    // `SELECT ?` is not a placeholder: the server sees it and refuses.
    let e = db
        .try_query("SELECT ?", &Params::positional(&[]))
        .unwrap_err();
    assert_eq!(e.status, Status::DatabaseError, "{}", e.message);
}

// ---------------------------------------------------------------------------
// Errors: always SQLPOOL_PARAMETER_ERROR naming the parameter, and nothing
// reaches the table.

#[test]
fn parameter_errors_name_the_parameter_and_change_nothing() {
    for (db_name, db) in &dbs().list {
        table(db, "p_errors");
        let insert_named = "INSERT INTO p_errors (id, a, b, c) VALUES (:id, :a, :b, :c)";
        let insert_dollar = "INSERT INTO p_errors (id, a, b, c) VALUES ($1, $2, $3, $4)";
        let good = [("id", V::I(1)), ("a", t("x")), ("b", V::I(2))];
        let cases: Vec<(&str, Params, Vec<&str>)> = vec![
            // Wrong count.
            (
                insert_dollar,
                Params::positional(&[V::I(1), t("x"), V::I(2)]),
                vec!["expects 4 parameters", "3 were given"],
            ),
            (
                insert_dollar,
                Params::positional(&[V::I(1), t("x"), V::I(2), t("y"), t("z")]),
                vec!["expects 4 parameters", "5 were given"],
            ),
            (
                insert_dollar,
                Params::new(),
                vec!["expects 4 parameters", "0 were given"],
            ),
            // A missing name.
            (insert_named, Params::named(&good), vec![":c"]),
            (insert_named, Params::new(), vec![":id"]),
            // An unknown name.
            (
                insert_named,
                Params::named(&[
                    ("id", V::I(1)),
                    ("a", t("x")),
                    ("b", V::I(2)),
                    ("c", t("y")),
                    ("zzz", V::I(3)),
                ]),
                vec!["unknown parameter :zzz"],
            ),
            // A name given twice.
            (
                insert_named,
                Params::named(&[
                    ("id", V::I(1)),
                    ("a", t("x")),
                    ("a", t("x2")),
                    ("b", V::I(2)),
                    ("c", t("y")),
                ]),
                vec![":a", "twice"],
            ),
            // Mixed styles in the SQL.
            (
                "INSERT INTO p_errors (id, a) VALUES (:id, $2)",
                Params::named(&[("id", V::I(1))]),
                vec!["cannot mix", "$2", ":id"],
            ),
            // Mixed named and positional values.
            (
                insert_named,
                {
                    let p = Params::named(&[("id", V::I(1))]);
                    p.add(None, &t("x"));
                    p
                },
                vec!["value #2 has no name"],
            ),
            // Named values for positional SQL, and the other way round.
            (
                insert_dollar,
                Params::named(&[
                    ("id", V::I(1)),
                    ("a", t("x")),
                    ("b", V::I(2)),
                    ("c", t("y")),
                ]),
                vec!["positional", "named values"],
            ),
            (
                insert_named,
                Params::positional(&[V::I(1), t("x"), V::I(2), t("y")]),
                vec!["named parameters", ":id"],
            ),
            // Values for SQL without placeholders.
            (
                "INSERT INTO p_errors (id) VALUES (1)",
                Params::positional(&[V::I(1)]),
                vec!["expects 0 parameters", "1 was given"],
            ),
            (
                "INSERT INTO p_errors (id) VALUES (1)",
                Params::named(&[("id", V::I(1))]),
                vec!["unknown parameter :id"],
            ),
            // Placeholder syntax errors.
            (
                "INSERT INTO p_errors (id) VALUES ($0)",
                Params::positional(&[V::I(1)]),
                vec!["$0"],
            ),
        ];
        for (sql, params, mentions) in &cases {
            let what = format!("{db_name}: {sql}");
            expect_param_error(db.try_exec(sql, params), mentions, &what);
            expect_param_error(db.try_query(sql, params), mentions, &what);
        }
        assert_eq!(db.count("p_errors"), 0, "{db_name}");
        // And the connection is fine afterwards.
        db.try_exec(
            insert_named,
            &Params::named(&[
                ("id", V::I(1)),
                ("a", t("x")),
                ("b", V::I(2)),
                ("c", t("y")),
            ]),
        )
        .unwrap();
        assert_eq!(db.count("p_errors"), 1, "{db_name}");
    }
}

/// PostgreSQL: a value the parameter's type cannot take is refused before
/// the statement runs: a sequence in the statement does not move.
#[test]
fn pg_bad_values_never_reach_the_server() {
    let dbs = dbs();
    let Some((_, db)) = dbs.list.iter().find(|(n, _)| is_pg(n)) else {
        return;
    };
    db.exec("DROP SEQUENCE IF EXISTS p_seq", &[]);
    db.exec("CREATE SEQUENCE p_seq", &[]);
    db.exec("DROP TABLE IF EXISTS p_typed", &[]);
    db.exec("CREATE TABLE p_typed (id int4, u uuid, n numeric)", &[]);
    let sql = "INSERT INTO p_typed (id, u, n) VALUES (nextval('p_seq')::int4 + :id, :u, :n)";
    for (params, mentions) in [
        (
            Params::named(&[("id", V::I(1 << 40)), ("u", V::Null), ("n", V::Null)]),
            [":id", "int4", "out of range"],
        ),
        (
            Params::named(&[("id", V::I(1)), ("u", t("nope")), ("n", V::Null)]),
            [":u", "uuid", "not a UUID"],
        ),
        (
            Params::named(&[("id", V::I(1)), ("u", V::Null), ("n", t("1.2.3"))]),
            [":n", "numeric", "not a decimal number"],
        ),
        (
            Params::named(&[("id", V::D(0.5)), ("u", V::Null), ("n", V::Null)]),
            [":id", "int4", "double 0.5"],
        ),
    ] {
        expect_param_error(db.try_exec(sql, &params), &mentions, sql);
    }
    let rows = db.query("SELECT is_called FROM p_seq", &[]);
    assert_eq!(rows.rows[0][0], V::Bool(false), "the sequence moved");
    assert_eq!(db.count("p_typed"), 0);
    // The good values do go in.
    let good = Params::named(&[
        ("id", V::I(10)),
        ("u", t("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")),
        ("n", t("1.5")),
    ]);
    db.try_exec(sql, &good).unwrap();
    assert_eq!(db.one("SELECT id FROM p_typed", &[]), V::I(11));
    db.exec("DROP TABLE p_typed", &[]);
    db.exec("DROP SEQUENCE p_seq", &[]);
}

// ---------------------------------------------------------------------------
// Bound, never interpolated

#[test]
fn values_are_bound_never_interpolated() {
    let nasty = [
        "'); DROP TABLE p_inject; --",
        "\"; DROP TABLE p_inject; --",
        "' OR '1'='1",
        ":a :b $1 ?1 ? @x $$ $tag$ -- /* */",
        "\\'; \\\\ \u{0}",
        "",
    ];
    for (db_name, db) in &dbs().list {
        table(db, "p_inject");
        for (i, value) in nasty.iter().enumerate() {
            if is_pg(db_name) && value.contains('\u{0}') {
                continue; // PostgreSQL text cannot hold NUL
            }
            db.try_exec(
                "INSERT INTO p_inject (id, a, c) VALUES (:id, :v, :v)",
                &Params::named(&[("id", V::I(i as i64)), ("v", t(value))]),
            )
            .unwrap_or_else(|e| panic!("{db_name}: {value:?}: {e:?}"));
            let rows = db.query("SELECT a, c FROM p_inject WHERE id = $1", &[V::I(i as i64)]);
            assert_eq!(rows.rows, vec![vec![t(value), t(value)]], "{db_name}");
            // Also as a WHERE value: it matches itself and nothing else.
            let rows = db.query("SELECT count(*) FROM p_inject WHERE a = $1", &[t(value)]);
            assert_eq!(rows.rows[0][0], V::I(1), "{db_name}: {value:?}");
        }
        // The table is still there, holding every value.
        let expected = nasty.len() - usize::from(is_pg(db_name));
        assert_eq!(db.count("p_inject"), expected as i64, "{db_name}");
    }
}

/// `:x`, `$1` and `?` inside strings, quoted identifiers and comments are
/// text, not placeholders, end to end.
#[test]
fn placeholder_look_alikes_are_left_alone() {
    for (db_name, db) in &dbs().list {
        let rows = db
            .try_query(
                "SELECT ':x' AS s1, 'it''s :y and $1 ?' AS s2, 1 AS \"q:z\", \
                 /* :c1 $1 ? */ CAST(:real AS INTEGER) AS r -- :c2 $2 ?\n",
                &Params::named(&[("real", V::I(5))]),
            )
            .unwrap_or_else(|e| panic!("{db_name}: {e:?}"));
        assert_eq!(rows.names, ["s1", "s2", "q:z", "r"], "{db_name}");
        assert_eq!(
            rows.rows[0],
            vec![t(":x"), t("it's :y and $1 ?"), V::I(1), V::I(5)],
            "{db_name}"
        );
        // Positional style too.
        let rows = db
            .try_query(
                "SELECT ':x' AS s1, $1 AS p -- :y\n",
                &Params::positional(&[t("v")]),
            )
            .unwrap_or_else(|e| panic!("{db_name}: {e:?}"));
        assert_eq!(rows.rows[0], vec![t(":x"), t("v")], "{db_name}");
    }
}

#[test]
fn pg_casts_dollar_quotes_and_slices_are_left_alone() {
    let dbs = dbs();
    let Some((_, db)) = dbs.list.iter().find(|(n, _)| is_pg(n)) else {
        return;
    };
    let rows = db
        .try_query(
            "SELECT :v::int4 + 1 AS casted, \
                    E'\\':x' AS esc, \
                    $$ :x $1 $$ AS dollar, \
                    $tag$ it's :y $tag$ AS tagged, \
                    (ARRAY[10, 20, 30])[2:3] AS slice, \
                    (ARRAY[:v::int4, 2])[1:1] AS ctor, \
                    '2024-01-01 12:34:56'::timestamp::text AS ts",
            &Params::named(&[("v", t("41"))]),
        )
        .unwrap();
    assert_eq!(
        rows.rows[0],
        vec![
            V::I(42),
            t("':x"),
            t(" :x $1 "),
            t(" it's :y "),
            t("[20,30]"),
            t("[41]"),
            t("2024-01-01 12:34:56"),
        ]
    );
}

// ---------------------------------------------------------------------------
// Batches

fn thousand(from: i64) -> Vec<Params> {
    (from..from + 1000)
        .map(|i| {
            Params::named(&[
                ("id", V::I(i)),
                ("a", t(&format!("row {i}"))),
                ("b", V::I(i * 2)),
            ])
        })
        .collect()
}

fn batch_insert(table: &str) -> String {
    format!("INSERT INTO {table} (id, a, b) VALUES (:id, :a, :b)")
}

#[test]
fn batch_of_1000_reports_rows_affected() {
    for (db_name, db) in &dbs().list {
        let tb = "p_batch_count";
        table(db, tb);
        let n = db
            .try_batch(&batch_insert(tb), &thousand(0))
            .unwrap_or_else(|e| panic!("{db_name}: {e:?}"));
        assert_eq!(n, 1000, "{db_name}");
        assert_eq!(db.count(tb), 1000, "{db_name}");
        assert_eq!(
            db.one(&format!("SELECT CAST(sum(b) AS BIGINT) FROM {tb}"), &[]),
            V::I(999_000),
            "{db_name}"
        );
        // Positional sets, and an UPDATE: rows affected add up.
        let sets: Vec<Params> = (0..10)
            .map(|i| Params::positional(&[V::I(i * 100), V::I(i * 100 + 49)]))
            .collect();
        let n = db
            .try_batch(
                &format!("UPDATE {tb} SET c = 'x' WHERE id BETWEEN $1 AND $2"),
                &sets,
            )
            .unwrap();
        assert_eq!(n, 500, "{db_name}");
        // No sets: nothing to do.
        assert_eq!(
            db.try_batch(&batch_insert(tb), &[]).unwrap(),
            0,
            "{db_name}"
        );
        assert_eq!(db.count(tb), 1000, "{db_name}");
    }
}

#[test]
fn batch_is_all_or_nothing() {
    for (db_name, db) in &dbs().list {
        let tb = "p_batch_atomic";
        table(db, tb);
        let insert = batch_insert(tb);
        // Set #500 violates the primary key (same id as set #1).
        let mut sets = thousand(0);
        sets[499] = Params::named(&[("id", V::I(0)), ("a", t("dup")), ("b", V::I(0))]);
        let e = db.try_batch(&insert, &sets).unwrap_err();
        assert_eq!(
            e.status,
            Status::ConstraintViolation,
            "{db_name}: {}",
            e.message
        );
        assert_eq!(db.count(tb), 0, "{db_name}");

        // Set #500 misses a name: a parameter error naming the set and the
        // parameter.
        let mut sets = thousand(0);
        sets[499] = Params::named(&[("id", V::I(499)), ("a", t("x"))]);
        let e = db.try_batch(&insert, &sets).unwrap_err();
        assert_eq!(e.status, Status::ParameterError, "{db_name}: {}", e.message);
        assert!(e.message.contains("#500"), "{db_name}: {}", e.message);
        assert!(e.message.contains(":b"), "{db_name}: {}", e.message);
        assert_eq!(db.count(tb), 0, "{db_name}");

        // Set #500 has a wrong count (positional).
        let mut sets: Vec<Params> = (0..1000)
            .map(|i| Params::positional(&[V::I(i), t("p"), V::I(i)]))
            .collect();
        sets[499] = Params::positional(&[V::I(499), t("p")]);
        let e = db
            .try_batch(
                &format!("INSERT INTO {tb} (id, a, b) VALUES ($1, $2, $3)"),
                &sets,
            )
            .unwrap_err();
        assert_eq!(e.status, Status::ParameterError, "{db_name}: {}", e.message);
        assert!(e.message.contains("#500"), "{db_name}: {}", e.message);
        assert_eq!(db.count(tb), 0, "{db_name}");

        if is_pg(db_name) {
            // Set #500 holds a value its parameter's type cannot take.
            let mut sets = thousand(0);
            sets[499] = Params::named(&[("id", t("five hundred")), ("a", t("x")), ("b", V::I(1))]);
            let e = db.try_batch(&insert, &sets).unwrap_err();
            assert_eq!(e.status, Status::ParameterError, "{}", e.message);
            assert!(e.message.contains("#500"), "{}", e.message);
            assert!(e.message.contains(":id"), "{}", e.message);
            assert_eq!(db.count(tb), 0);
        }
        // The connection is usable afterwards.
        assert_eq!(db.try_batch(&insert, &thousand(0)).unwrap(), 1000);
        assert_eq!(db.count(tb), 1000, "{db_name}");
    }
}

#[test]
fn batch_inside_an_open_transaction() {
    for (db_name, db) in &dbs().list {
        let tb = "p_batch_tx";
        table(db, tb);
        let insert = batch_insert(tb);
        let one = format!("INSERT INTO {tb} (id) VALUES ($1)");
        // The batch joins the caller's transaction: a rollback undoes it.
        db.begin();
        db.exec(&one, &[V::I(-1)]);
        assert_eq!(db.try_batch(&insert, &thousand(0)).unwrap(), 1000);
        assert_eq!(db.count(tb), 1001, "{db_name}");
        db.rollback();
        assert_eq!(db.count(tb), 0, "{db_name}");
        // And a commit keeps it.
        db.begin();
        db.exec(&one, &[V::I(-1)]);
        assert_eq!(db.try_batch(&insert, &thousand(0)).unwrap(), 1000);
        assert_eq!(db.try_batch(&insert, &thousand(1000)).unwrap(), 1000);
        db.commit();
        assert_eq!(db.count(tb), 2001, "{db_name}");
    }
}

/// A failed batch inside the caller's transaction leaves nothing of the
/// batch behind and the transaction usable (the documented "all or
/// nothing: on error nothing of the batch remains").
#[test]
fn failed_batch_inside_a_transaction_leaves_nothing() {
    for (db_name, db) in &dbs().list {
        let tb = "p_batch_tx_fail";
        table(db, tb);
        db.begin();
        db.exec(&format!("INSERT INTO {tb} (id) VALUES ($1)"), &[V::I(-1)]);
        let mut sets = thousand(0);
        sets[499] = Params::named(&[("id", V::I(0)), ("a", t("dup")), ("b", V::I(0))]);
        let e = db.try_batch(&batch_insert(tb), &sets).unwrap_err();
        assert_eq!(
            e.status,
            Status::ConstraintViolation,
            "{db_name}: {}",
            e.message
        );
        let inside = db
            .try_query(&format!("SELECT count(*) FROM {tb}"), &Params::new())
            .map(|r| r.rows[0][0].clone());
        db.rollback();
        assert_eq!(
            inside.map_err(|e| e.message),
            Ok(V::I(1)),
            "{db_name}: after the failed batch, the transaction should hold only the row \
             inserted before it"
        );
    }
}

/// PostgreSQL: after `sqlpool_conn_execute_script` (schema set-up, say) the
/// library assumes a transaction may be open and no longer gives a batch its
/// own transaction, so a failing batch leaves its first sets committed.
#[test]
fn pg_batch_after_a_script_is_still_all_or_nothing() {
    let dbs = dbs();
    let Some((_, db)) = dbs.list.iter().find(|(n, _)| is_pg(n)) else {
        return;
    };
    db.script(
        "DROP TABLE IF EXISTS p_batch_script; \
         CREATE TABLE p_batch_script (id INTEGER PRIMARY KEY, a TEXT, b BIGINT, c TEXT)",
    );
    let mut sets = thousand(0);
    sets[499] = Params::named(&[("id", V::I(0)), ("a", t("dup")), ("b", V::I(0))]);
    let e = db
        .try_batch(&batch_insert("p_batch_script"), &sets)
        .unwrap_err();
    assert_eq!(e.status, Status::ConstraintViolation, "{}", e.message);
    assert_eq!(
        db.count("p_batch_script"),
        0,
        "sets #1..#499 were committed"
    );
}

#[test]
#[cfg_attr(
    sqlpool_no_pg,
    ignore = "needs PostgreSQL (built with --cfg sqlpool_no_pg)"
)]
fn pg_statement_cache_off() {
    let Some(server) = PgServer::shared() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    let mut opts = ptr::null_mut();
    check(sqlpool_options_new(&mut opts), "options_new");
    check(
        sqlpool_options_set_statement_cache_size(opts, 0),
        "cache size",
    );
    let db = Db::open_with(&server.url(), opts);
    sqlpool_options_free(opts);
    table(&db, "p_nocache");
    for round in 0..3 {
        // The same named statement several times, unprepared each time.
        for i in 0..5 {
            let id = round * 5 + i;
            db.try_exec(
                "INSERT INTO p_nocache (id, a, b, c) VALUES (:id, :a, :b, :a)",
                &Params::named(&[("id", V::I(id)), ("a", t("x")), ("b", V::I(id))]),
            )
            .unwrap();
        }
        let rows = db.query(
            "SELECT count(*), max(b) FROM p_nocache WHERE a = $1",
            &[t("x")],
        );
        assert_eq!(rows.rows[0], vec![V::I(round * 5 + 5), V::I(round * 5 + 4)]);
    }
    let sets: Vec<Params> = (100..1100)
        .map(|i| Params::named(&[("id", V::I(i)), ("a", t("b")), ("b", V::I(i))]))
        .collect();
    assert_eq!(
        db.try_batch(
            "INSERT INTO p_nocache (id, a, b) VALUES (:id, :a, :b)",
            &sets
        )
        .unwrap(),
        1000
    );
    // Without a prepared statement the server checks the values; its
    // error still names the parameter.
    let e = db
        .try_exec(
            "INSERT INTO p_nocache (id) VALUES (:id)",
            &Params::named(&[("id", t("x"))]),
        )
        .unwrap_err();
    assert_eq!(e.status, Status::DatabaseError, "{}", e.message);
    assert!(e.message.contains("parameter :id"), "{}", e.message);
    // Nothing is left prepared on the server (but this query itself).
    let rows = db.query(
        "SELECT count(*) FROM pg_prepared_statements WHERE statement NOT LIKE '%pg_prepared%'",
        &[],
    );
    assert_eq!(rows.rows[0][0], V::I(0));
    assert_eq!(db.count("p_nocache"), 1015);
}
