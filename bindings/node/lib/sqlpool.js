'use strict';
// sqlpool for Node.js: the C ABI of include/sqlpool.h through koffi (no
// native add-on to compile). Statements run on the library's own threads
// (its *_async functions); their completions land on a completion queue,
// whose descriptor one koffi async poll(2) call on libuv's thread pool
// watches. Completions are popped on the main thread, so the per-thread
// last error describes them there, and the event loop never blocks on the
// database.

const fs = require('node:fs');
const path = require('node:path');
const koffi = require('koffi');

// One place decides which library is loaded: SQLPOOL_LIBRARY, then the
// repository's build output, then the system's (make install).
function loadLibrary() {
  const tried = [];
  const candidates = [];
  if (process.env.SQLPOOL_LIBRARY) candidates.push(process.env.SQLPOOL_LIBRARY);
  candidates.push(path.resolve(__dirname, '../../../target/release/libsqlpool.so'));
  for (const file of candidates) {
    if (fs.existsSync(file)) return koffi.load(file);
    tried.push(file);
  }
  for (const name of ['libsqlpool.so.0', 'libsqlpool.so']) {
    try {
      return koffi.load(name);
    } catch (e) {
      tried.push(`${name} (${e.message})`);
    }
  }
  throw new Error(`sqlpool: cannot load the library; tried: ${tried.join(', ')}`);
}

const lib = loadLibrary();
for (const name of ['sqlpool_pool', 'sqlpool_conn', 'sqlpool_result', 'sqlpool_params',
  'sqlpool_options', 'sqlpool_queue']) {
  koffi.opaque(name);
}
koffi.struct('sqlpool_completion', {
  op_id: 'uint64_t', user_data: 'void *', status: 'uint32_t', kind: 'uint32_t',
  handle: 'void *', rows_affected: 'uint64_t', error: 'void *',
});
koffi.struct('sqlpool_result_info', {
  rows: 'uintptr_t', columns: 'uintptr_t', names: 'void *', names_len: 'uintptr_t',
});
koffi.struct('sqlpool_column_data', {
  kind: 'uint32_t', _reserved: 'uint32_t', rows: 'uintptr_t', nulls: 'void *',
  ints: 'void *', doubles: 'void *', offsets: 'void *', bytes: 'void *',
});
koffi.struct('sqlpool_stats', {
  total: 'uint32_t', idle: 'uint32_t', in_use: 'uint32_t', waiting: 'uint32_t',
  pending: 'uint32_t', min_size: 'uint32_t', max_size: 'uint32_t', _reserved: 'uint32_t',
  created: 'uint64_t', closed: 'uint64_t', broken: 'uint64_t', acquires: 'uint64_t',
  acquire_timeouts: 'uint64_t', acquires_refused: 'uint64_t', wait_total_us: 'uint64_t',
  wait_max_us: 'uint64_t', leaks_reported: 'uint64_t', connect_errors: 'uint64_t',
});
koffi.struct('sqlpool_pollfd', { fd: 'int', events: 'short', revents: 'short' });

