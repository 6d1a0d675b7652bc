// `ddpm plot`: a line chart of JSON records (eval.json files, metrics.jsonl lines), one line per
// value of a series key, so that sweeps and training logs can be drawn without Python.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "engine/error.h"
#include "tools/commands.h"
#include "tools/config.h"
#include "tools/image_io.h"

namespace ddpm {

namespace {
// The value at a dotted path ("metrics.kid.mean"), or nullptr when a part is missing.
const Json* at_path(const Json& record, const std::string& path) {
  const Json* node = &record;
  std::stringstream parts(path);
  for (std::string part; std::getline(parts, part, '.');) {
    if (!node->is_object() || !node->contains(part)) return nullptr;
    node = &(*node)[part];
  }
  return node;
}

// A file's records: the one JSON value it holds, or one per non-empty line.
std::vector<Json> read_records(const std::string& path) {
  std::ifstream in(path);
  DDPM_CHECK(in, "plot: cannot open '", path, "'");
  std::stringstream text;
  text << in.rdbuf();
  const Json whole = Json::parse(text.str(), nullptr, false);
  if (!whole.is_discarded()) return whole.is_array() ? whole.get<std::vector<Json>>() : std::vector<Json>{whole};
  std::vector<Json> records;
  std::istringstream lines(text.str());
  int number = 0;
  for (std::string line; std::getline(lines, line);) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const Json record = Json::parse(line, nullptr, false);
    DDPM_CHECK(!record.is_discarded(), "plot: ", path, " line ", number,
               " is not JSON (a file must hold one JSON value or one JSON object per line)");
    records.push_back(record);
  }
  return records;
}

std::string series_name(const Json* value) {
  if (!value) return "";
  return value->is_string() ? value->get<std::string>() : value->dump();
}
}  // namespace

int plot_command(const RunArgs& args) {
  DDPM_CHECK(!args.positional.empty(), "plot: name at least one JSON or JSON-lines file (see ddpm plot --help)");
  DDPM_CHECK(!args.x.empty() && !args.y.empty(), "plot: --x KEY and --y KEY are required, e.g. --x step --y loss");
  DDPM_CHECK(!args.out.empty(), "plot: --out FILE.png is required");
  DDPM_CHECK(args.log.empty() || args.log == "x" || args.log == "y" || args.log == "xy",
             "plot: --log must be x, y or xy, got '", args.log, "'");
  std::map<std::string, std::vector<std::pair<double, double>>> points;  // series -> (x, y)
  int64_t records = 0, used = 0;
  std::string keys_seen;
  for (const std::string& path : args.positional)
    for (const Json& record : read_records(path)) {
      ++records;
      if (keys_seen.empty() && record.is_object())
        for (const auto& item : record.items()) keys_seen += (keys_seen.empty() ? "" : ", ") + item.key();
      const Json* x = at_path(record, args.x);
      const Json* y = at_path(record, args.y);
      if (!x || !y || !x->is_number() || !y->is_number()) continue;
      ++used;
      points[args.series.empty() ? "" : series_name(at_path(record, args.series))].emplace_back(x->get<double>(),
                                                                                            y->get<double>());
    }
  DDPM_CHECK(used > 0, "plot: none of the ", records, " records has numbers at both --x ", args.x, " and --y ",
             args.y, "; the first record's keys: ", keys_seen.empty() ? "(none)" : keys_seen,
             " (nested keys are dotted: metrics.fid)");

  std::vector<Series> series;
  std::printf("%-16s %14s %14s\n", args.series.empty() ? "series" : args.series.c_str(), args.x.c_str(), args.y.c_str());
  for (auto& [name, xy] : points) {
    std::sort(xy.begin(), xy.end());
    Series s;
    s.label = name;
    for (const auto& [x, y] : xy) {
      s.x.push_back(x);
      s.y.push_back(y);
      std::printf("%-16s %14.6g %14.6g\n", name.c_str(), x, y);
    }
    series.push_back(std::move(s));
  }
  const bool log_x = args.log.find('x') != std::string::npos, log_y = args.log.find('y') != std::string::npos;
  write_line_plot(args.out, series, args.title.empty() ? args.y + " against " + args.x : args.title, args.x, args.y,
                  log_y, log_x);
  std::fflush(stdout);
  std::fprintf(stderr, "plot: %lld of %lld records in %zu series -> %s\n", static_cast<long long>(used),
               static_cast<long long>(records), series.size(), args.out.c_str());
  return 0;
}

}  // namespace ddpm
