// `ddpm plot` through the real program: records from JSON files and JSON lines grouped into series
// and sorted by x (the printed table), a log x axis that puts x = 100 midway between 10 and 1000,
// and the refusals.
#include <stb/stb_image.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <memory>

#include "tests/cli_runner.h"
#include "tools/image_io.h"

using namespace ddpm::test;
using Catch::Contains;

namespace {
void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// The column of the lowest pixel of `rgb` in a PNG (the minimum of a line drawn in that colour;
// the legend's swatch sits at the top).
int bottom_column(const std::string& path, const std::array<uint8_t, 3>& rgb) {
  int w = 0, h = 0, channels = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> px(stbi_load(path.c_str(), &w, &h, &channels, 3), stbi_image_free);
  REQUIRE(px != nullptr);
  REQUIRE((w == ddpm::kLinePlotWidth && h == ddpm::kLinePlotHeight));
  for (int y = h - 1; y >= 0; --y) {
    int first = -1, last = -1;
    for (int x = 0; x < w; ++x) {
      const stbi_uc* p = px.get() + 3 * (y * w + x);
      if (p[0] == rgb[0] && p[1] == rgb[1] && p[2] == rgb[2]) (first < 0 ? first : last) = x, last = x;
    }
    if (first >= 0) return (first + last) / 2;
  }
  return -1;
}
}  // namespace

TEST_CASE("cli: ddpm plot groups records into series, sorts them by x and draws a log axis", "[cli][plot]") {
  TempDir dir;
  // Two eval.json-like files and a JSON-lines file; one record lacks the y key and is left out.
  write(dir / "a.json", R"({"sampler": {"method": "ddim", "evaluations": 1000}, "metrics": {"fid": 8.0}})");
  write(dir / "b.json", R"({"sampler": {"method": "ddim", "evaluations": 10}, "metrics": {"fid": 8.0}})");
  write(dir / "c.jsonl", R"({"sampler": {"method": "heun", "evaluations": 100}, "metrics": {"fid": 9.0}}
{"sampler": {"method": "ddim", "evaluations": 100}, "metrics": {"fid": 2.0}}

{"sampler": {"method": "heun", "evaluations": 10}, "metrics": {}}
)");
  const std::vector<std::string> files{dir / "a.json", dir / "b.json", dir / "c.jsonl"};
  auto plot = [&](const std::string& log, const std::string& out) {
    std::vector<std::string> args{"plot"};
    args.insert(args.end(), files.begin(), files.end());
    for (const char* a : {"--x", "sampler.evaluations", "--y", "metrics.fid", "--series", "sampler.method", "--out"})
      args.push_back(a);
    args.push_back(out);
    if (!log.empty()) args.insert(args.end(), {"--log", log});
    return run_ddpm(args);
  };
  const Outcome log_x = plot("x", dir / "log.png");
  INFO(log_x.err);
  REQUIRE(log_x.status == 0);
  REQUIRE_THAT(log_x.out, Contains("ddim                         10              8\n"
                                   "ddim                        100              2\n"
                                   "ddim                       1000              8\n"
                                   "heun                        100              9\n"));
  REQUIRE_THAT(log_x.err, Contains("4 of 5 records in 2 series"));
  // ddim's minimum is at x = 100: midway across the plot area (columns 84..775) on a log axis, 9% of
  // the way on a linear one.
  const int log_low = bottom_column(dir / "log.png", ddpm::plot_series_color(0));
  CHECK(std::abs(log_low - (84 + 775) / 2) <= 4);
  REQUIRE(plot("", dir / "linear.png").status == 0);
  const int linear_low = bottom_column(dir / "linear.png", ddpm::plot_series_color(0));
  CHECK(std::abs(linear_low - (84 + (775 - 84) * 90 / 990)) <= 4);

  // Refusals name what is wrong.
  REQUIRE_THAT(plot("z", dir / "z.png").err, Contains("--log must be x, y or xy"));
  const Outcome no_key = run_ddpm({"plot", dir / "a.json", "--x", "step", "--y", "loss", "--out", dir / "n.png"});
  REQUIRE(no_key.status == 1);
  REQUIRE_THAT(no_key.err, Contains("none of the 1 records") && Contains("keys: metrics, sampler"));
  write(dir / "bad.jsonl", "{\"step\": 1}\nnot json\n");
  REQUIRE_THAT(run_ddpm({"plot", dir / "bad.jsonl", "--x", "step", "--y", "step", "--out", dir / "b.png"}).err,
               Contains("line 2 is not JSON"));
  REQUIRE_THAT(run_ddpm({"plot", dir / "a.json", "--x", "step", "--out", dir / "b.png"}).err,
               Contains("--x KEY and --y KEY are required"));
}