// Prototypes as in the header (statuses as uint32_t: the ABI's enum size).
const C = {};
for (const proto of [
  'const char *sqlpool_version(void)',
  'const char *sqlpool_status_name(uint32_t status)',
  'const char *sqlpool_last_error_json(void)',
  'uint32_t sqlpool_options_new(_Out_ sqlpool_options **out)',
  'uint32_t sqlpool_options_free(sqlpool_options *options)',
  'uint32_t sqlpool_options_set(sqlpool_options *options, const char *key, const char *value)',
  'uint32_t sqlpool_pool_open(const char *uri, const sqlpool_options *options, _Out_ sqlpool_pool **out)',
  'uint32_t sqlpool_pool_close(sqlpool_pool *pool)',
  'uint32_t sqlpool_pool_stats(sqlpool_pool *pool, _Out_ sqlpool_stats *out, uintptr_t size)',
  'uint32_t sqlpool_conn_release(sqlpool_conn *conn)',
  'uint32_t sqlpool_conn_begin(sqlpool_conn *conn, uint32_t isolation, uint32_t flags)',
  'uint32_t sqlpool_conn_commit(sqlpool_conn *conn)',
  'uint32_t sqlpool_conn_rollback(sqlpool_conn *conn)',
  'uint32_t sqlpool_params_new(_Out_ sqlpool_params **out)',
  'uint32_t sqlpool_params_free(sqlpool_params *params)',
  'uint32_t sqlpool_params_add_null(sqlpool_params *params, const char *name)',
  'uint32_t sqlpool_params_add_bool(sqlpool_params *params, const char *name, int32_t value)',
  'uint32_t sqlpool_params_add_int64(sqlpool_params *params, const char *name, int64_t value)',
  'uint32_t sqlpool_params_add_double(sqlpool_params *params, const char *name, double value)',
  'uint32_t sqlpool_params_add_text(sqlpool_params *params, const char *name, const uint8_t *value, uintptr_t len)',
  'uint32_t sqlpool_params_add_blob(sqlpool_params *params, const char *name, const uint8_t *value, uintptr_t len)',
  'uint32_t sqlpool_result_free(sqlpool_result *result)',
  'uint32_t sqlpool_result_describe(sqlpool_result *result, _Out_ sqlpool_result_info *out)',
  'uint32_t sqlpool_result_column_data(sqlpool_result *result, uintptr_t column, _Out_ sqlpool_column_data *out)',
  'uint32_t sqlpool_result_kind(sqlpool_result *result, uintptr_t row, uintptr_t column, _Out_ uint32_t *out)',
  'uint32_t sqlpool_result_get_int64(sqlpool_result *result, uintptr_t row, uintptr_t column, _Out_ int64_t *out)',
  'uint32_t sqlpool_result_get_double(sqlpool_result *result, uintptr_t row, uintptr_t column, _Out_ double *out)',
  'uint32_t sqlpool_result_get_blob(sqlpool_result *result, uintptr_t row, uintptr_t column, _Out_ void **ptr, _Out_ uintptr_t *len)',
  'uint32_t sqlpool_queue_new(_Out_ sqlpool_queue **out)',
  'uint32_t sqlpool_queue_fd(sqlpool_queue *queue, _Out_ int *fd)',
  'uint32_t sqlpool_queue_pop(sqlpool_queue *queue, _Out_ sqlpool_completion *out)',
  'uint32_t sqlpool_queue_free(sqlpool_queue *queue)',
  'uint32_t sqlpool_error_free(void *error)',
  'uint32_t sqlpool_pool_acquire_async(sqlpool_pool *pool, int64_t timeout_ms, sqlpool_queue *queue, void *callback, void *user_data, _Out_ uint64_t *op_id)',
  'uint32_t sqlpool_conn_execute_async(sqlpool_conn *conn, const char *sql, const sqlpool_params *params, sqlpool_queue *queue, void *callback, void *user_data, _Out_ uint64_t *op_id)',
  'uint32_t sqlpool_conn_query_async(sqlpool_conn *conn, const char *sql, const sqlpool_params *params, sqlpool_queue *queue, void *callback, void *user_data, _Out_ uint64_t *op_id)',
]) {
  const fn = lib.func(proto);
  C[proto.match(/(sqlpool_\w+)\(/)[1]] = fn;
}
const libc = koffi.load('libc.so.6');
const poll = libc.func('int poll(sqlpool_pollfd *fds, unsigned long nfds, int timeout)');

const OK = 0;
const EMPTY = 22;
const Status = Object.freeze({
  OK: 0, INVALID_ARGUMENT: 1, INVALID_UTF8: 2, INVALID_URI: 3, INVALID_OPTION: 4, MISUSE: 5,
  OUT_OF_RANGE: 6, TYPE_MISMATCH: 7, NULL_VALUE: 8, POOL_TIMEOUT: 9, POOL_CLOSED: 10,
  POOL_EXHAUSTED: 11, CONNECTION_ERROR: 12, AUTH_ERROR: 13, DATABASE_ERROR: 14,
  CONSTRAINT_VIOLATION: 15, PARAMETER_ERROR: 16, UNSUPPORTED: 17, CANCELLED: 18, BUSY: 19,
  TRANSACTION_STATE: 20, BUFFER_TOO_SMALL: 21, EMPTY: 22, INTERNAL: 98, PANIC: 99,
});
const KIND = { NULL: 0, BOOL: 1, INT64: 2, DOUBLE: 3, TEXT: 4, BLOB: 5, MIXED: 6 };

// ---------------------------------------------------------------- errors

class SqlpoolError extends Error {
  constructor(status, info = {}) {
    super(info.message || C.sqlpool_status_name(status));
    this.name = new.target.name;
    this.status = status;
    this.code = C.sqlpool_status_name(status);
    this.sqlstate = info.sqlstate || null;
    this.detail = info.detail || null;
    this.hint = info.hint || null;
    this.nativeCode = info.native_code || 0;
  }
}
class PoolError extends SqlpoolError {}
class PoolTimeoutError extends PoolError {}
class ConnectionError extends SqlpoolError {}
class DatabaseError extends SqlpoolError {}
class ConstraintError extends DatabaseError {}
class ParameterError extends SqlpoolError {}
class TransactionError extends DatabaseError {}
class CancelledError extends SqlpoolError {}
class MisuseError extends SqlpoolError {}

const ERROR_CLASS = {
  [Status.POOL_TIMEOUT]: PoolTimeoutError, [Status.POOL_CLOSED]: PoolError,
  [Status.POOL_EXHAUSTED]: PoolError, [Status.CONNECTION_ERROR]: ConnectionError,
  [Status.AUTH_ERROR]: ConnectionError, [Status.DATABASE_ERROR]: DatabaseError,
  [Status.CONSTRAINT_VIOLATION]: ConstraintError, [Status.PARAMETER_ERROR]: ParameterError,
  [Status.TRANSACTION_STATE]: TransactionError, [Status.CANCELLED]: CancelledError,
  [Status.MISUSE]: MisuseError, [Status.BUSY]: MisuseError,
};

// The calling thread's last error: only meaningful right after the failing
// call (or queue pop) on the main thread.
function lastError(status) {
  let info = {};
  try {
    info = JSON.parse(C.sqlpool_last_error_json());
  } catch { /* keep the status alone */ }
  const Class = ERROR_CLASS[status] || SqlpoolError;
  return new Class(status, info);
}

function check(status) {
  if (status !== OK) throw lastError(status);
}

// A call made on one of libuv's threads (koffi async): the detail stays on
// that thread, so the error carries the status only (see bindings/RUNTIMES.md).
function offThread(fn, ...args) {
  return new Promise((resolve, reject) => {
    fn.async(...args, (err, status) => {
      if (err) reject(err);
      else if (status !== OK) {
        const Class = ERROR_CLASS[status] || SqlpoolError;
        reject(new Class(status, { message: `${C.sqlpool_status_name(status)} (no detail: the call ran on a worker thread)` }));
      } else resolve();
    });
  });
}

// ---------------------------------------------------------------- parameters

// Builds a parameter list from an object ({name: value}, for :name) or an
// array (positional $1..$n / ?). The caller frees it with sqlpool_params_free.
function makeParams(params) {
  if (params === undefined || params === null) return null;
  const out = [null];
  check(C.sqlpool_params_new(out));
  const handle = out[0];
  try {
    const entries = Array.isArray(params)
      ? params.map((v) => [null, v])
      : Object.entries(params);
    for (const [name, value] of entries) addParam(handle, name, value);
  } catch (e) {
    C.sqlpool_params_free(handle);
    throw e;
  }
  return handle;
}

function addParam(h, name, v) {
  if (v === null || v === undefined) return check(C.sqlpool_params_add_null(h, name));
  switch (typeof v) {
    case 'boolean': return check(C.sqlpool_params_add_bool(h, name, v ? 1 : 0));
    case 'bigint': return check(C.sqlpool_params_add_int64(h, name, v));
    case 'number':
      return check(Number.isSafeInteger(v)
        ? C.sqlpool_params_add_int64(h, name, v)
        : C.sqlpool_params_add_double(h, name, v));
    case 'string': {
      const bytes = Buffer.from(v, 'utf8');
      return check(C.sqlpool_params_add_text(h, name, bytes, bytes.length));
    }
    default:
      if (v instanceof Date) return addParam(h, name, v.toISOString());
      if (v instanceof Uint8Array) return check(C.sqlpool_params_add_blob(h, name, v, v.length));
      throw new TypeError(`sqlpool: cannot bind a ${v.constructor?.name ?? typeof v} (parameter ${name ?? 'positional'})`);
  }
}

// ---------------------------------------------------------------- results

// Reads a whole result into plain objects, one sqlpool_column_data call per
// column, then frees it (also when reading fails).
function readResult(res) {
  try {
    const info = {};
    check(C.sqlpool_result_describe(res, info));
    const names = [];
    if (info.columns > 0) {
      const parts = Buffer.from(koffi.view(info.names, info.names_len)).toString('utf8').split('\0');
      for (let c = 0; c < info.columns; c++) names.push(parts[2 * c]);
    }
    const rows = [];
    for (let r = 0; r < info.rows; r++) rows.push({});
    for (let c = 0; c < info.columns; c++) {
      const values = readColumn(res, c, info.rows);
      for (let r = 0; r < info.rows; r++) rows[r][names[c]] = values[r];
    }
    return rows;
  } finally {
    C.sqlpool_result_free(res);
  }
}

function readColumn(res, c, n) {
  const d = {};
  check(C.sqlpool_result_column_data(res, c, d));
  if (n === 0 || d.kind === KIND.NULL) return new Array(n).fill(null);
  if (d.kind === KIND.MIXED) return Array.from({ length: n }, (_, r) => readCell(res, r, c));
  const nulls = koffi.decode(d.nulls, 'uint8_t', n);
  let values;
  switch (d.kind) {
    case KIND.INT64: values = koffi.decode(d.ints, 'int64_t', n); break;
    case KIND.BOOL: values = Array.from(koffi.decode(d.ints, 'int64_t', n), (x) => x !== 0); break;
    case KIND.DOUBLE: values = koffi.decode(d.doubles, 'double', n); break;
    case KIND.TEXT:
    case KIND.BLOB: {
      const offsets = koffi.decode(d.offsets, 'uint64_t', n + 1);
      const total = Number(offsets[n]);
      // A view of the library's memory: copied below, before the result is freed.
      const bytes = total > 0 ? Buffer.from(koffi.view(d.bytes, total)) : Buffer.alloc(0);
      values = new Array(n);
      for (let r = 0; r < n; r++) {
        const a = Number(offsets[r]); const b = Number(offsets[r + 1]);
        values[r] = d.kind === KIND.TEXT ? bytes.toString('utf8', a, b) : Buffer.from(bytes.subarray(a, b));
      }
      break;
    }
    default: throw new SqlpoolError(Status.INTERNAL, { message: `unknown column kind ${d.kind}` });
  }
  return Array.from(values, (v, r) => (nulls[r] ? null : v));
}

function readCell(res, r, c) {
  const kind = [0];
  check(C.sqlpool_result_kind(res, r, c, kind));
  const out = [null];
  switch (kind[0]) {
    case KIND.NULL: return null;
    case KIND.BOOL: check(C.sqlpool_result_get_int64(res, r, c, out)); return out[0] !== 0;
    case KIND.INT64: check(C.sqlpool_result_get_int64(res, r, c, out)); return out[0];
    case KIND.DOUBLE: check(C.sqlpool_result_get_double(res, r, c, out)); return out[0];
    default: {
      const len = [0];
      check(C.sqlpool_result_get_blob(res, r, c, out, len));
      const bytes = Buffer.from(len[0] > 0 ? Buffer.from(koffi.view(out[0], len[0])) : Buffer.alloc(0));
      return kind[0] === KIND.TEXT ? bytes.toString('utf8') : bytes;
    }
  }
}

// ---------------------------------------------------------------- completions

// One queue for the process; its descriptor is polled only while
// operations are pending, so an idle program can exit.
const completions = { queue: null, fd: -1, pending: new Map(), polling: false };

function startOp(begin) {
  if (completions.queue === null) {
    const q = [null];
    check(C.sqlpool_queue_new(q));
    const fd = [0];
    const st = C.sqlpool_queue_fd(q[0], fd);
    if (st !== OK) {
      const err = lastError(st);
      C.sqlpool_queue_free(q[0]);
      throw err;
    }
    completions.queue = q[0];
    completions.fd = fd[0];
  }
  return new Promise((resolve, reject) => {
    const opId = [0];
    const st = begin(completions.queue, opId);
    if (st !== OK) return reject(lastError(st));
    completions.pending.set(Number(opId[0]), { resolve, reject });
    armPoll();
  });
}

function armPoll() {
  if (completions.polling || completions.pending.size === 0) return;
  completions.polling = true;
  const pfd = { fd: completions.fd, events: 1 /* POLLIN */, revents: 0 };
  // Bounded wait (1 s): a pending op is re-armed, an idle program exits.
  poll.async(pfd, 1, 1000, () => {
    completions.polling = false;
    drainQueue();
    armPoll();
  });
}

function drainQueue() {
  for (;;) {
    const c = {};
    const st = C.sqlpool_queue_pop(completions.queue, c);
    if (st === EMPTY) return;
    if (st !== OK) throw lastError(st); // a stale queue: a bug in this module
    const waiter = completions.pending.get(Number(c.op_id));
    completions.pending.delete(Number(c.op_id));
    // pop set this thread's last error to the operation's: read it now.
    if (c.error) C.sqlpool_error_free(c.error); // our copy of that error
    if (c.status !== OK) waiter.reject(lastError(c.status));
    else waiter.resolve(c);
  }
}

// ---------------------------------------------------------------- API

class Connection {
  #handle;
  #kind;

  constructor(handle, kind) {
    this.#handle = handle;
    this.#kind = kind;
  }

  #live() {
    if (this.#handle === null) throw new MisuseError(Status.MISUSE, { message: 'connection already released' });
    return this.#handle;
  }

  // Resolves to an array of row objects ({column: value}).
  async query(sql, params) {
    const conn = this.#live();
    const c = await withParams(params, (p) => startOp((q, id) =>
      C.sqlpool_conn_query_async(conn, sql, p, q, null, null, id)));
    return readResult(c.handle);
  }

  // Resolves to the number of rows changed.
  async execute(sql, params) {
    const conn = this.#live();
    const c = await withParams(params, (p) => startOp((q, id) =>
      C.sqlpool_conn_execute_async(conn, sql, p, q, null, null, id)));
    return Number(c.rows_affected);
  }

  begin({ isolation = 0, readOnly = false } = {}) {
    return offThread(C.sqlpool_conn_begin, this.#live(), isolation, readOnly ? 1 : 0);
  }

  commit() { return offThread(C.sqlpool_conn_commit, this.#live()); }

  rollback() { return offThread(C.sqlpool_conn_rollback, this.#live()); }

  // Runs fn(conn) inside a transaction: commit when it resolves, rollback
  // when it throws (the original error is what the caller sees).
  async transaction(fn, options) {
    await this.begin(options);
    let result;
    try {
      result = await fn(this);
    } catch (e) {
      await this.rollback().catch(() => {});
      throw e;
    }
    await this.commit();
    return result;
  }

  get backend() { return this.#kind; }

  // Gives the connection back (an open transaction is rolled back).
  // Idempotent; the handle is forgotten only once the library took it.
  release() {
    if (this.#handle === null) return;
    check(C.sqlpool_conn_release(this.#handle));
    this.#handle = null;
  }
}

// Params are copied by the *_async starters, so they are freed right after.
async function withParams(params, start) {
  const p = makeParams(params);
  let promise;
  try {
    promise = start(p);
  } finally {
    C.sqlpool_params_free(p);
  }
  return promise;
}

class Pool {
  #handle;
  #kind;

  // Opens lazily (never blocks the event loop); use sqlpool.open() to
  // connect once first and fail fast. options: any sqlpool option
  // ({max_size: 5, acquire_timeout: '2s'}).
  constructor(uri, options = {}) {
    const o = [null];
    check(C.sqlpool_options_new(o));
    try {
      for (const [key, value] of Object.entries({ lazy: true, ...options })) {
        check(C.sqlpool_options_set(o[0], key, String(value)));
      }
      const out = [null];
      check(C.sqlpool_pool_open(uri, o[0], out));
      this.#handle = out[0];
    } finally {
      C.sqlpool_options_free(o[0]);
    }
    this.#kind = /^postgres/i.test(uri ?? 'postgresql') ? 'postgresql' : 'sqlite';
  }

  #live() {
    if (this.#handle === null) throw new PoolError(Status.POOL_CLOSED, { message: 'pool is closed' });
    return this.#handle;
  }

  get backend() { return this.#kind; }

  // Borrows a connection; timeoutMs < 0 means the pool's acquire_timeout.
  async acquire(timeoutMs = -1) {
    const pool = this.#live();
    const c = await startOp((q, id) => C.sqlpool_pool_acquire_async(pool, timeoutMs, q, null, null, id));
    return new Connection(c.handle, this.#kind);
  }

  // Runs fn(conn) with a borrowed connection, released whatever happens.
  async connection(fn, timeoutMs = -1) {
    const conn = await this.acquire(timeoutMs);
    try {
      return await fn(conn);
    } finally {
      conn.release();
    }
  }

  query(sql, params) { return this.connection((c) => c.query(sql, params)); }

  execute(sql, params) { return this.connection((c) => c.execute(sql, params)); }

  transaction(fn, options) { return this.connection((c) => c.transaction(fn, options)); }

  stats() {
    const s = {};
    check(C.sqlpool_pool_stats(this.#live(), s, koffi.sizeof('sqlpool_stats')));
    delete s._reserved;
    return s;
  }

  // Waiting acquires fail with PoolError; borrowed connections close when
  // released. Idempotent.
  close() {
    if (this.#handle === null) return;
    check(C.sqlpool_pool_close(this.#handle));
    this.#handle = null;
  }

  async [Symbol.asyncDispose ?? Symbol.for('nodejs.asyncDispose')]() { this.close(); }
}

// Opens a pool and borrows one connection once, so a bad URI, password or
// unreachable server fails here (with its detail) rather than on first use.
async function open(uri, options = {}) {
  const pool = new Pool(uri, options);
  if (options.lazy) return pool;
  try {
    const conn = await pool.acquire();
    conn.release();
  } catch (e) {
    pool.close();
    throw e;
  }
  return pool;
}

module.exports = {
  open, Pool, Connection, Status, version: () => C.sqlpool_version(),
  SqlpoolError, PoolError, PoolTimeoutError, ConnectionError, DatabaseError, ConstraintError,
  ParameterError, TransactionError, CancelledError, MisuseError,
};
