// cxx_header.cpp: include/sqlpool.h compiles as C++17 (-Wall -Wextra
// -Wpedantic -Werror), links, and works: the header's extern "C" block, the
// uint32_t-based status enum and the version macros, used from C++ with
// RAII wrappers.
#include "sqlpool.h"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>

static_assert(std::is_same<std::underlying_type<sqlpool_status>::type, std::uint32_t>::value,
              "the status enum is uint32_t-sized in C++");
static_assert(std::is_same<sqlpool_status, enum sqlpool_status>::value,
              "the status enum's own name is sqlpool_status");
static_assert(SQLPOOL_OK == 0 && SQLPOOL_MISUSE == 5 && SQLPOOL_PANIC == 99,
              "status numbers are part of the ABI");

namespace {

int failures = 0;

void expect(bool ok, const char *what)
{
    if (!ok) {
        std::fprintf(stderr, "cxx_header: FAIL: %s (last error: %s: %s)\n", what,
                     sqlpool_status_name(sqlpool_last_error_status()),
                     sqlpool_last_error_message());
        failures++;
    }
}

struct PoolCloser {
    void operator()(sqlpool_pool *p) const noexcept { sqlpool_pool_close(p); }
};
struct ResultFreer {
    void operator()(sqlpool_result *r) const noexcept { sqlpool_result_free(r); }
};
struct ParamsFreer {
    void operator()(sqlpool_params *p) const noexcept { sqlpool_params_free(p); }
};
using Pool = std::unique_ptr<sqlpool_pool, PoolCloser>;
using Result = std::unique_ptr<sqlpool_result, ResultFreer>;
using Params = std::unique_ptr<sqlpool_params, ParamsFreer>;

} // namespace

int main()
{
    const std::string header_version = std::to_string(SQLPOOL_VERSION_MAJOR) + "." +
                                       std::to_string(SQLPOOL_VERSION_MINOR) + "." +
                                       std::to_string(SQLPOOL_VERSION_PATCH);
    expect(header_version == sqlpool_version(), "header version == sqlpool_version()");
    expect(std::strcmp(sqlpool_status_name(SQLPOOL_POOL_TIMEOUT), "SQLPOOL_POOL_TIMEOUT") == 0,
           "status name");

    { // The RAII owners below give everything back at the end of this block.
    sqlpool_pool *raw = nullptr;
    expect(sqlpool_pool_open("sqlite::memory:", nullptr, &raw) == SQLPOOL_OK, "pool_open");
    Pool pool(raw);

    sqlpool_params *rp = nullptr;
    expect(sqlpool_params_new(&rp) == SQLPOOL_OK, "params_new");
    Params params(rp);
    const std::string text = "from C++";
    expect(sqlpool_params_add_int64(params.get(), "n", 41) == SQLPOOL_OK, "add_int64");
    expect(sqlpool_params_add_text(params.get(), "s", text.data(), text.size()) == SQLPOOL_OK,
           "add_text");

    sqlpool_result *rr = nullptr;
    sqlpool_status st =
        sqlpool_pool_query(pool.get(), "SELECT :n + 1 AS answer, :s AS s", params.get(), &rr);
    expect(st == SQLPOOL_OK, "pool_query");
    Result result(rr);
    if (result) {
        std::int64_t answer = 0;
        const char *s = nullptr;
        std::size_t len = 0;
        expect(sqlpool_result_get_int64(result.get(), 0, 0, &answer) == SQLPOOL_OK && answer == 42,
               "SELECT :n + 1 = 42");
        expect(sqlpool_result_get_text(result.get(), 0, 1, &s, &len) == SQLPOOL_OK &&
                   std::string(s, len) == text,
               "text round trip");
    }

    // Misuse is a status in C++ too.
    expect(sqlpool_result_free(reinterpret_cast<sqlpool_result *>(pool.get())) == SQLPOOL_MISUSE,
           "wrong handle kind -> SQLPOOL_MISUSE");

    }

    if (failures == 0)
        std::printf("cxx_header: sqlpool %s from C++17: OK\n", sqlpool_version());
    /* Everything was given back: no handle is still live (a forgotten one
       would be invisible to valgrind, handles live in a table). */
    if (sqlpool_live_handles() != 0) {
        std::fprintf(stderr, "leak: %zu sqlpool handles still live at exit\n", sqlpool_live_handles());
        return 1;
    }
    return failures == 0 ? 0 : 1;
}
