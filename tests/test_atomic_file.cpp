// engine/io/atomic_file: a committed file replaces the old one whole; an abandoned one changes
// nothing and leaves no temporary file; failures name the path and what to do.
#include <catch2/catch.hpp>
#include <filesystem>

#include "engine/io/atomic_file.h"
#include "tests/cli_runner.h"

using namespace ddpm;
using ddpm::test::read_text;
using ddpm::test::TempDir;
namespace fs = std::filesystem;

TEST_CASE("atomic files: commit replaces, abandoning keeps the old file", "[io][atomic]") {
  TempDir dir;
  const std::string path = dir / "state.json";
  write_file_atomically(path, std::string("old"));
  REQUIRE(read_text(path) == "old");
  {
    AtomicFile file(path);
    file.write("new, ", 5);
    REQUIRE(fs::exists(path + ".tmp"));
    REQUIRE(read_text(path) == "old");  // nothing visible before the commit
    file.write("longer", 6);
    file.commit();
  }
  REQUIRE(read_text(path) == "new, longer");
  REQUIRE_FALSE(fs::exists(path + ".tmp"));
  {
    AtomicFile file(path);
    file.write("half", 4);
  }  // dropped without commit, as when an exception unwinds a writer
  REQUIRE(read_text(path) == "new, longer");
  REQUIRE_FALSE(fs::exists(path + ".tmp"));
}

TEST_CASE("atomic files: a missing directory is refused with the path and the advice", "[io][atomic][errors]") {
  TempDir dir;
  REQUIRE_THROWS_WITH(write_file_atomically(dir / "missing/x.json", std::string("{}")),
                      Catch::Contains("missing/x.json.tmp") && Catch::Contains("directory exists"));
}
