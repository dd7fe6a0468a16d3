-- sqlpool for LuaJIT: the C ABI of include/sqlpool.h through ffi.cdef
-- (declarations from sqlpool/cdef.lua, generated from the header).
--
--   local sqlpool = require("sqlpool")
--   local pool = sqlpool.open("sqlite:app.db", { max_size = 5 })
--   local rows = pool:query("SELECT :n + 1 AS m", { n = 41 })   -- { { m = 42 } }
--
-- Calls block the calling thread. For many statements at once, a loop
-- (sqlpool.loop()) runs coroutines over the library's completion queue.
local ffi = require("ffi")
local bit = require("bit")

ffi.cdef(require("sqlpool.cdef"))
ffi.cdef([[
struct sqlpool_pollfd { int fd; short events; short revents; };
int poll(struct sqlpool_pollfd *fds, unsigned long nfds, int timeout);
]])

-- One place decides which library is loaded: SQLPOOL_LIBRARY, then the
-- repository's build output next to this file, then the system's.
local function load_library()
  local here = debug.getinfo(1, "S").source:match("^@(.*)/sqlpool/init%.lua$") or "."
  local candidates = { here .. "/../../target/release/libsqlpool.so", "sqlpool" }
  local env = os.getenv("SQLPOOL_LIBRARY")
  if env and env ~= "" then table.insert(candidates, 1, env) end
  local tried = {}
  for _, name in ipairs(candidates) do
    local ok, lib = pcall(ffi.load, name)
    if ok then return lib end
    tried[#tried + 1] = name .. " (" .. tostring(lib) .. ")"
  end
  error("sqlpool: cannot load the library; tried: " .. table.concat(tried, ", "), 0)
end

local C = load_library()
local OK, EMPTY = 0, 22

local M = {}

-- ------------------------------------------------------------ errors

local Error = {}
Error.__index = Error
Error.__tostring = function(e)
  local s = e.code .. ": " .. e.message
  if e.sqlstate then s = s .. " (SQLSTATE " .. e.sqlstate .. ")" end
  return s
end

-- A small reader for sqlpool_last_error_json: one flat object whose values
-- are strings or integers.
local ESCAPES = { n = "\n", t = "\t", r = "\r", b = "\b", f = "\f" }
local function parse_error_json(text)
  local fields, i = {}, 1
  while true do
    local _, stop, key = text:find('"([%w_]+)"%s*:%s*', i)
    if not stop then return fields end
    i = stop + 1
    if text:sub(i, i) == '"' then
      local buf = {}
      i = i + 1
      while i <= #text do
        local ch = text:sub(i, i)
        if ch == '"' then break end
        if ch == "\\" then
          local e = text:sub(i + 1, i + 1)
          if e == "u" then -- non-ASCII arrives as UTF-8; \u only for controls
            local cp = tonumber(text:sub(i + 2, i + 5), 16) or 63
            buf[#buf + 1] = cp < 128 and string.char(cp) or "?"
            i = i + 6
          else
            buf[#buf + 1] = ESCAPES[e] or e
            i = i + 2
          end
        else
          buf[#buf + 1] = ch
          i = i + 1
        end
      end
      fields[key] = table.concat(buf)
      i = i + 1
    else
      fields[key] = tonumber(text:match("^%-?%d+", i))
    end
  end
end

-- The calling thread's last error as an error object.
local function last_error(status)
  local info = parse_error_json(ffi.string(C.sqlpool_last_error_json()))
  return setmetatable({
    status = tonumber(status),
    code = ffi.string(C.sqlpool_status_name(status)),
    message = info.message or "",
    sqlstate = (info.sqlstate ~= "" and info.sqlstate) or nil,
    detail = info.detail,
    hint = info.hint,
  }, Error)
end

local function check(status)
  if status ~= OK then error(last_error(status), 3) end
end

local function misuse(message)
  error(setmetatable({ status = 5, code = "SQLPOOL_MISUSE", message = message }, Error), 3)
end

function M.is_error(e) return getmetatable(e) == Error end

M.status = {
  MISUSE = 5, POOL_TIMEOUT = 9, POOL_CLOSED = 10, CONNECTION_ERROR = 12, DATABASE_ERROR = 14,
  CONSTRAINT_VIOLATION = 15, PARAMETER_ERROR = 16, CANCELLED = 18, TRANSACTION_STATE = 20,
}

-- ------------------------------------------------------------ parameters

-- A Lua table cannot hold nil: sqlpool.null binds SQL NULL.
M.null = setmetatable({}, { __tostring = function() return "sqlpool.null" end })
local Blob = {}
-- Lua strings bind as text; sqlpool.blob(s) binds bytes.
function M.blob(s) return setmetatable({ bytes = s }, Blob) end

local int64_t = ffi.typeof("int64_t")
local uint64_t = ffi.typeof("uint64_t")

local function add_param(p, name, v)
  local t = type(v)
  if v == M.null then return C.sqlpool_params_add_null(p, name)
  elseif t == "boolean" then return C.sqlpool_params_add_bool(p, name, v and 1 or 0)
  elseif t == "number" then
    -- integral numbers bind as int64 (exact up to 2^53), others as double
    if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return C.sqlpool_params_add_int64(p, name, v) end
    return C.sqlpool_params_add_double(p, name, v)
  elseif t == "string" then return C.sqlpool_params_add_text(p, name, v, #v)
  elseif t == "cdata" and (ffi.istype(int64_t, v) or ffi.istype(uint64_t, v)) then
    return C.sqlpool_params_add_int64(p, name, v)
  elseif getmetatable(v) == Blob then return C.sqlpool_params_add_blob(p, name, v.bytes, #v.bytes)
  end
  error("sqlpool: cannot bind a " .. t .. " (parameter " .. (name or "positional") .. ")", 4)
end

-- Builds a parameter list ({name = v} for :name, {v1, v2} for $1..$n),
-- calls fn(params) and frees the list on every path.
local function with_params(params, fn)
  if params == nil then return fn(nil) end
  local out = ffi.new("sqlpool_params *[1]")
  check(C.sqlpool_params_new(out))
  local p = out[0]
  local ok, a, b = pcall(function()
    if #params > 0 then
      for i = 1, #params do check(add_param(p, nil, params[i])) end
    else
      for k, v in pairs(params) do check(add_param(p, tostring(k), v)) end
    end
    return fn(p)
  end)
  C.sqlpool_params_free(p)
  if not ok then error(a, 0) end
  return a, b
end

-- ------------------------------------------------------------ results

local TWO53 = 2 ^ 53

local function int_value(v)
  -- exact Lua numbers where they fit, int64_t cdata beyond 2^53
  local n = tonumber(v)
  if n > -TWO53 and n < TWO53 then return n end
  return int64_t(v)
end

local function read_cell(res, r, c)
  local kind = ffi.new("uint32_t[1]")
  check(C.sqlpool_result_kind(res, r, c, kind))
  local k = kind[0]
  if k == C.SQLPOOL_KIND_NULL then return nil end
  if k == C.SQLPOOL_KIND_INT64 or k == C.SQLPOOL_KIND_BOOL then
    local v = ffi.new("int64_t[1]")
    check(C.sqlpool_result_get_int64(res, r, c, v))
    if k == C.SQLPOOL_KIND_BOOL then return v[0] ~= 0 end
    return int_value(v[0])
  elseif k == C.SQLPOOL_KIND_DOUBLE then
    local v = ffi.new("double[1]")
    check(C.sqlpool_result_get_double(res, r, c, v))
    return v[0]
  end
  local ptr, len = ffi.new("const uint8_t *[1]"), ffi.new("uintptr_t[1]")
  check(C.sqlpool_result_get_blob(res, r, c, ptr, len))
  return ffi.string(ptr[0], len[0])
end

-- Rows as tables (column name -> value; NULL is an absent key). Frees the
-- result on every path.
local function read_result(res)
  local ok, rows = pcall(function()
    local info = ffi.new("sqlpool_result_info")
    check(C.sqlpool_result_describe(res, info))
    local nrows, ncols = tonumber(info.rows), tonumber(info.columns)
    local names, pos = {}, 0
    for c = 1, ncols do -- "name\0decltype\0" per column
      local name = ffi.string(info.names + pos)
      names[c] = name
      pos = pos + #name + 1
      pos = pos + #ffi.string(info.names + pos) + 1
    end
    local rows = {}
    for r = 1, nrows do rows[r] = {} end
    local d = ffi.new("sqlpool_column_data")
    for c = 1, ncols do
      check(C.sqlpool_result_column_data(res, c - 1, d))
      local kind, name = d.kind, names[c]
      for r = 0, nrows - 1 do
        local v
        if kind == C.SQLPOOL_KIND_MIXED then v = read_cell(res, r, c - 1)
        elseif kind == C.SQLPOOL_KIND_NULL or d.nulls[r] ~= 0 then v = nil
        elseif kind == C.SQLPOOL_KIND_INT64 then v = int_value(d.ints[r])
        elseif kind == C.SQLPOOL_KIND_BOOL then v = d.ints[r] ~= 0
        elseif kind == C.SQLPOOL_KIND_DOUBLE then v = d.doubles[r]
        else v = ffi.string(d.bytes + d.offsets[r], d.offsets[r + 1] - d.offsets[r])
        end
        rows[r + 1][name] = v
      end
    end
    return rows
  end)
  C.sqlpool_result_free(res)
  if not ok then error(rows, 0) end
  return rows
end

-- ------------------------------------------------------------ connections

local Conn = {}
Conn.__index = Conn

local function new_conn(handle)
  -- Released by the GC if the program forgets (and never twice: release
  -- removes the finalizer first).
  return setmetatable({ h = ffi.gc(handle, C.sqlpool_conn_release) }, Conn)
end

local function live(conn)
  if conn.h == nil then misuse("connection already released") end
  return conn.h
end

function Conn:query(sql, params)
  local h = live(self)
  local out = ffi.new("sqlpool_result *[1]")
  with_params(params, function(p) check(C.sqlpool_conn_query(h, sql, p, out)) end)
  return read_result(out[0])
end

function Conn:execute(sql, params)
  local h = live(self)
  local n = ffi.new("uint64_t[1]")
  with_params(params, function(p) check(C.sqlpool_conn_execute(h, sql, p, n)) end)
  return tonumber(n[0])
end

function Conn:begin(read_only) check(C.sqlpool_conn_begin(live(self), 0, read_only and 1 or 0)) end
function Conn:commit() check(C.sqlpool_conn_commit(live(self))) end
function Conn:rollback() check(C.sqlpool_conn_rollback(live(self))) end

-- fn(conn) in a transaction: committed when it returns, rolled back when
-- it raises (and the error re-raised).
function Conn:transaction(fn)
  self:begin()
  local ok, a, b = pcall(fn, self)
  if not ok then
    pcall(self.rollback, self)
    error(a, 0)
  end
  self:commit()
  return a, b
end

-- Gives the connection back (an open transaction is rolled back). Idempotent.
function Conn:release()
  if self.h == nil then return end
  local h = ffi.gc(self.h, nil)
  local st = C.sqlpool_conn_release(h)
  if st ~= OK then
    ffi.gc(h, C.sqlpool_conn_release)
    check(st)
  end
  self.h = nil
end

-- ------------------------------------------------------------ pools

local Pool = {}
Pool.__index = Pool

-- Opens a pool; options are sqlpool's pool options ({ max_size = 5,
-- acquire_timeout = "2s" }).
function M.open(uri, options)
  local o = ffi.new("sqlpool_options *[1]")
  check(C.sqlpool_options_new(o))
  local opts = o[0]
  local out = ffi.new("sqlpool_pool *[1]")
  local ok, err = pcall(function()
    for k, v in pairs(options or {}) do check(C.sqlpool_options_set(opts, tostring(k), tostring(v))) end
    check(C.sqlpool_pool_open(uri, opts, out))
  end)
  C.sqlpool_options_free(opts)
  if not ok then error(err, 2) end
  return setmetatable({ h = ffi.gc(out[0], C.sqlpool_pool_close) }, Pool)
end

local function live_pool(pool)
  if pool.h == nil then
    error(setmetatable({ status = 10, code = "SQLPOOL_POOL_CLOSED", message = "pool is closed" }, Error), 3)
  end
  return pool.h
end

-- Borrows a connection; timeout in seconds (default: the pool's
-- acquire_timeout). The caller releases it (prefer with_connection).
function Pool:acquire(timeout)
  local out = ffi.new("sqlpool_conn *[1]")
  check(C.sqlpool_pool_acquire(live_pool(self), timeout and math.floor(timeout * 1000) or -1, out))
  return new_conn(out[0])
end

-- fn(conn) with a borrowed connection, released however fn ends.
function Pool:with_connection(fn)
  local conn = self:acquire()
  local ok, a, b = pcall(fn, conn)
  conn:release()
  if not ok then error(a, 0) end
  return a, b
end

function Pool:query(sql, params) return self:with_connection(function(c) return c:query(sql, params) end) end
function Pool:execute(sql, params) return self:with_connection(function(c) return c:execute(sql, params) end) end
function Pool:transaction(fn) return self:with_connection(function(c) return c:transaction(fn) end) end

function Pool:stats()
  local s = ffi.new("sqlpool_stats")
  check(C.sqlpool_pool_stats(live_pool(self), s, ffi.sizeof(s)))
  return {
    total = s.total, idle = s.idle, in_use = s.in_use, waiting = s.waiting,
    max_size = s.max_size, acquires = tonumber(s.acquires),
  }
end

-- Closes the pool; borrowed connections keep working until released. Idempotent.
function Pool:close()
  if self.h == nil then return end
  local h = ffi.gc(self.h, nil)
  self.h = nil
  check(C.sqlpool_pool_close(h))
end

-- ------------------------------------------------------------ loop

-- Coroutines over the completion queue: each spawned function runs until
-- it waits for a connection or a statement; the loop waits on the queue's
-- descriptor with poll(2) and resumes whoever's operation finished.
local Loop = {}
Loop.__index = Loop

function M.loop()
  local q = ffi.new("sqlpool_queue *[1]")
  check(C.sqlpool_queue_new(q))
  local fd = ffi.new("int[1]")
  local st = C.sqlpool_queue_fd(q[0], fd)
  if st ~= OK then
    local err = last_error(st)
    C.sqlpool_queue_free(q[0])
    error(err, 2)
  end
  return setmetatable({ queue = q[0], fd = fd[0], waiting = {}, ready = {}, errors = {} }, Loop)
end

function Loop:spawn(fn, ...)
  self.ready[#self.ready + 1] = { co = coroutine.create(fn), args = { n = select("#", ...), ... } }
end

-- Starts an operation and yields until its completion arrives.
function Loop:_await(start)
  if not coroutine.running() then error("sqlpool: loop operations run inside loop:spawn", 3) end
  local id = ffi.new("uint64_t[1]")
  check(start(self.queue, id))
  self.waiting[tostring(id[0])] = coroutine.running()
  local handle, rows, err = coroutine.yield()
  if err then error(err, 0) end
  return handle, rows
end

function Loop:_resume(co, ...)
  local ok, err = coroutine.resume(co, ...)
  if not ok then self.errors[#self.errors + 1] = err end
end

-- Runs until every spawned coroutine has finished; raises the first error
-- any of them raised.
function Loop:run()
  local pfd = ffi.new("struct sqlpool_pollfd", { fd = self.fd, events = 1 })
  local completion = ffi.new("sqlpool_completion")
  while true do
    local ready = self.ready
    self.ready = {}
    for _, t in ipairs(ready) do self:_resume(t.co, unpack(t.args, 1, t.args.n)) end
    if next(self.waiting) == nil and #self.ready == 0 then break end
    if #self.ready == 0 then C.poll(pfd, 1, 1000) end -- bounded; re-checked each round
    while C.sqlpool_queue_pop(self.queue, completion) == OK do
      local key = tostring(completion.op_id)
      local co = self.waiting[key]
      self.waiting[key] = nil
      -- pop set this thread's last error to the operation's: read it now
      local err = completion.status ~= OK and last_error(completion.status) or nil
      if completion.error ~= nil then C.sqlpool_error_free(completion.error) end
      self:_resume(co, completion.handle, tonumber(completion.rows_affected), err)
    end
  end
  if #self.errors > 0 then error(self.errors[1], 0) end
end

-- Borrows a connection without blocking the loop.
function Loop:acquire(pool, timeout)
  local h = live_pool(pool)
  local ms = timeout and math.floor(timeout * 1000) or -1
  local handle = self:_await(function(q, id) return C.sqlpool_pool_acquire_async(h, ms, q, nil, nil, id) end)
  return new_conn(ffi.cast("sqlpool_conn *", handle))
end

local function async_statement(self, conn, sql, params, fn)
  local h = live(conn)
  -- SQL and parameters are copied when the operation starts
  local handle, rows = with_params(params, function(p)
    return self:_await(function(q, id) return fn(h, sql, p, q, nil, nil, id) end)
  end)
  return handle, rows
end

function Loop:query(target, sql, params)
  if getmetatable(target) == Pool then
    local conn = self:acquire(target)
    local ok, rows = pcall(self.query, self, conn, sql, params)
    conn:release()
    if not ok then error(rows, 0) end
    return rows
  end
  local handle = async_statement(self, target, sql, params, C.sqlpool_conn_query_async)
  return read_result(ffi.cast("sqlpool_result *", handle))
end

function Loop:execute(target, sql, params)
  if getmetatable(target) == Pool then
    local conn = self:acquire(target)
    local ok, n = pcall(self.execute, self, conn, sql, params)
    conn:release()
    if not ok then error(n, 0) end
    return n
  end
  local _, rows = async_statement(self, target, sql, params, C.sqlpool_conn_execute_async)
  return rows
end

-- Frees the queue; operations still pending are cancelled and their
-- connections and results given back by the library. Idempotent.
function Loop:close()
  if self.queue == nil then return end
  C.sqlpool_queue_free(self.queue)
  self.queue = nil
end

function M.version() return ffi.string(C.sqlpool_version()) end

return M
