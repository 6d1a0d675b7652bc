// Exceptions for library code. Messages name the operation, the shapes and what was expected;
// library code never calls exit().
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace ddpm {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream message;
  (message << ... << parts);
  throw Error(message.str());
}
}  // namespace detail

}  // namespace ddpm

// DDPM_CHECK(cond, "op: ", shape_str(s), " expected ...") throws ddpm::Error with the parts joined.
#define DDPM_CHECK(cond, ...)                 \
  do {                                        \
    if (!(cond)) ::ddpm::detail::fail(__VA_ARGS__); \
  } while (0)
