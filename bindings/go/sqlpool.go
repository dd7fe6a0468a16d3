// Package sqlpool wraps the sqlpool C ABI (include/sqlpool.h): pooled
// SQLite and PostgreSQL connections with database/sql-like ergonomics.
//
//	pool, err := sqlpool.Open("sqlite:app.db", sqlpool.Options{"max_size": "5"})
//	rows, err := pool.QueryContext(ctx, "SELECT name FROM users WHERE id = :id", sql.Named("id", 7))
//
// A context's deadline bounds the wait for a connection (the acquire
// timeout) and the statement (cancelled through sqlpool_cancel when the
// context ends). Statements run on the library's threads; a goroutine waits
// on a channel, not in C.
package sqlpool

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -L${SRCDIR}/../../target/release -lsqlpool -Wl,-rpath,${SRCDIR}/../../target/release
#include <stdlib.h>
#include "sqlpool.h"

sqlpool_status sp_acquire_async(sqlpool_pool *pool, int64_t timeout_ms, uintptr_t token, uint64_t *op_id);
sqlpool_status sp_query_async(sqlpool_conn *conn, const char *sql, const sqlpool_params *params, uintptr_t token, uint64_t *op_id);
sqlpool_status sp_execute_async(sqlpool_conn *conn, const char *sql, const sqlpool_params *params, uintptr_t token, uint64_t *op_id);
*/
import "C"

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"runtime/cgo"
	"sync"
	"time"
	"unsafe"
)

// Status is a sqlpool_status code.
type Status uint32

const (
	StatusOK                  Status = 0
	StatusMisuse              Status = 5
	StatusPoolTimeout         Status = 9
	StatusPoolClosed          Status = 10
	StatusPoolExhausted       Status = 11
	StatusConnectionError     Status = 12
	StatusDatabaseError       Status = 14
	StatusConstraintViolation Status = 15
	StatusParameterError      Status = 16
	StatusCancelled           Status = 18
	StatusTransactionState    Status = 20
)

func (s Status) String() string { return C.GoString(C.sqlpool_status_name(C.uint32_t(s))) }

// Error is a failure reported by the library, with the database's SQLSTATE
// and details when there are any.
type Error struct {
	Status     Status
	Message    string
	SQLState   string
	Detail     string
	Hint       string
	NativeCode int64
	ctxErr     error // the context's error when the context ended the call
}

func (e *Error) Error() string {
	msg := e.Status.String() + ": " + e.Message
	if e.SQLState != "" {
		msg += " (SQLSTATE " + e.SQLState + ")"
	}
	return msg
}

// Is matches errors of the same status, so errors.Is(err, ErrConstraint) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Status == e.Status
}

// Unwrap gives context.DeadlineExceeded or context.Canceled when the
// context ended the call.
func (e *Error) Unwrap() error { return e.ctxErr }

// Sentinels for errors.Is.
var (
	ErrPoolTimeout = &Error{Status: StatusPoolTimeout}
	ErrPoolClosed  = &Error{Status: StatusPoolClosed}
	ErrConstraint  = &Error{Status: StatusConstraintViolation}
	ErrDatabase    = &Error{Status: StatusDatabaseError}
	ErrParameter   = &Error{Status: StatusParameterError}
	ErrCancelled   = &Error{Status: StatusCancelled}
	ErrMisuse      = &Error{Status: StatusMisuse}
)

func errorFromJSON(st C.sqlpool_status, text string) *Error {
	var j struct {
		Message    string `json:"message"`
		SQLState   string `json:"sqlstate"`
		Detail     string `json:"detail"`
		Hint       string `json:"hint"`
		NativeCode int64  `json:"native_code"`
	}
	_ = json.Unmarshal([]byte(text), &j) // a bad JSON keeps the status alone
	return &Error{Status: Status(st), Message: j.Message, SQLState: j.SQLState,
		Detail: j.Detail, Hint: j.Hint, NativeCode: j.NativeCode}
}

