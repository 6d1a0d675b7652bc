// `ddpm import` and `ddpm export`: the format word, then the path (diffusers is the one format).
#include <cstdio>

#include "tools/commands.h"
#include "tools/diffusers_export.h"
#include "tools/diffusers_import.h"

namespace ddpm {

namespace {
const std::string& path_after_format(const RunArgs& args, const char* command, const char* what) {
  DDPM_CHECK(args.positional.size() == 2 && args.positional[0] == "diffusers", "ddpm ", command,
             ": expected `ddpm ", command, " diffusers ", what, " --out ...` (diffusers is the one format)");
  return args.positional[1];
}
}  // namespace

int import_command(const RunArgs& args) {
  const std::string& dir = path_after_format(args, "import", "DIR");
  const std::vector<std::string> notes = import_diffusers(dir, args.out, args.overrides);
  for (const std::string& note : notes) std::fprintf(stderr, "import diffusers: note: %s\n", note.c_str());
  std::printf("%s\n", args.out.c_str());
  return 0;
}

int export_command(const RunArgs& args) {
  const std::string& run = path_after_format(args, "export", "RUN_DIR");
  export_diffusers(run, args.out, args.overrides);
  std::printf("%s\n", args.out.c_str());
  return 0;
}

}  // namespace ddpm
