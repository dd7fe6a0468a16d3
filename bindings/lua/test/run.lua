-- luajit test/run.lua (from bindings/lua): the scenario every runtime's
-- binding runs, on SQLite and PostgreSQL, plus the check that
-- sqlpool/cdef.lua matches include/sqlpool.h. Ends with "N passed, N failed".
package.path = "./?.lua;./?/init.lua;" .. package.path
local sqlpool = require("sqlpool")

local passed, failed, skipped = 0, 0, 0
local function test(name, fn)
  local ok, err = xpcall(fn, function(e)
    if type(e) == "table" and e.skip then return e end
    return debug.traceback(tostring(e), 2)
  end)
  if ok then
    passed = passed + 1
    print("ok      " .. name)
  elseif type(err) == "table" and err.skip then
    skipped = skipped + 1
    print("SKIP    " .. name .. ": " .. err.skip)
  else
    failed = failed + 1
    print("FAILED  " .. name .. "\n" .. err)
  end
end
local function skip(reason) error({ skip = reason }, 0) end
local function eq(a, b, what)
  if a ~= b then error(("%s: expected %s, got %s"):format(what or "value", tostring(b), tostring(a)), 2) end
end

test("sqlpool/cdef.lua is generated from the current header", function()
  local gen = require("gen_cdef")
  local f = assert(io.open("../../include/sqlpool.h", "rb"))
  local expected = gen.module_source(f:read("*a"))
  f:close()
  f = assert(io.open("sqlpool/cdef.lua", "rb"))
  local actual = f:read("*a")
  f:close()
  if actual ~= expected then
    error("stale: run `luajit gen_cdef.lua ../../include/sqlpool.h > sqlpool/cdef.lua` in bindings/lua")
  end
end)

local dir = os.tmpname()
os.remove(dir)
local backends = {
  { "sqlite", "sqlite:" .. dir .. "-scenario.db" },
  { "postgresql", os.getenv("SQLPOOL_TEST_PG_URL") or "" },
}

for _, b in ipairs(backends) do
  local backend, uri = b[1], b[2]
  local pool
  local function setup()
    if uri == "" then
      -- Without a server: skipped, visibly; under CI a failure.
      if os.getenv("CI") == "true" then error("SQLPOOL_TEST_PG_URL is not set (CI=true)") end
      skip("SQLPOOL_TEST_PG_URL not set")
    end
    if not pool then
      pool = sqlpool.open(uri, { max_size = 5 })
      pool:execute("DROP TABLE IF EXISTS lua_users")
      pool:execute("CREATE TABLE lua_users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)")
    end
  end

  test(backend .. ": a pool of 5", function()
    setup()
    eq(pool:stats().max_size, 5, "max_size")
  end)

  test(backend .. ": 200 concurrent queries with named parameters", function()
    setup()
    local loop = sqlpool.loop()
    local results = {}
    for i = 1, 200 do
      loop:spawn(function()
        results[i] = loop:query(pool, "SELECT CAST(:i AS BIGINT) * 2 AS doubled, CAST(:tag AS TEXT) AS tag",
          { i = i, tag = "q" .. i })
      end)
    end
    local ok, err = pcall(loop.run, loop)
    loop:close()
    assert(ok, tostring(err))
    for i = 1, 200 do
      eq(#results[i], 1, "rows of query " .. i)
      eq(results[i][1].doubled, 2 * i, "doubled")
      eq(results[i][1].tag, "q" .. i, "tag")
    end
    local s = pool:stats()
    assert(s.total <= 5, "pool grew to " .. s.total)
    eq(s.in_use, 0, "in use")
  end)

  test(backend .. ": a transaction rolls back", function()
    setup()
    pool:with_connection(function(conn)
      local ok, err = pcall(conn.transaction, conn, function(tx)
        tx:execute("INSERT INTO lua_users (id, name) VALUES (:id, :name)", { id = 1, name = "ghost" })
        eq(tx:query("SELECT count(*) AS n FROM lua_users")[1].n, 1, "count inside")
        error("abort", 0)
      end)
      eq(ok, false, "transaction result")
      eq(err, "abort", "error")
    end)
    eq(pool:query("SELECT count(*) AS n FROM lua_users")[1].n, 0, "count after rollback")
  end)

  test(backend .. ": a unique violation has SQLSTATE 23505", function()
    setup()
    pool:execute("INSERT INTO lua_users (id, name) VALUES (:id, :name)", { id = 1, name = "alice" })
    local ok, err = pcall(pool.execute, pool, "INSERT INTO lua_users (id, name) VALUES (:id, :name)",
      { id = 2, name = "alice" })
    eq(ok, false, "second insert")
    assert(sqlpool.is_error(err), tostring(err))
    eq(err.status, sqlpool.status.CONSTRAINT_VIOLATION, "status")
    eq(err.code, "SQLPOOL_CONSTRAINT_VIOLATION", "code")
    eq(err.sqlstate, "23505", "sqlstate")
    if backend == "postgresql" then assert(err.detail and err.detail:find("alice"), tostring(err.detail)) end
  end)

  test(backend .. ": closing the pool", function()
    setup()
    local conn = pool:acquire()
    conn:execute("DROP TABLE lua_users")
    pool:close()
    pool:close() -- idempotent
    -- A borrowed connection keeps working until it is given back.
    eq(conn:query("SELECT 1 AS one")[1].one, 1, "borrowed after close")
    conn:release()
    conn:release() -- idempotent
    local ok, err = pcall(pool.query, pool, "SELECT 1")
    eq(ok, false, "query after close")
    eq(err.status, sqlpool.status.POOL_CLOSED, "status")
    ok, err = pcall(conn.query, conn, "SELECT 1")
    eq(err.status, sqlpool.status.MISUSE, "released connection")
  end)
end

test("values round-trip", function()
  local pool = sqlpool.open("sqlite:" .. dir .. "-values.db")
  local ok, err = pcall(function()
    local row = pool:query("SELECT 9223372036854775807 AS big, 1.5 AS d, NULL AS n, :b AS b, :t AS t, :f AS f",
      { b = sqlpool.blob("\0\255"), t = "héllo", f = true })[1]
    eq(row.big, 9223372036854775807LL, "big")
    eq(row.d, 1.5, "d")
    eq(row.n, nil, "n")
    eq(row.b, "\0\255", "b")
    eq(row.t, "héllo", "t")
    eq(row.f, 1, "f")
    eq(pool:query("SELECT $1 AS a, $2 AS b", { 7, sqlpool.null })[1].a, 7, "positional")
    local ok2, e = pcall(pool.query, pool, "SELECT :missing")
    eq(ok2, false, "missing parameter")
    eq(e.status, sqlpool.status.PARAMETER_ERROR, "status")
  end)
  pool:close()
  assert(ok, tostring(err))
end)

for _, suffix in ipairs({ "-scenario.db", "-scenario.db-wal", "-scenario.db-shm", "-values.db", "-values.db-wal", "-values.db-shm" }) do
  os.remove(dir .. suffix)
end
print(("lua: %d passed, %d failed, %d skipped"):format(passed, failed, skipped))
os.exit(failed == 0 and 0 or 1)
