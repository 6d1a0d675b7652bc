// `ddpm eval --metrics ...`: sample-quality metrics of a run (FID, KID, precision/recall, IS) in
// a feature network's space, against reference statistics of the data set's test or train split
// that are computed once and cached as a pytorch-fid compatible .npz.
#pragma once
#include <string>
#include <vector>

#include "metrics/feature_network.h"
#include "tools/commands.h"
#include "tools/trained_model.h"

namespace ddpm {

// The metric names --metrics accepts, in the order they are reported.
const std::vector<std::string>& known_metrics();  // fid, kid, precision, recall, is, bpd

// "fid,kid" -> {"fid", "kid"}; "" -> {"bpd"} (plain `ddpm eval`). Throws on an unknown or repeated name.
std::vector<std::string> parse_metric_list(const std::string& list);

struct QualityOptions {
  std::vector<std::string> metrics;  // the feature-space ones: fid, kid, precision, recall, is
  std::string source = "samples";    // samples | train | noise: what is compared against the reference
  std::string reference = "test";    // test | train: the split the reference statistics come from
  int64_t count = 0;                 // images of the source (and at most this many of the reference)
  std::string cache_dir;             // where reference statistics are cached
  int64_t kid_subsets = 100, kid_subset_size = 1000, is_splits = 10, pr_k = 3;
};

// From the command line (and eval.count when --count is not given); validates everything that can
// be checked before the run is loaded. metrics: parse_metric_list's result.
QualityOptions quality_options(const RunArgs& args, const std::vector<std::string>& metrics, int64_t default_count);

// $DDPM_CACHE_DIR, else $XDG_CACHE_HOME/ddpm/reference_stats, else ~/.cache/ddpm/reference_stats.
std::string default_reference_cache_dir();

// Runs the evaluation and returns eval.json's quality fields. Prints progress to stderr and a
// summary line to stdout.
Json quality_eval(TrainedModel& m, FeatureNetwork& network, const QualityOptions& options);

}  // namespace ddpm
