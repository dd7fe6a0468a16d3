-- luajit examples/quickstart.lua [URI] (from bindings/lua): a pool,
-- concurrent queries, a transaction and an error, printed as they happen.
package.path = "./?.lua;./?/init.lua;" .. package.path
local sqlpool = require("sqlpool")

local file = os.tmpname()
local uri = arg[1] or ("sqlite:" .. file)
local pool = sqlpool.open(uri, { max_size = 5 })
print("lua: sqlpool " .. sqlpool.version() .. ", pool of 5 open")
pool:execute("DROP TABLE IF EXISTS demo_lua")
pool:execute("CREATE TABLE demo_lua (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)")

local loop, tens = sqlpool.loop(), {}
for n = 1, 3 do
  loop:spawn(function() tens[n] = loop:query(pool, "SELECT CAST(:n AS BIGINT) * 10 AS tens", { n = n })[1].tens end)
end
loop:run()
loop:close()
print("lua: 3 concurrent queries -> " .. table.concat(tens, ", "))

pool:execute("INSERT INTO demo_lua (id, name) VALUES (:id, :name)", { id = 1, name = "ada" })
local ok, err = pcall(pool.transaction, pool, function(tx)
  tx:execute("INSERT INTO demo_lua (id, name) VALUES (:id, :name)", { id = 2, name = "grace" })
  error("changed my mind", 0)
end)
print("lua: transaction rolled back (" .. tostring(err) .. ")")
for _, row in ipairs(pool:query("SELECT id, name FROM demo_lua ORDER BY id")) do
  print(("lua: row -> id=%d name=%s"):format(row.id, row.name))
end
ok, err = pcall(pool.execute, pool, "INSERT INTO demo_lua (id, name) VALUES (3, :name)", { name = "ada" })
print(("lua: %s SQLSTATE %s: %s"):format(err.code, err.sqlstate, err.message))
pool:execute("DROP TABLE demo_lua")
pool:close()
print("lua: pool closed")
for _, suffix in ipairs({ "", "-wal", "-shm" }) do os.remove(file .. suffix) end
