#include "tools/conditioning.h"

#include <algorithm>
#include <cctype>

#include "engine/philox.h"

namespace ddpm {

namespace {
std::string listing(const std::vector<std::string>& names) {
  std::string out;
  for (size_t k = 0; k < names.size(); ++k) out += (k ? ", " : "") + std::to_string(k) + " " + names[k];
  return out;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}
}  // namespace

void check_class_conditioning(const Config& config, const ImageSet& data) {
  const int k = config.model.num_classes;
  DDPM_CHECK(k >= 0, "model.num_classes must be >= 0 (0 = unconditional), got ", k);
  if (k == 0) return;
  const std::string dataset = dataset_name(config.data.dataset);
  DDPM_CHECK(!data.labels.empty(), "model.num_classes is ", k, " (class-conditional) but the data set \"", dataset,
             "\" has no labels. Train on labelled data (fashion-mnist, mnist, cifar10, or data.dataset \"folder\" "
             "with one subfolder per class) or set model.num_classes=0");
  int found = static_cast<int>(data.class_names.size());
  if (found == 0) found = *std::max_element(data.labels.begin(), data.labels.end()) + 1;
  DDPM_CHECK(found == k, "model.num_classes is ", k, " but the data set \"", dataset, "\" has ", found, " classes",
             data.class_names.empty() ? std::string() : " (" + listing(data.class_names) + ")",
             "; set model.num_classes=", found);
  for (size_t i = 0; i < data.labels.size(); ++i)
    DDPM_CHECK(data.labels[i] >= 0 && data.labels[i] < k, "data: example ", i, " has label ", data.labels[i],
               ", outside 0..", k - 1);
  const double p = config.train.label_dropout;
  DDPM_CHECK(p >= 0 && p <= 1, "train.label_dropout must be in [0, 1] (the fraction of labels replaced by \"no "
             "class\"), got ", p);
}

std::vector<int> training_labels(const ImageSet& data, const std::vector<int64_t>& indices, double p, int null_label,
                                 uint64_t seed, uint64_t step, uint64_t first) {
  std::vector<int> labels;
  for (size_t i = 0; i < indices.size(); ++i) {
    const int64_t row = indices[i];
    DDPM_CHECK(row >= 0 && row < static_cast<int64_t>(data.labels.size()), "training labels: row ", row,
               " is outside the ", data.labels.size(), " labels");
    const bool drop = p > 0 && philox::uniform(seed, kLabelDropoutStreamTag ^ step, first + i) < p;
    labels.push_back(drop ? null_label : data.labels[static_cast<size_t>(row)]);
  }
  return labels;
}

LabeledModelFn labeled_model_fn(Denoiser& model, DropoutKey key) {
  return [&model, key](const Tensor& x_t, const Tensor& t, const std::vector<int>& labels) {
    return model.forward(x_t, t, key, labels);
  };
}

std::vector<std::string> run_class_names(const ModelSection& model, const ImageSet& data) {
  const int k = model.num_classes;
  if (k == 0 || !data.class_names.empty()) return k == 0 ? std::vector<std::string>{} : data.class_names;
  std::vector<std::string> names;
  for (int i = 0; i < k; ++i) names.push_back(std::to_string(i));
  return names;
}

std::vector<std::string> class_names_of_run(const Json& state) {
  return state.value("classes", std::vector<std::string>{});
}

Json classes_json(const std::vector<std::string>& names) {
  return Json{{"num_classes", names.size()}, {"classes", names}, {"null_label", names.size()}};
}

int parse_class(const std::string& spec, const std::vector<std::string>& names) {
  const int k = static_cast<int>(names.size());
  if (spec == "none") return k;
  for (int i = 0; i < k; ++i)
    if (names[static_cast<size_t>(i)] == spec) return i;
  for (int i = 0; i < k; ++i)
    if (lower(names[static_cast<size_t>(i)]) == lower(spec)) return i;
  if (!spec.empty() && spec.size() < 9 && std::all_of(spec.begin(), spec.end(), ::isdigit) && std::stoi(spec) < k)
    return std::stoi(spec);
  detail::fail("--class: unknown class \"", spec, "\"; this run's classes are ", listing(names),
               " (give a name or an index), or \"all\" (one row per class) or \"none\" (unconditional)");
}

int choose_sample_classes(const SampleSection& sample, const std::vector<std::string>& names, int num_classes,
                          GenerateOptions& o) {
  const std::string& spec = sample.class_spec;
  const double w = sample.guidance;
  if (num_classes == 0) {
    DDPM_CHECK(spec.empty(), "--class ", spec, ": this run is unconditional (model.num_classes = 0), so it cannot "
               "sample by class; train with model.num_classes set on labelled data for that");
    DDPM_CHECK(w == 0, "--guidance ", w, ": this run is unconditional (model.num_classes = 0); classifier-free "
               "guidance needs a class-conditional run (model.num_classes > 0)");
    return 0;
  }
  DDPM_CHECK(w >= 0, "--guidance must be >= 0 (0 = the conditional model alone), got ", w);
  DDPM_CHECK(static_cast<int>(names.size()) == num_classes, "sample: the run records ", names.size(),
             " class names for ", num_classes, " classes");
  o.guidance = w;
  o.labels.clear();
  if (spec.empty() || spec == "all") {
    const int64_t per_class = (o.count + num_classes - 1) / num_classes;
    o.count = per_class * num_classes;
    for (int64_t i = 0; i < o.count; ++i) o.labels.push_back(static_cast<int>(i / per_class));
    return static_cast<int>(per_class);
  }
  o.labels.assign(static_cast<size_t>(o.count), parse_class(spec, names));
  return 0;
}

}  // namespace ddpm
