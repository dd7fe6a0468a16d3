# frozen_string_literal: true

# sqlpool for Ruby: the C ABI of include/sqlpool.h through fiddle (standard
# library). Fiddle releases the GVL during each C call, so threads that wait
# for a connection or a statement let the others run. The library's last
# error is per OS thread, and a Ruby thread stays on its OS thread, so it is
# read right after the failing call.
require 'fiddle'
require 'fiddle/import'
require 'json'

module Sqlpool
  # A failure reported by the library: +status+ (Integer), +code+
  # ("SQLPOOL_CONSTRAINT_VIOLATION"), and the database's +sqlstate+,
  # +detail+ and +hint+ when it gave them.
  class Error < StandardError
    attr_reader :status, :code, :sqlstate, :detail, :hint, :native_code

    def initialize(status, info = {})
      @status = status
      @code = FFI.sqlpool_status_name(status).to_s
      @sqlstate = info['sqlstate'].to_s.empty? ? nil : info['sqlstate']
      @detail = info['detail']
      @hint = info['hint']
      @native_code = info['native_code'].to_i
      super(info['message'].to_s.empty? ? @code : info['message'])
    end
  end

  class PoolError < Error; end
  class PoolTimeout < PoolError; end
  class ConnectionError < Error; end
  class DatabaseError < Error; end
  class ConstraintViolation < DatabaseError; end
  class TransactionError < DatabaseError; end
  class ParameterError < Error; end
  class MisuseError < Error; end

  OK = 0
  ERRORS = {
    5 => MisuseError, 9 => PoolTimeout, 10 => PoolError, 11 => PoolError, 12 => ConnectionError,
    13 => ConnectionError, 14 => DatabaseError, 15 => ConstraintViolation, 16 => ParameterError,
    19 => MisuseError, 20 => TransactionError
  }.freeze
  KIND_NULL, KIND_BOOL, KIND_INT64, KIND_DOUBLE, KIND_TEXT, KIND_BLOB, KIND_MIXED = (0..6).to_a

  # One place decides which library is loaded: SQLPOOL_LIBRARY, then the
  # repository's build output, then the system's (make install).
  def self.library_path
    built = File.expand_path('../../../target/release/libsqlpool.so', __dir__)
    candidates = [ENV['SQLPOOL_LIBRARY'], built].compact
    candidates.find { |f| File.exist?(f) } || 'libsqlpool.so.0'
  end

  # The C functions, declared as in the header (handles as void *).
  module FFI
    extend Fiddle::Importer
    begin
      dlload Sqlpool.library_path
    rescue Fiddle::DLError => e
      raise LoadError, "sqlpool: cannot load the library (set SQLPOOL_LIBRARY): #{e.message}"
    end
    typealias 'sqlpool_status', 'uint32_t'
    [
      'const char *sqlpool_version(void)',
      'const char *sqlpool_status_name(uint32_t)',
      'const char *sqlpool_last_error_json(void)',
      'sqlpool_status sqlpool_options_new(void **)',
      'sqlpool_status sqlpool_options_free(void *)',
      'sqlpool_status sqlpool_options_set(void *, const char *, const char *)',
      'sqlpool_status sqlpool_pool_open(const char *, void *, void **)',
      'sqlpool_status sqlpool_pool_close(void *)',
      'sqlpool_status sqlpool_pool_acquire(void *, int64_t, void **)',
      'sqlpool_status sqlpool_pool_stats(void *, void *, uintptr_t)',
      'sqlpool_status sqlpool_conn_release(void *)',
      'sqlpool_status sqlpool_conn_execute(void *, const char *, void *, void *)',
      'sqlpool_status sqlpool_conn_query(void *, const char *, void *, void **)',
      'sqlpool_status sqlpool_conn_begin(void *, uint32_t, uint32_t)',
      'sqlpool_status sqlpool_conn_commit(void *)',
      'sqlpool_status sqlpool_conn_rollback(void *)',
      'sqlpool_status sqlpool_params_new(void **)',
      'sqlpool_status sqlpool_params_free(void *)',
      'sqlpool_status sqlpool_params_add_null(void *, const char *)',
      'sqlpool_status sqlpool_params_add_bool(void *, const char *, int32_t)',
      'sqlpool_status sqlpool_params_add_int64(void *, const char *, int64_t)',
      'sqlpool_status sqlpool_params_add_double(void *, const char *, double)',
      'sqlpool_status sqlpool_params_add_text(void *, const char *, const char *, uintptr_t)',
      'sqlpool_status sqlpool_params_add_blob(void *, const char *, const char *, uintptr_t)',
      'sqlpool_status sqlpool_result_free(void *)',
      'sqlpool_status sqlpool_result_describe(void *, void *)',
      'sqlpool_status sqlpool_result_column_data(void *, uintptr_t, void *)',
      'sqlpool_status sqlpool_result_kind(void *, uintptr_t, uintptr_t, uint32_t *)',
      'sqlpool_status sqlpool_result_get_int64(void *, uintptr_t, uintptr_t, int64_t *)',
      'sqlpool_status sqlpool_result_get_double(void *, uintptr_t, uintptr_t, double *)',
      'sqlpool_status sqlpool_result_get_blob(void *, uintptr_t, uintptr_t, void **, uintptr_t *)'
    ].each { |proto| extern proto }

    ResultInfo = struct(['uintptr_t rows', 'uintptr_t columns', 'void *names', 'uintptr_t names_len'])
    ColumnData = struct(['uint32_t kind', 'uint32_t reserved', 'uintptr_t rows', 'void *nulls',
                         'void *ints', 'void *doubles', 'void *offsets', 'void *bytes'])
    STATS_FIELDS = %w[total idle in_use waiting pending min_size max_size reserved created closed broken
                      acquires acquire_timeouts acquires_refused wait_total_us wait_max_us
                      leaks_reported connect_errors].freeze
    STATS_SIZE = 8 * 4 + 10 * 8

    module_function

    # Raises the thread's last error when +status+ is not OK.
    def check(status)
      return if status == OK

      info = begin
        JSON.parse(sqlpool_last_error_json.to_s)
      rescue JSON::ParserError
        {}
      end
      raise ERRORS.fetch(status, Error).new(status, info)
    end

    # A pointer-sized out-parameter, freed by the GC.
    def out
      Fiddle::Pointer.malloc(Fiddle::SIZEOF_VOIDP, Fiddle::RUBY_FREE)
    end

    # Builds a parameter list (Hash: :name placeholders; Array: $1..$n),
    # yields it, and frees it on every path.
    def with_params(params)
      return yield nil if params.nil?

      o = out
      check(sqlpool_params_new(o))
      handle = o.ptr
      begin
        if params.is_a?(Hash)
          params.each { |name, value| add_param(handle, name.to_s, value) }
        else
          params.each { |value| add_param(handle, nil, value) }
        end
        yield handle
      ensure
        sqlpool_params_free(handle)
      end
    end

    def add_param(h, name, value)
      check(case value
            when nil then sqlpool_params_add_null(h, name)
            when true, false then sqlpool_params_add_bool(h, name, value ? 1 : 0)
            when Integer
              raise RangeError, "sqlpool: #{value} does not fit in int64" unless value.bit_length < 64

              sqlpool_params_add_int64(h, name, value)
            when Float then sqlpool_params_add_double(h, name, value)
            when String
              if value.encoding == Encoding::BINARY
                sqlpool_params_add_blob(h, name, value, value.bytesize)
              else
                text = value.encode(Encoding::UTF_8)
                sqlpool_params_add_text(h, name, text, text.bytesize)
              end
            when Symbol then return add_param(h, name, value.to_s)
            when Time then return add_param(h, name, value.iso8601(6))
            else raise TypeError, "sqlpool: cannot bind #{value.class} (parameter #{name || 'positional'})"
            end)
    end

    # Reads a whole result into hashes (one column_data call per column)
    # and frees it, also when reading fails.
    def read_result(res)
      info = ResultInfo.malloc(Fiddle::RUBY_FREE)
      check(sqlpool_result_describe(res, info))
      # "name\0decltype\0" per column
      parts = info.columns.zero? ? [] : info.names.to_s(info.names_len).split("\0", -1)
      names = Array.new(info.columns) { |c| parts[2 * c].force_encoding(Encoding::UTF_8) }
      columns = names.each_index.map { |c| read_column(res, c, info.rows) }
      Array.new(info.rows) { |r| names.each_with_index.to_h { |name, c| [name, columns[c][r]] } }
    ensure
      sqlpool_result_free(res)
    end

    def read_column(res, col, rows)
      d = ColumnData.malloc(Fiddle::RUBY_FREE)
      check(sqlpool_result_column_data(res, col, d))
      return Array.new(rows) if rows.zero? || d.kind == KIND_NULL
      return Array.new(rows) { |r| read_cell(res, r, col) } if d.kind == KIND_MIXED

      nulls = d.nulls.to_s(rows).unpack('C*')
      values = case d.kind
               when KIND_INT64 then d.ints.to_s(8 * rows).unpack('q*')
               when KIND_BOOL then d.ints.to_s(8 * rows).unpack('q*').map { |v| v != 0 }
               when KIND_DOUBLE then d.doubles.to_s(8 * rows).unpack('d*')
               else
                 offsets = d.offsets.to_s(8 * (rows + 1)).unpack('Q*')
                 bytes = offsets[rows].zero? ? +'' : d.bytes.to_s(offsets[rows])
                 enc = d.kind == KIND_TEXT ? Encoding::UTF_8 : Encoding::BINARY
                 Array.new(rows) { |r| bytes.byteslice(offsets[r], offsets[r + 1] - offsets[r]).force_encoding(enc) }
               end
      values.each_with_index.map { |v, r| nulls[r].zero? ? v : nil }
    end

    def read_cell(res, row, col)
      kind = Fiddle::Pointer.malloc(8, Fiddle::RUBY_FREE)
      check(sqlpool_result_kind(res, row, col, kind))
      kind = kind[0, 4].unpack1('L')
      buf = Fiddle::Pointer.malloc(8, Fiddle::RUBY_FREE)
      case kind
      when KIND_NULL then nil
      when KIND_INT64, KIND_BOOL
        check(sqlpool_result_get_int64(res, row, col, buf))
        v = buf[0, 8].unpack1('q')
        kind == KIND_BOOL ? v != 0 : v
      when KIND_DOUBLE
        check(sqlpool_result_get_double(res, row, col, buf))
        buf[0, 8].unpack1('d')
      else
        len = out
        check(sqlpool_result_get_blob(res, row, col, buf, len))
        n = len[0, 8].unpack1('Q')
        s = n.zero? ? +'' : buf.ptr.to_s(n)
        s.force_encoding(kind == KIND_TEXT ? Encoding::UTF_8 : Encoding::BINARY)
      end
    end
  end
  private_constant :FFI

  def self.version
    FFI.sqlpool_version.to_s
  end

  # A connection borrowed from a Pool: one thread at a time.
  class Connection
    def initialize(handle)
      @handle = handle
    end

    # Rows as an Array of Hashes (column name => value).
    def query(sql, params = nil)
      out = FFI.out
      FFI.with_params(params) { |p| FFI.check(FFI.sqlpool_conn_query(live, sql, p, out)) }
      FFI.read_result(out.ptr)
    end

    # The number of rows changed.
    def execute(sql, params = nil)
      n = Fiddle::Pointer.malloc(8, Fiddle::RUBY_FREE)
      FFI.with_params(params) { |p| FFI.check(FFI.sqlpool_conn_execute(live, sql, p, n)) }
      n[0, 8].unpack1('Q')
    end

    def begin(read_only: false)
      FFI.check(FFI.sqlpool_conn_begin(live, 0, read_only ? 1 : 0))
    end

    def commit
      FFI.check(FFI.sqlpool_conn_commit(live))
    end

    def rollback
      FFI.check(FFI.sqlpool_conn_rollback(live))
    end

    # Runs the block in a transaction: committed when it returns, rolled
    # back when it raises (the block's exception is what the caller sees).
    def transaction(read_only: false)
      self.begin(read_only: read_only)
      begin
        result = yield self
      rescue Exception # rubocop:disable Lint/RescueException -- also Interrupt: roll back, re-raise
        begin
          rollback
        rescue Error
          nil
        end
        raise
      end
      commit
      result
    end

    # Gives the connection back (an open transaction is rolled back).
    # Idempotent; the handle is forgotten once the library took it.
    def release
      return if @handle.nil?

      FFI.check(FFI.sqlpool_conn_release(@handle))
      @handle = nil
    end

    def released?
      @handle.nil?
    end

    private

    def live
      @handle or raise MisuseError.new(5, 'message' => 'connection already released')
    end
  end

  # A pool of connections; share it between threads.
  class Pool
    # Opens a pool; +options+ are sqlpool's pool options
    # (max_size: 5, acquire_timeout: '2s'). With a block, yields the pool
    # and closes it afterwards.
    def self.open(uri, **options)
      pool = new(uri, **options)
      return pool unless block_given?

      begin
        yield pool
      ensure
        pool.close
      end
    end

    def initialize(uri, **options)
      o = FFI.out
      FFI.check(FFI.sqlpool_options_new(o))
      opts = o.ptr
      begin
        options.each { |k, v| FFI.check(FFI.sqlpool_options_set(opts, k.to_s, v.to_s)) }
        out = FFI.out
        FFI.check(FFI.sqlpool_pool_open(uri, opts, out))
        @handle = out.ptr
      ensure
        FFI.sqlpool_options_free(opts)
      end
    end

    # Borrows a connection for the block and gives it back however the
    # block ends. +timeout+ in seconds (default: the pool's acquire_timeout).
    def with_connection(timeout: nil)
      conn = acquire(timeout: timeout)
      begin
        yield conn
      ensure
        conn.release
      end
    end

    # Borrows a connection; the caller must #release it (prefer #with_connection).
    def acquire(timeout: nil)
      ms = timeout.nil? ? -1 : (timeout * 1000).round
      out = FFI.out
      FFI.check(FFI.sqlpool_pool_acquire(live, ms, out))
      Connection.new(out.ptr)
    end

    def query(sql, params = nil)
      with_connection { |c| c.query(sql, params) }
    end

    def execute(sql, params = nil)
      with_connection { |c| c.execute(sql, params) }
    end

    def transaction(**opts, &block)
      with_connection { |c| c.transaction(**opts, &block) }
    end

    def stats
      buf = Fiddle::Pointer.malloc(FFI::STATS_SIZE, Fiddle::RUBY_FREE)
      FFI.check(FFI.sqlpool_pool_stats(live, buf, FFI::STATS_SIZE))
      FFI::STATS_FIELDS.zip(buf.to_s(FFI::STATS_SIZE).unpack('L8Q10')).to_h.tap { |h| h.delete('reserved') }
    end

    # Closes the pool: waiting threads get PoolError; borrowed connections
    # keep working until released. Idempotent.
    def close
      return if @handle.nil?

      FFI.check(FFI.sqlpool_pool_close(@handle))
      @handle = nil
    end

    def closed?
      @handle.nil?
    end

    private

    def live
      @handle or raise PoolError.new(10, 'message' => 'pool is closed')
    end
  end
end
