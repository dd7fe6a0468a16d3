# frozen_string_literal: true

# ruby examples/quickstart.rb [URI]: a pool, concurrent queries, a
# transaction and an error, printed as they happen.
require 'tmpdir'
require_relative '../lib/sqlpool'

Dir.mktmpdir('sqlpool-ruby-demo') do |dir|
  uri = ARGV[0] || "sqlite:#{File.join(dir, 'demo.db')}"
  Sqlpool::Pool.open(uri, max_size: 5) do |pool|
    puts "ruby: sqlpool #{Sqlpool.version}, pool of 5 open"
    pool.execute('DROP TABLE IF EXISTS demo_ruby')
    pool.execute('CREATE TABLE demo_ruby (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)')
    tens = (1..3).map { |n| Thread.new { pool.query('SELECT CAST(:n AS BIGINT) * 10 AS tens', n: n).first['tens'] } }
    puts "ruby: 3 concurrent queries -> #{tens.map(&:value).join(', ')}"
    pool.execute('INSERT INTO demo_ruby (id, name) VALUES (:id, :name)', id: 1, name: 'ada')
    begin
      pool.transaction do |tx|
        tx.execute('INSERT INTO demo_ruby (id, name) VALUES (:id, :name)', id: 2, name: 'grace')
        raise 'changed my mind'
      end
    rescue RuntimeError => e
      puts "ruby: transaction rolled back (#{e.message})"
    end
    pool.with_connection { |c| puts "ruby: rows -> #{c.query('SELECT id, name FROM demo_ruby ORDER BY id').inspect}" }
    begin
      pool.execute('INSERT INTO demo_ruby (id, name) VALUES (3, :name)', name: 'ada')
    rescue Sqlpool::ConstraintViolation => e
      puts "ruby: #{e.class} #{e.code} SQLSTATE #{e.sqlstate}: #{e.message}"
    end
    pool.execute('DROP TABLE demo_ruby')
  end
  puts 'ruby: pool closed'
end
