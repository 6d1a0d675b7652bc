// The switch for CUDA graphs (sample.cuda_graphs): on by default, --set turns it off, a value that
// is not a boolean is refused by name, and a run recorded before the key existed reads the default.
#include <catch2/catch.hpp>

#include "tools/config.h"
#include "tools/typed_config.h"

using namespace ddpm;
using Catch::Contains;

TEST_CASE("graph config: sample.cuda_graphs defaults to true and --set turns it off", "[graph][config]") {
  CHECK(load_config("", {}).sample.cuda_graphs);
  CHECK_FALSE(load_config("", {"sample.cuda_graphs=false"}).sample.cuda_graphs);
  CHECK(load_config("", {"sample.cuda_graphs=true"}).sample.cuda_graphs);
  CHECK_THROWS_WITH(load_config("", {"sample.cuda_graphs=maybe"}), Contains("sample.cuda_graphs"));
  Json old = default_config();
  old["sample"].erase("cuda_graphs");
  CHECK(recorded_config(old, {}).sample.cuda_graphs);
  CHECK_FALSE(recorded_config(old, {"sample.cuda_graphs=false"}).sample.cuda_graphs);
}
