'use strict';
// The scenario every runtime's binding runs, on SQLite and PostgreSQL.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const sqlpool = require('../lib/sqlpool');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlpool-node-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));

const pgUrl = process.env.SQLPOOL_TEST_PG_URL || '';
// Without a server the PostgreSQL half is skipped, visibly; under CI it fails.
if (!pgUrl && process.env.CI === 'true') {
  it('PostgreSQL is available under CI', () => assert.fail('SQLPOOL_TEST_PG_URL is not set (CI=true)'));
}

for (const [backend, uri] of [['sqlite', `sqlite:${path.join(dir, 'scenario.db')}`], ['postgresql', pgUrl]]) {
  const skip = uri ? false : 'SQLPOOL_TEST_PG_URL not set';
  describe(`scenario on ${backend}`, () => {
    // Each test says it skipped, so the summary counts them.
    const test = (name, fn) => it(name, { skip }, fn);
    let pool;
    before(async () => {
      if (skip) return;
      pool = await sqlpool.open(uri, { max_size: 5 });
      await pool.execute('DROP TABLE IF EXISTS node_users');
      await pool.execute('CREATE TABLE node_users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)');
    });
    after(async () => {
      pool?.close(); // idempotent: the last test closed it already
    });

    test('opens a pool of 5', () => {
      assert.equal(pool.stats().max_size, 5);
    });

    test('runs 200 concurrent queries with named parameters', async () => {
      const results = await Promise.all(Array.from({ length: 200 }, (_, i) => pool.query(
        'SELECT CAST(:i AS BIGINT) * 2 AS doubled, CAST(:tag AS TEXT) AS tag', { i, tag: `q${i}` })));
      results.forEach((rows, i) => assert.deepEqual(rows, [{ doubled: 2 * i, tag: `q${i}` }]));
      const s = pool.stats();
      assert.ok(s.total <= 5, `pool grew to ${s.total}`);
      assert.equal(s.in_use, 0);
    });

    test('rolls a transaction back', async () => {
      await pool.connection(async (conn) => {
        await assert.rejects(conn.transaction(async (tx) => {
          await tx.execute('INSERT INTO node_users (id, name) VALUES (:id, :name)', { id: 1, name: 'ghost' });
          assert.deepEqual(await tx.query('SELECT count(*) AS n FROM node_users'), [{ n: 1 }]);
          throw new Error('abort');
        }), /abort/);
      });
      assert.deepEqual(await pool.query('SELECT count(*) AS n FROM node_users'), [{ n: 0 }]);
    });

    test('reports a unique violation with SQLSTATE 23505', async () => {
      await pool.execute('INSERT INTO node_users (id, name) VALUES (:id, :name)', { id: 1, name: 'alice' });
      const err = await pool.execute('INSERT INTO node_users (id, name) VALUES (:id, :name)', { id: 2, name: 'alice' })
        .then(() => null, (e) => e);
      assert.ok(err instanceof sqlpool.ConstraintError, `got ${err}`);
      assert.ok(err instanceof sqlpool.DatabaseError && err instanceof Error);
      assert.equal(err.status, sqlpool.Status.CONSTRAINT_VIOLATION);
      assert.equal(err.sqlstate, '23505');
      if (backend === 'postgresql') assert.match(err.detail, /alice/);
    });

    test('closes the pool', async () => {
      const conn = await pool.acquire();
      await conn.execute('DROP TABLE node_users');
      pool.close();
      pool.close(); // idempotent
      // A borrowed connection keeps working until it is given back.
      assert.deepEqual(await conn.query('SELECT 1 AS one'), [{ one: 1 }]);
      conn.release();
      conn.release(); // idempotent
      await assert.rejects(pool.query('SELECT 1'), sqlpool.PoolError);
      await assert.rejects(conn.query('SELECT 1'), sqlpool.MisuseError);
    });
  });
}

it('rows carry every value kind', async () => {
  const pool = await sqlpool.open(`sqlite:${path.join(dir, 'kinds.db')}`);
  try {
    const [row] = await pool.query(
      "SELECT 9007199254740993 AS big, 1.5 AS d, NULL AS n, x'00ff' AS b, :t AS t, :flag AS f",
      { t: 'héllo', flag: true });
    assert.deepEqual(row, { big: 9007199254740993n, d: 1.5, n: null, b: Buffer.from([0, 255]), t: 'héllo', f: 1 });
    const [pos] = await pool.query('SELECT $1 AS a, $2 AS b', [7, 'x']);
    assert.deepEqual(pos, { a: 7, b: 'x' });
    await assert.rejects(pool.query('SELECT :missing'), sqlpool.ParameterError);
  } finally {
    pool.close();
  }
});

it('an unreachable server fails at open with its detail', async () => {
  const err = await sqlpool.open('postgresql://nobody@127.0.0.1:1/none', { acquire_timeout: '300ms', connect_timeout: '300ms' })
    .then(() => null, (e) => e);
  assert.ok(err instanceof sqlpool.SqlpoolError, `got ${err}`);
  assert.ok(err.message.length > 0);
});