// call runs a blocking sqlpool function and reads its error on the same OS
// thread: the library's last error is per thread.
func call(f func() C.sqlpool_status) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if st := f(); st != C.SQLPOOL_OK {
		return errorFromJSON(st, C.GoString(C.sqlpool_last_error_json()))
	}
	return nil
}

// ------------------------------------------------------------ completions

type completion struct {
	status C.sqlpool_status
	handle unsafe.Pointer
	rows   uint64
	err    *Error
}

//export goComplete
func goComplete(token C.uintptr_t, c *C.sqlpool_completion, errJSON *C.char) {
	comp := completion{status: c.status, handle: c.handle, rows: uint64(c.rows_affected)}
	if errJSON != nil {
		comp.err = errorFromJSON(c.status, C.GoString(errJSON))
	}
	cgo.Handle(token).Value().(chan completion) <- comp // buffered: never blocks
}

// await starts one asynchronous operation and waits for its completion; when
// ctx ends first the operation is cancelled, and its completion (which may
// still carry a handle to free) is awaited all the same.
func await(ctx context.Context, start func(token C.uintptr_t, opID *C.uint64_t) C.sqlpool_status) (completion, error) {
	ch := make(chan completion, 1)
	h := cgo.NewHandle(ch)
	defer h.Delete()
	var opID C.uint64_t
	if err := call(func() C.sqlpool_status { return start(C.uintptr_t(h), &opID) }); err != nil {
		return completion{}, err
	}
	var comp completion
	select {
	case comp = <-ch:
	case <-ctx.Done():
		C.sqlpool_cancel(opID)
		comp = <-ch
	}
	if comp.status == C.SQLPOOL_OK {
		return comp, nil
	}
	if ctx.Err() != nil && (Status(comp.status) == StatusCancelled || Status(comp.status) == StatusPoolTimeout) {
		comp.err.ctxErr = ctx.Err()
	}
	return comp, comp.err
}

// ------------------------------------------------------------ parameters

// newParams binds args: sql.Named("name", v) values for :name placeholders,
// plain values for $1..$n (or ?). The caller frees the list.
func newParams(args []any) (*C.sqlpool_params, error) {
	if len(args) == 0 {
		return nil, nil
	}
	var p *C.sqlpool_params
	if err := call(func() C.sqlpool_status { return C.sqlpool_params_new(&p) }); err != nil {
		return nil, err
	}
	for i, a := range args {
		if err := addParam(p, i, a); err != nil {
			C.sqlpool_params_free(p)
			return nil, err
		}
	}
	return p, nil
}

func addParam(p *C.sqlpool_params, i int, a any) error {
	var cname *C.char
	if n, ok := a.(sql.NamedArg); ok {
		cname = C.CString(n.Name)
		defer C.free(unsafe.Pointer(cname))
		a = n.Value
	}
	if v, ok := a.(driver.Valuer); ok {
		var err error
		if a, err = v.Value(); err != nil {
			return err
		}
	}
	withErr := func(f func() C.sqlpool_status) error { return call(f) }
	switch v := a.(type) {
	case nil:
		return withErr(func() C.sqlpool_status { return C.sqlpool_params_add_null(p, cname) })
	case bool:
		b := C.int32_t(0)
		if v {
			b = 1
		}
		return withErr(func() C.sqlpool_status { return C.sqlpool_params_add_bool(p, cname, b) })
	case int, int8, int16, int32, int64, uint8, uint16, uint32:
		n := toInt64(v)
		return withErr(func() C.sqlpool_status { return C.sqlpool_params_add_int64(p, cname, C.int64_t(n)) })
	case uint, uint64:
		u := toUint64(v)
		if u > math.MaxInt64 {
			return fmt.Errorf("sqlpool: argument %d: %d does not fit in int64", i+1, u)
		}
		return withErr(func() C.sqlpool_status { return C.sqlpool_params_add_int64(p, cname, C.int64_t(u)) })
	case float32, float64:
		f := toFloat64(v)
		return withErr(func() C.sqlpool_status { return C.sqlpool_params_add_double(p, cname, C.double(f)) })
	case string:
		cs := C.CString(v)
		defer C.free(unsafe.Pointer(cs))
		return withErr(func() C.sqlpool_status { return C.sqlpool_params_add_text(p, cname, cs, C.uintptr_t(len(v))) })
	case []byte:
		cb := C.CBytes(v)
		defer C.free(cb)
		return withErr(func() C.sqlpool_status {
			return C.sqlpool_params_add_blob(p, cname, (*C.uint8_t)(cb), C.uintptr_t(len(v)))
		})
	case time.Time:
		return addParam(p, i, sql.Named(C.GoString(cname), v.Format(time.RFC3339Nano)))
	default:
		return fmt.Errorf("sqlpool: argument %d: cannot bind %T", i+1, a)
	}
}

