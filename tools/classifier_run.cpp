#include "tools/classifier_run.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "engine/autograd.h"
#include "engine/optim/ema.h"
#include "tools/checkpoint.h"
#include "tools/factories.h"

namespace ddpm {

namespace fs = std::filesystem;

ClassifierConfig classifier_config(const ClassifierSection& c, const Shape& image_shape, int64_t classes) {
  ClassifierConfig out;
  out.in_channels = static_cast<int>(image_shape.at(2));
  out.classes = static_cast<int>(classes);
  out.channels = c.channels;
  out.blocks = c.blocks;
  out.groups = c.groups;
  return out;
}

void require_labels(const ImageSet& set, const std::string& who) {
  DDPM_CHECK(!set.labels.empty(), who, ": the data set has no labels (", set.description,
             "); a classifier learns from labelled images: use data.dataset fashion-mnist, mnist or cifar10, or "
             "an image folder whose loader provides labels");
  DDPM_CHECK(static_cast<int64_t>(set.labels.size()) == set.size(), who, ": the data set has ", set.size(),
             " images but ", set.labels.size(), " labels (", set.description, ")");
  for (int label : set.labels)
    DDPM_CHECK(label >= 0, who, ": label ", label, " is negative (", set.description, ")");
}

namespace {
// checkpoint.json of a classifier run; throws naming the missing or corrupt file, or a DDPM run.
Json read_classifier_state(const std::string& run_dir) {
  Json state = read_checkpoint_state(run_dir);
  DDPM_CHECK(state.value("kind", std::string()) == kClassifierRunKind, "classifier: '", run_dir,
             "' holds a DDPM run (ddpm train), not a classifier; train one with ddpm classifier train");
  return state;
}
}  // namespace

ClassifierRun load_classifier_run(const std::string& run_dir, const std::vector<std::string>& overrides,
                                  Device device) {
  ClassifierRun run;
  run.run_dir = run_dir;
  run.state = read_classifier_state(run_dir);
  run.config = recorded_config(run.state.at("config"), overrides);
  run.image_shape = run.state.at("image_shape").get<Shape>();
  run.classes = run.state.at("classes").get<int64_t>();
  run.device = device;
  run.weights_path = (fs::path(run_dir) / run.state.at("weights").get<std::string>()).string();
  run.model = std::make_unique<Classifier>(classifier_config(run.config.classifier, run.image_shape, run.classes));
  run.params = std::make_unique<ParameterSet>(*run.model, 0, device);
  run.ema = run.config.classifier.use_ema;
  Ema ema(*run.params, 0.0);
  load_checkpoint(run_dir, *run.params, run.ema ? &ema : nullptr, nullptr);  // a pruned run has only model.*
  if (run.ema) ema.swap_with(*run.params);
  run.model->train(false);
  return run;
}

ClassifierRun load_classifier_run(const std::string& run_dir, const std::vector<std::string>& overrides) {
  const Json state = read_classifier_state(run_dir);
  const Config config = recorded_config(state.at("config"), overrides);
  return load_classifier_run(run_dir, overrides, choose_device(config.train.device));
}

ClassifierOutput classify(const ClassifierRun& run, const Tensor& images, int64_t batch) {
  DDPM_CHECK(batch >= 1, "classifier: the batch size must be at least 1, got ", batch);
  const Shape& want = run.image_shape;
  DDPM_CHECK(images.rank() == 4 && images.dim(1) == want[0] && images.dim(2) == want[1] && images.dim(3) == want[2],
             "classifier: images ", shape_str(images.shape()), " do not match the classifier of '", run.run_dir,
             "', which was trained on ", want[0], "x", want[1], " images with ", want[2],
             " channel(s) ([N, ", want[0], ", ", want[1], ", ", want[2],
             "]); give images of that size or train a classifier on data like them");
  NoGradGuard no_grad;
  const int64_t n = images.dim(0), d = run.model->feature_dim();
  ClassifierOutput out{Tensor::empty({n, d}), Tensor::empty({n, run.classes})};
  const Tensor source = images.dtype() == DType::F32 ? images : images.to(DType::F32);
  const int64_t image_size = numel(want);
  for (int64_t first = 0; first < n; first += batch) {
    const int64_t b = std::min(batch, n - first);
    // Rows [first, first + b) as a view of the source, moved to the classifier's device.
    auto impl = std::make_shared<TensorImpl>(*source.impl_ptr());
    impl->shape = {b, want[0], want[1], want[2]};
    impl->offset += static_cast<size_t>(first * image_size) * sizeof(float);
    impl->grad_fn = nullptr;
    impl->grad = nullptr;
    impl->requires_grad = false;
    const ClassifierOutput part = run.model->forward(Tensor(std::move(impl)).to(run.device));
    const Tensor f = part.features.to(Device::CPU), l = part.logits.to(Device::CPU);
    std::copy_n(f.data<float>(), b * d, out.features.data<float>() + first * d);
    std::copy_n(l.data<float>(), b * run.classes, out.logits.data<float>() + first * run.classes);
  }
  return out;
}

std::vector<int> predicted_classes(const Tensor& logits) {
  const std::vector<double> v = logits.to_vector();
  const int64_t n = logits.dim(0), k = logits.dim(1);
  std::vector<int> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    out[static_cast<size_t>(i)] =
        static_cast<int>(std::max_element(v.begin() + i * k, v.begin() + (i + 1) * k) - (v.begin() + i * k));
  return out;
}

Json evaluate_classifier(const ClassifierRun& run, const ImageSet& set, const std::string& split) {
  require_labels(set, "classifier eval");
  const int64_t batch = run.config.classifier.eval_batch_size;
  const ClassifierOutput out = classify(run, set.images, batch);
  const std::vector<int> predicted = predicted_classes(out.logits);
  const std::vector<double> logits = out.logits.to_vector();
  const int64_t k = run.classes;
  std::vector<int64_t> seen(static_cast<size_t>(k), 0), right(static_cast<size_t>(k), 0);
  int64_t correct = 0;
  double loss = 0;
  for (size_t i = 0; i < predicted.size(); ++i) {
    const int y = set.labels[i];
    DDPM_CHECK(y < k, "classifier eval: image ", i, " of the ", split, " split has label ", y, " but the classifier of '",
               run.run_dir, "' knows ", k, " classes (0 to ", k - 1, "); is this the data set it was trained on?");
    // -log softmax(logits)[y] around the row maximum
    const double* row = logits.data() + static_cast<int64_t>(i) * k;
    const double top = *std::max_element(row, row + k);
    double total = 0;
    for (int64_t j = 0; j < k; ++j) total += std::exp(row[j] - top);
    loss += top + std::log(total) - row[y];
    ++seen[static_cast<size_t>(y)];
    if (predicted[i] == y) ++correct, ++right[static_cast<size_t>(y)];
  }
  const double n = static_cast<double>(predicted.size());
  Json per_class = Json::array();
  for (int64_t c = 0; c < k; ++c)
    per_class.push_back(seen[static_cast<size_t>(c)] ? Json(static_cast<double>(right[static_cast<size_t>(c)]) /
                                                                static_cast<double>(seen[static_cast<size_t>(c)]))
                                                     : Json());  // null: no image of that class
  return Json{{"run", run.run_dir},
              {"split", split},
              {"images", predicted.size()},
              {"correct", correct},
              {"accuracy", n > 0 ? static_cast<double>(correct) / n : 0.0},
              {"loss", n > 0 ? loss / n : 0.0},
              {"per_class_accuracy", per_class},
              {"weights", run.ema ? "ema" : "final"}};
}
}  // namespace ddpm
