'use strict';
// node examples/quickstart.js [URI]: a pool, concurrent queries, a
// transaction and an error, printed as they happen.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const sqlpool = require('../lib/sqlpool');

async function main() {
  const file = path.join(os.tmpdir(), `sqlpool-node-demo-${process.pid}.db`);
  const uri = process.argv[2] || `sqlite:${file}`;
  const pool = await sqlpool.open(uri, { max_size: 5 });
  try {
    console.log(`node: sqlpool ${sqlpool.version()} on ${pool.backend}`);
    await pool.execute('DROP TABLE IF EXISTS demo_node');
    await pool.execute('CREATE TABLE demo_node (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)');
    const rows = await Promise.all([1, 2, 3].map((n) => pool.query('SELECT CAST(:n AS BIGINT) * 10 AS tens', { n })));
    console.log('node: 3 concurrent queries ->', rows.map(([r]) => r.tens).join(', '));
    await pool.execute('INSERT INTO demo_node (id, name) VALUES (:id, :name)', { id: 1, name: 'ada' });
    await pool.transaction(async (tx) => {
      await tx.execute('INSERT INTO demo_node (id, name) VALUES (:id, :name)', { id: 2, name: 'grace' });
      throw new Error('changed my mind');
    }).catch((e) => console.log(`node: transaction rolled back (${e.message})`));
    console.log('node: rows ->', JSON.stringify(await pool.query('SELECT id, name FROM demo_node ORDER BY id')));
    try {
      await pool.execute('INSERT INTO demo_node (id, name) VALUES (:id, :name)', { id: 3, name: 'ada' });
    } catch (e) {
      console.log(`node: ${e.name} ${e.code} SQLSTATE ${e.sqlstate}: ${e.message}`);
    }
    await pool.execute('DROP TABLE demo_node');
  } finally {
    pool.close();
    for (const f of [file, `${file}-wal`, `${file}-shm`]) fs.rmSync(f, { force: true });
  }
  console.log('node: pool closed');
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