func toInt64(v any) int64 {
	switch n := v.(type) {
	case int:
		return int64(n)
	case int8:
		return int64(n)
	case int16:
		return int64(n)
	case int32:
		return int64(n)
	case uint8:
		return int64(n)
	case uint16:
		return int64(n)
	case uint32:
		return int64(n)
	}
	return v.(int64)
}

func toUint64(v any) uint64 {
	if n, ok := v.(uint); ok {
		return uint64(n)
	}
	return v.(uint64)
}

func toFloat64(v any) float64 {
	if f, ok := v.(float32); ok {
		return float64(f)
	}
	return v.(float64)
}

// ------------------------------------------------------------ results

// readResult copies a result into Go values and frees it, on every path.
func readResult(res *C.sqlpool_result) (cols []string, data [][]any, err error) {
	defer C.sqlpool_result_free(res)
	var info C.sqlpool_result_info
	if err = call(func() C.sqlpool_status { return C.sqlpool_result_describe(res, &info) }); err != nil {
		return nil, nil, err
	}
	nrows, ncols := int(info.rows), int(info.columns)
	if ncols > 0 {
		names := C.GoBytes(unsafe.Pointer(info.names), C.int(info.names_len))
		for start, field := 0, 0; start < len(names); field++ {
			end := start
			for names[end] != 0 {
				end++
			}
			if field%2 == 0 { // name, then declared type
				cols = append(cols, string(names[start:end]))
			}
			start = end + 1
		}
	}
	data = make([][]any, nrows)
	for r := range data {
		data[r] = make([]any, ncols)
	}
	for c := 0; c < ncols; c++ {
		if err = readColumn(res, c, data); err != nil {
			return nil, nil, err
		}
	}
	return cols, data, nil
}

func readColumn(res *C.sqlpool_result, c int, data [][]any) error {
	var d C.sqlpool_column_data
	if err := call(func() C.sqlpool_status { return C.sqlpool_result_column_data(res, C.uintptr_t(c), &d) }); err != nil {
		return err
	}
	n := len(data)
	if n == 0 || d.kind == C.SQLPOOL_KIND_NULL {
		return nil
	}
	if d.kind == C.SQLPOOL_KIND_MIXED {
		return readMixed(res, c, data)
	}
	nulls := unsafe.Slice((*byte)(unsafe.Pointer(d.nulls)), n)
	for r := 0; r < n; r++ {
		if nulls[r] != 0 {
			continue
		}
		switch d.kind {
		case C.SQLPOOL_KIND_INT64:
			data[r][c] = int64(unsafe.Slice((*C.int64_t)(unsafe.Pointer(d.ints)), n)[r])
		case C.SQLPOOL_KIND_BOOL:
			data[r][c] = unsafe.Slice((*C.int64_t)(unsafe.Pointer(d.ints)), n)[r] != 0
		case C.SQLPOOL_KIND_DOUBLE:
			data[r][c] = float64(unsafe.Slice((*C.double)(unsafe.Pointer(d.doubles)), n)[r])
		default: // TEXT, BLOB
			off := unsafe.Slice((*C.uint64_t)(unsafe.Pointer(d.offsets)), n+1)
			b := C.GoBytes(unsafe.Add(unsafe.Pointer(d.bytes), uintptr(off[r])), C.int(off[r+1]-off[r]))
			if d.kind == C.SQLPOOL_KIND_TEXT {
				data[r][c] = string(b)
			} else {
				data[r][c] = b
			}
		}
	}
	return nil
}

