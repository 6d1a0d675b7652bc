// The ddpm sub-commands other than train (tools/train.h). Each returns the exit status.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ddpm {

struct RunArgs {
  std::string run_dir;                  // --run RUN_DIR
  std::vector<std::string> overrides;   // --set section.key=value
  std::string out;                      // --out FILE
  std::string raw;                      // --raw FILE.safetensors (sample)
  std::string config_file;              // --config FILE (info without a run)
  std::vector<std::string> positional;  // words after the command (import/export: FORMAT PATH)
  std::string metrics;                  // --metrics fid,kid,... (eval; empty: bits/dim)
  std::string features;                 // --features inception:FILE | classifier:RUN_DIR (eval)
  std::string source, reference, cache; // --source, --reference, --cache DIR (eval)
  int64_t count = 0;                    // --count N (eval; 0: eval.count)
  std::string split;                    // --split train|test (classifier eval)
  std::string x, y, series, log, title; // --x KEY --y KEY --series KEY --log x|y|xy --title TEXT (plot)
};

int sample_command(const RunArgs& args);
int eval_command(const RunArgs& args);
int info_command(const RunArgs& args);
int import_command(const RunArgs& args);  // ddpm import diffusers DIR --out RUN_DIR
int export_command(const RunArgs& args);  // ddpm export diffusers RUN_DIR --out DIR
int plot_command(const RunArgs& args);    // ddpm plot FILE... --x KEY --y KEY --out FILE.png

// `ddpm classifier train` (tools/classifier_train.cpp) and `ddpm classifier eval`
// (tools/classifier_eval.cpp).
struct TrainArgs;
int classifier_train_command(const TrainArgs& args);
int classifier_eval_command(const RunArgs& args);

}  // namespace ddpm
