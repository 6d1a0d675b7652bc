// `ddpm eval`: test-set bits/dim through the full variational bound, with every term, as JSON and
// as a plot of bits/dim against t; with --metrics, sample-quality metrics too (tools/quality_eval.cpp).
#include <algorithm>
#include <cstdio>
#include <iostream>

#include "tools/checkpoint.h"
#include "tools/commands.h"
#include "tools/feature_networks.h"
#include "tools/conditioning.h"
#include "tools/image_io.h"
#include "tools/progress.h"
#include "tools/quality_eval.h"
#include "tools/trained_model.h"

namespace ddpm {

namespace {
// The bound's fields of eval.json; writes the plot of its terms next to json_path.
Json bits_per_dim(TrainedModel& m, const std::string& json_path) {
  const EvalSection& e = m.config.eval;
  const ImageSet test = load_dataset(m.config.data, "test");
  const int64_t count = std::min<int64_t>(e.count, test.size()), batch = e.batch_size;
  DDPM_CHECK(count >= 1 && batch >= 1, "eval: count and batch_size must be at least 1");
  const int steps = m.diffusion->steps();
  const int64_t batches = (count + batch - 1) / batch;
  ProgressBar bar("eval", batches * steps, 0, 100);

  std::vector<double> terms(static_cast<size_t>(steps), 0.0), mse(static_cast<size_t>(steps), 0.0);
  // Class-conditional runs: the bound given each image's class, summed per class as well.
  const int num_classes = m.model->num_classes();
  const std::vector<std::string> names = class_names_of_run(m.state);
  DDPM_CHECK(num_classes == 0 || static_cast<int64_t>(test.labels.size()) >= count, "eval: this run is "
             "class-conditional but the test images have no labels");
  std::vector<double> class_bpd(static_cast<size_t>(num_classes), 0.0);
  std::vector<int64_t> class_images(static_cast<size_t>(num_classes), 0);
  double prior = 0, total = 0;
  for (int64_t b = 0; b < batches; ++b) {
    std::vector<int64_t> indices;
    for (int64_t i = b * batch; i < std::min(count, (b + 1) * batch); ++i) indices.push_back(i);
    const Tensor x0 = gather_batch(test, indices, false, 0, 0).to(m.device);
    const double weight = static_cast<double>(indices.size()) / static_cast<double>(count);
    std::vector<int> labels;
    for (int64_t i : indices) labels.push_back(num_classes ? test.labels[static_cast<size_t>(i)] : 0);
    const ModelFn network = num_classes ? condition_on(labeled_model_fn(*m.model, {}), labels) : model_fn(*m.model, {});
    const auto bound = m.diffusion->bits_per_dim(network, x0, seed_for(e.seed, Purpose::Evaluation),
                                                 static_cast<uint64_t>(b) * static_cast<uint64_t>(steps), true,
                                                 [&](int done, int) { bar.update(b * steps + done, "", 1); });
    for (int t = 0; t < steps; ++t) {
      terms[static_cast<size_t>(t)] += weight * bound.terms_bpd[static_cast<size_t>(t)];
      mse[static_cast<size_t>(t)] += weight * bound.mse[static_cast<size_t>(t)];
    }
    prior += weight * bound.prior_bpd;
    for (size_t i = 0; num_classes && i < labels.size(); ++i) {
      class_bpd[static_cast<size_t>(labels[i])] += bound.total_per_sample_bpd[i];
      class_images[static_cast<size_t>(labels[i])] += 1;
    }
    total += weight * bound.total_bpd;
  }
  bar.finish("done");

  Json report{{"images", count},
              {"total_bpd", total},
              {"prior_bpd", prior},
              {"decoder_bpd", terms[0]},
              {"terms_bpd", terms},
              {"eps_mse", mse}};
  for (int k = 0; k < num_classes; ++k) {
    const size_t c = static_cast<size_t>(k);
    if (class_images[c] == 0) continue;
    const double bpd = class_bpd[c] / static_cast<double>(class_images[c]);
    report["per_class"][names.at(c)] = {{"total_bpd", bpd}, {"images", class_images[c]}};
    std::printf("  class %d %s: %.4f bits/dim over %lld images\n", k, names[c].c_str(), bpd,
                static_cast<long long>(class_images[c]));
  }
  Series curve{{}, terms, "bound term at step t"};
  for (int t = 0; t < steps; ++t) curve.x.push_back(t);
  const std::string plot = json_path.substr(0, json_path.rfind('.')) + "_terms.png";
  write_line_plot(plot, {curve}, "bound terms, total " + std::to_string(total).substr(0, 6) + " bits/dim", "t",
                  "bits/dim", true);
  std::printf("bits/dim %.4f (prior %.3g, decoder %.4f, %d terms) over %lld test images; %s, %s\n", total, prior,
              terms[0], steps, static_cast<long long>(count), json_path.c_str(), plot.c_str());
  return report;
}
}  // namespace

int eval_command(const RunArgs& args) {
  DDPM_CHECK(!args.run_dir.empty(), "eval: give the run directory with --run RUN_DIR");
  const std::vector<std::string> metrics = parse_metric_list(args.metrics);
  TrainedModel m = load_trained_model(args.run_dir, args.overrides, true);
  const QualityOptions quality = quality_options(args, metrics, m.config.eval.count);
  const std::string json_path = args.out.empty() ? args.run_dir + "/eval.json" : args.out;
  Json report{{"run", args.run_dir}, {"step", m.state.at("step")}};
  if (std::find(metrics.begin(), metrics.end(), "bpd") != metrics.end()) report.update(bits_per_dim(m, json_path));
  if (!quality.metrics.empty()) {
    const std::unique_ptr<FeatureNetwork> network = open_feature_network(args.features, m.device);
    report.update(quality_eval(m, *network, quality));
    std::printf("%s\n", json_path.c_str());
  }
  write_file_atomically(json_path, report.dump(2) + "\n");
  return 0;
}

}  // namespace ddpm