// readMixed reads a column whose cells differ in kind (SQLite), cell by cell.
func readMixed(res *C.sqlpool_result, c int, data [][]any) error {
	for r := range data {
		row, col := C.uintptr_t(r), C.uintptr_t(c)
		var kind C.uint32_t
		var i C.int64_t
		var f C.double
		var ptr *C.uint8_t
		var n C.uintptr_t
		err := call(func() C.sqlpool_status {
			st := C.sqlpool_result_kind(res, row, col, &kind)
			if st != C.SQLPOOL_OK {
				return st
			}
			switch kind {
			case C.SQLPOOL_KIND_INT64, C.SQLPOOL_KIND_BOOL:
				return C.sqlpool_result_get_int64(res, row, col, &i)
			case C.SQLPOOL_KIND_DOUBLE:
				return C.sqlpool_result_get_double(res, row, col, &f)
			case C.SQLPOOL_KIND_TEXT, C.SQLPOOL_KIND_BLOB:
				return C.sqlpool_result_get_blob(res, row, col, &ptr, &n)
			}
			return C.SQLPOOL_OK
		})
		if err != nil {
			return err
		}
		switch kind {
		case C.SQLPOOL_KIND_INT64:
			data[r][c] = int64(i)
		case C.SQLPOOL_KIND_BOOL:
			data[r][c] = i != 0
		case C.SQLPOOL_KIND_DOUBLE:
			data[r][c] = float64(f)
		case C.SQLPOOL_KIND_TEXT:
			data[r][c] = string(C.GoBytes(unsafe.Pointer(ptr), C.int(n)))
		case C.SQLPOOL_KIND_BLOB:
			data[r][c] = C.GoBytes(unsafe.Pointer(ptr), C.int(n))
		}
	}
	return nil
}

// ------------------------------------------------------------ pool

// Options are pool options by name, as in a URI query ("max_size": "5",
// "acquire_timeout": "2s"); see the README's option table.
type Options map[string]string

// Pool is a pool of connections; safe for concurrent use.
type Pool struct {
	mu sync.RWMutex // guards h
	h  *C.sqlpool_pool
}

// Open opens a pool and connects once, so a bad URI or an unreachable
// server fails here (unless options set "lazy").
func Open(uri string, options Options) (*Pool, error) {
	var o *C.sqlpool_options
	if err := call(func() C.sqlpool_status { return C.sqlpool_options_new(&o) }); err != nil {
		return nil, err
	}
	defer C.sqlpool_options_free(o)
	for k, v := range options {
		ck, cv := C.CString(k), C.CString(v)
		err := call(func() C.sqlpool_status { return C.sqlpool_options_set(o, ck, cv) })
		C.free(unsafe.Pointer(ck))
		C.free(unsafe.Pointer(cv))
		if err != nil {
			return nil, err
		}
	}
	curi := C.CString(uri)
	defer C.free(unsafe.Pointer(curi))
	p := &Pool{}
	if err := call(func() C.sqlpool_status { return C.sqlpool_pool_open(curi, o, &p.h) }); err != nil {
		return nil, err
	}
	return p, nil
}

// Close closes the pool: waiting callers fail with ErrPoolClosed; borrowed
// connections keep working until closed. Idempotent.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.h == nil {
		return nil
	}
	err := call(func() C.sqlpool_status { return C.sqlpool_pool_close(p.h) })
	p.h = nil
	return err
}

