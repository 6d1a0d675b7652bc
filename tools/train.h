#pragma once
#include <string>
#include <vector>

namespace ddpm {

struct TrainArgs {
  std::string config_file;            // --config
  std::vector<std::string> overrides;  // --set section.key=value
  std::string resume;                  // --resume RUN_DIR
  std::string out;                     // --out RUN_DIR (new runs)
};

// Trains (or resumes) a run. Returns the process exit status: 0 done, 130 interrupted (after
// saving a checkpoint). Throws ddpm::Error on bad input or a non-finite loss.
int train_command(const TrainArgs& args);

}  // namespace ddpm
