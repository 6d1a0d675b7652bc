// `ddpm classifier eval`: the accuracy of a trained classifier on a split of its data set.
#include <cstdio>
#include <filesystem>

#include "tools/checkpoint.h"
#include "tools/classifier_run.h"
#include "tools/commands.h"
#include "tools/factories.h"

namespace ddpm {

int classifier_eval_command(const RunArgs& args) {
  DDPM_CHECK(!args.run_dir.empty(), "classifier eval: give the run with --run RUN_DIR (a ddpm classifier train run)");
  const std::string split = args.split.empty() ? "test" : args.split;
  DDPM_CHECK(split == "test" || split == "train", "classifier eval: --split must be \"test\" or \"train\", got \"",
             split, "\"");
  const ClassifierRun run = load_classifier_run(args.run_dir, args.overrides);
  const Json report = evaluate_classifier(run, load_dataset(run.config.data, split), split);
  const std::string out =
      args.out.empty() ? (std::filesystem::path(args.run_dir) / ("eval_" + split + ".json")).string() : args.out;
  write_file_atomically(out, report.dump(2) + "\n");
  std::printf("%s accuracy %.2f%% (%lld of %lld), loss %.4f (%s weights of %s)\n", split.c_str(),
              100.0 * report["accuracy"].get<double>(), static_cast<long long>(report["correct"].get<int64_t>()),
              static_cast<long long>(report["images"].get<int64_t>()), report["loss"].get<double>(),
              report["weights"].get<std::string>().c_str(), args.run_dir.c_str());
  std::fprintf(stderr, "ddpm classifier eval: wrote %s\n", out.c_str());
  return 0;
}

}  // namespace ddpm