// Conn borrows a connection; the caller must Close it. The wait is bounded
// by ctx (its deadline is the acquire timeout) and by the pool's
// acquire_timeout.
func (p *Pool) Conn(ctx context.Context) (*Conn, error) {
	timeout := C.int64_t(-1)
	if dl, ok := ctx.Deadline(); ok {
		ms := time.Until(dl).Milliseconds()
		if ms <= 0 {
			return nil, context.DeadlineExceeded
		}
		timeout = C.int64_t(ms)
	}
	// The lock only guards reading the handle: a handle closed meanwhile is
	// reported by the library (handles are generational), and Close must
	// not wait for acquires, it wakes them.
	p.mu.RLock()
	h := p.h
	p.mu.RUnlock()
	if h == nil {
		return nil, &Error{Status: StatusPoolClosed, Message: "pool is closed"}
	}
	comp, err := await(ctx, func(token C.uintptr_t, op *C.uint64_t) C.sqlpool_status {
		return C.sp_acquire_async(h, timeout, token, op)
	})
	if err != nil {
		return nil, err
	}
	return &Conn{h: (*C.sqlpool_conn)(comp.handle)}, nil
}

// QueryContext runs a query on a borrowed connection and returns its rows.
func (p *Pool) QueryContext(ctx context.Context, query string, args ...any) (*Rows, error) {
	c, err := p.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.QueryContext(ctx, query, args...)
}

// ExecContext runs a statement on a borrowed connection.
func (p *Pool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	c, err := p.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ExecContext(ctx, query, args...)
}

// QueryRowContext runs a query expected to return at most one row.
func (p *Pool) QueryRowContext(ctx context.Context, query string, args ...any) *Row {
	rows, err := p.QueryContext(ctx, query, args...)
	return &Row{rows: rows, err: err}
}

// Query, Exec and QueryRow are the context-free forms.
func (p *Pool) Query(query string, args ...any) (*Rows, error) {
	return p.QueryContext(context.Background(), query, args...)
}

func (p *Pool) Exec(query string, args ...any) (sql.Result, error) {
	return p.ExecContext(context.Background(), query, args...)
}

func (p *Pool) QueryRow(query string, args ...any) *Row {
	return p.QueryRowContext(context.Background(), query, args...)
}

