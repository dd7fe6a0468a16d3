//! SQLite statements found again in the connection's statement cache.

mod common;

use common::typed::*;

/// Statements alternating past the connection's statement cache (it starts
/// over when full) and repeating within it each run as themselves: the
/// cache's "last statement" shortcut never answers for another text.
#[test]
fn statements_alternating_past_a_small_cache_run_as_themselves() {
    for size in [0, 1, 2, 8] {
        let db = Db::open(&format!("sqlite::memory:?statement_cache_size={size}"));
        db.script("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b');");
        for round in 0..6 {
            for (sql, want) in [
                ("SELECT v FROM t WHERE k = 1", "a"),
                ("SELECT v FROM t WHERE k = 2", "b"),
                ("SELECT v FROM t WHERE k = 2", "b"),
                ("SELECT upper(v) FROM t WHERE k = 1", "A"),
            ] {
                assert_eq!(
                    db.one(sql, &[]),
                    t(want),
                    "cache size {size}, round {round}: {sql}"
                );
            }
            db.exec("UPDATE t SET v = ? WHERE k = 1", &[t("a")]);
        }
    }
}