// BeginTx borrows a connection and begins a transaction on it; Commit or
// Rollback gives the connection back.
func (p *Pool) BeginTx(ctx context.Context, opts *sql.TxOptions) (*Tx, error) {
	c, err := p.Conn(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := c.BeginTx(ctx, opts)
	if err != nil {
		c.Close()
		return nil, err
	}
	tx.release = true
	return tx, nil
}

// Stats is a snapshot of the pool's counters.
type Stats struct {
	Total, Idle, InUse, Waiting, MaxSize int
	Acquires, AcquireTimeouts            uint64
}

func (p *Pool) Stats() (Stats, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	var s C.sqlpool_stats
	err := call(func() C.sqlpool_status { return C.sqlpool_pool_stats(p.h, &s, C.uintptr_t(unsafe.Sizeof(s))) })
	return Stats{Total: int(s.total), Idle: int(s.idle), InUse: int(s.in_use), Waiting: int(s.waiting),
		MaxSize: int(s.max_size), Acquires: uint64(s.acquires), AcquireTimeouts: uint64(s.acquire_timeouts)}, err
}

// ------------------------------------------------------------ connection

// Conn is a borrowed connection: one call at a time; Close gives it back.
type Conn struct {
	mu sync.Mutex
	h  *C.sqlpool_conn
}

var errReleased = &Error{Status: StatusMisuse, Message: "connection already closed"}

// run holds the connection for one operation.
func (c *Conn) run(f func(h *C.sqlpool_conn) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.h == nil {
		return errReleased
	}
	return f(c.h)
}

func (c *Conn) QueryContext(ctx context.Context, query string, args ...any) (*Rows, error) {
	var rows *Rows
	err := c.run(func(h *C.sqlpool_conn) error {
		comp, err := statement(ctx, query, args, func(q *C.char, p *C.sqlpool_params, token C.uintptr_t, op *C.uint64_t) C.sqlpool_status {
			return C.sp_query_async(h, q, p, token, op)
		})
		if err != nil {
			return err
		}
		cols, data, err := readResult((*C.sqlpool_result)(comp.handle))
		rows = &Rows{cols: cols, data: data, pos: -1}
		return err
	})
	if err != nil {
		return nil, err
	}
	return rows, nil
}

func (c *Conn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	var n uint64
	err := c.run(func(h *C.sqlpool_conn) error {
		comp, err := statement(ctx, query, args, func(q *C.char, p *C.sqlpool_params, token C.uintptr_t, op *C.uint64_t) C.sqlpool_status {
			return C.sp_execute_async(h, q, p, token, op)
		})
		n = comp.rows
		return err
	})
	if err != nil {
		return nil, err
	}
	return result(n), nil
}

func (c *Conn) QueryRowContext(ctx context.Context, query string, args ...any) *Row {
	rows, err := c.QueryContext(ctx, query, args...)
	return &Row{rows: rows, err: err}
}

// statement binds args and runs one asynchronous statement; the library
// copies SQL and parameters at the start, so both are freed right after.
func statement(ctx context.Context, query string, args []any,
	start func(*C.char, *C.sqlpool_params, C.uintptr_t, *C.uint64_t) C.sqlpool_status) (completion, error) {
	if err := ctx.Err(); err != nil {
		return completion{}, err
	}
	p, err := newParams(args)
	if err != nil {
		return completion{}, err
	}
	q := C.CString(query)
	freed := false
	free := func() {
		if !freed {
			C.free(unsafe.Pointer(q))
			C.sqlpool_params_free(p)
			freed = true
		}
	}
	defer free()
	return await(ctx, func(token C.uintptr_t, op *C.uint64_t) C.sqlpool_status {
		st := start(q, p, token, op)
		free()
		return st
	})
}

// BeginTx begins a transaction on this connection.
func (c *Conn) BeginTx(ctx context.Context, opts *sql.TxOptions) (*Tx, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var iso, flags C.uint32_t
	if opts != nil {
		switch opts.Isolation {
		case sql.LevelDefault:
		case sql.LevelReadUncommitted:
			iso = C.SQLPOOL_ISOLATION_READ_UNCOMMITTED
		case sql.LevelReadCommitted:
			iso = C.SQLPOOL_ISOLATION_READ_COMMITTED
		case sql.LevelRepeatableRead:
			iso = C.SQLPOOL_ISOLATION_REPEATABLE_READ
		case sql.LevelSerializable:
			iso = C.SQLPOOL_ISOLATION_SERIALIZABLE
		default:
			return nil, fmt.Errorf("sqlpool: isolation level %v is not supported", opts.Isolation)
		}
		if opts.ReadOnly {
			flags = C.SQLPOOL_TX_READ_ONLY
		}
	}
	err := c.run(func(h *C.sqlpool_conn) error {
		return call(func() C.sqlpool_status { return C.sqlpool_conn_begin(h, iso, flags) })
	})
	if err != nil {
		return nil, err
	}
	return &Tx{conn: c}, nil
}

// Close gives the connection back to its pool (an open transaction is
// rolled back). Idempotent.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.h == nil {
		return nil
	}
	err := call(func() C.sqlpool_status { return C.sqlpool_conn_release(c.h) })
	if err == nil {
		c.h = nil
	}
	return err
}

// ------------------------------------------------------------ transactions

// Tx is a transaction on one connection.
type Tx struct {
	conn    *Conn
	done    bool
	release bool // from Pool.BeginTx: the connection goes back at the end
}

var ErrTxDone = sql.ErrTxDone

func (tx *Tx) end(f func(*C.sqlpool_conn) C.sqlpool_status) error {
	if tx.done {
		return ErrTxDone
	}
	tx.done = true
	err := tx.conn.run(func(h *C.sqlpool_conn) error { return call(func() C.sqlpool_status { return f(h) }) })
	if tx.release {
		if cerr := tx.conn.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

func (tx *Tx) Commit() error {
	return tx.end(func(h *C.sqlpool_conn) C.sqlpool_status { return C.sqlpool_conn_commit(h) })
}

func (tx *Tx) Rollback() error {
	return tx.end(func(h *C.sqlpool_conn) C.sqlpool_status { return C.sqlpool_conn_rollback(h) })
}

func (tx *Tx) QueryContext(ctx context.Context, query string, args ...any) (*Rows, error) {
	if tx.done {
		return nil, ErrTxDone
	}
	return tx.conn.QueryContext(ctx, query, args...)
}

func (tx *Tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if tx.done {
		return nil, ErrTxDone
	}
	return tx.conn.ExecContext(ctx, query, args...)
}

func (tx *Tx) QueryRowContext(ctx context.Context, query string, args ...any) *Row {
	rows, err := tx.QueryContext(ctx, query, args...)
	return &Row{rows: rows, err: err}
}

// ------------------------------------------------------------ rows

type result uint64

func (r result) RowsAffected() (int64, error) { return int64(r), nil }
func (r result) LastInsertId() (int64, error) {
	return 0, errors.New("sqlpool: LastInsertId is not supported; use RETURNING")
}

// Rows holds a query's rows, already read: Close is cheap but idiomatic.
type Rows struct {
	cols []string
	data [][]any
	pos  int
}

func (r *Rows) Columns() ([]string, error) { return r.cols, nil }
func (r *Rows) Next() bool {
	if r.pos+1 >= len(r.data) {
		r.pos = len(r.data)
		return false
	}
	r.pos++
	return true
}
func (r *Rows) Err() error   { return nil }
func (r *Rows) Close() error { r.data = nil; return nil }

// Values is the current row as Go values (int64, float64, bool, string,
// []byte or nil).
func (r *Rows) Values() []any { return r.data[r.pos] }

// Map is the current row by column name.
func (r *Rows) Map() map[string]any {
	m := make(map[string]any, len(r.cols))
	for i, c := range r.cols {
		m[c] = r.data[r.pos][i]
	}
	return m
}

// Scan copies the current row into dest: pointers to int64, int, float64,
// bool, string, []byte, any, or an sql.Scanner (sql.NullString, ...).
func (r *Rows) Scan(dest ...any) error {
	if r.pos < 0 || r.pos >= len(r.data) {
		return errors.New("sqlpool: Scan called without a successful Next")
	}
	row := r.data[r.pos]
	if len(dest) != len(row) {
		return fmt.Errorf("sqlpool: Scan expects %d destinations, got %d", len(row), len(dest))
	}
	for i, d := range dest {
		if err := assign(d, row[i]); err != nil {
			return fmt.Errorf("sqlpool: column %q: %w", r.cols[i], err)
		}
	}
	return nil
}

func assign(dest, v any) error {
	if s, ok := dest.(sql.Scanner); ok {
		return s.Scan(v)
	}
	ok := false
	switch d := dest.(type) {
	case *any:
		*d, ok = v, true
	case *int64:
		var n int64
		n, ok = v.(int64)
		*d = n
	case *int:
		var n int64
		n, ok = v.(int64)
		*d = int(n)
	case *float64:
		switch x := v.(type) {
		case float64:
			*d, ok = x, true
		case int64:
			*d, ok = float64(x), true
		}
	case *bool:
		switch x := v.(type) {
		case bool:
			*d, ok = x, true
		case int64:
			*d, ok = x != 0, x == 0 || x == 1
		}
	case *string:
		switch x := v.(type) {
		case string:
			*d, ok = x, true
		case []byte:
			*d, ok = string(x), true
		}
	case *[]byte:
		switch x := v.(type) {
		case []byte:
			*d, ok = x, true
		case string:
			*d, ok = []byte(x), true
		case nil:
			*d, ok = nil, true
		}
	}
	if !ok {
		return fmt.Errorf("cannot scan %T into %T", v, dest)
	}
	return nil
}

// Row is the result of QueryRow; Scan reports sql.ErrNoRows when empty.
type Row struct {
	rows *Rows
	err  error
}

func (r *Row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	if !r.rows.Next() {
		return sql.ErrNoRows
	}
	return r.rows.Scan(dest...)
}
