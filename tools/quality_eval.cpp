#include "tools/quality_eval.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>

#include "metrics/feature_stats.h"
#include "metrics/frechet_distance.h"
#include "metrics/inception_score.h"
#include "metrics/kernel_inception_distance.h"
#include "metrics/npz.h"
#include "metrics/precision_recall.h"
#include "tools/checkpoint.h"
#include "tools/conditioning.h"
#include "tools/generate.h"
#include "tools/progress.h"

namespace ddpm {

namespace fs = std::filesystem;

namespace {
constexpr uint64_t kNoiseStreamTag = 0x4E4F495300000000ull;  // "NOIS": the noise source's draws
constexpr int64_t kSampleChunk = 256;  // GenerateOptions' default batch: eval's samples equal `ddpm sample`'s

bool wants(const std::vector<std::string>& metrics, const std::string& name) {
  return std::find(metrics.begin(), metrics.end(), name) != metrics.end();
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Feeds images [n, H, W, C] to the network in batches, adding features (and logits) to the stats.
void add_images(FeatureNetwork& network, const Tensor& images, int64_t batch, FeatureStats& stats,
                std::vector<float>* logits, const std::function<void(int64_t)>& done) {
  const int64_t n = images.dim(0), per_image = images.numel() / std::max<int64_t>(n, 1);
  for (int64_t first = 0; first < n; first += batch) {
    const int64_t rows = std::min(batch, n - first);
    Tensor part = Tensor::empty({rows, images.dim(1), images.dim(2), images.dim(3)});
    std::copy_n(images.data<float>() + first * per_image, rows * per_image, part.data<float>());
    const FeatureBatch out = network.run(part);
    DDPM_CHECK(out.features.defined() && out.features.rank() == 2 && out.features.dim(0) == rows &&
                   out.features.dim(1) == network.feature_dim(),
               "eval: the feature network returned ", out.features.defined() ? out.features.describe() : "nothing",
               " for ", rows, " images; expected [", rows, ", ", network.feature_dim(), "]");
    stats.add(out.features.device() == Device::CPU ? out.features : out.features.to(Device::CPU));
    if (logits) {
      const Tensor l = out.logits.to(Device::CPU);
      logits->insert(logits->end(), l.data<float>(), l.data<float>() + l.numel());
    }
    done(rows);
  }
}

// The reference statistics of `split`: from the cache when a file with the same key exists, else
// computed and written there. The key: the data section (minus what does not change the images),
// the split, the count and the feature network's name (which carries its weights' hash).
struct Reference {
  GaussianStats gaussian;
  std::vector<float> features;  // [count, D]
  int64_t count = 0;
  std::string path;
  bool cached = false;
};

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// What identifies the images of a data section: every key but random_flip, as the run records them.
Json data_key(const DataSection& d) {
  return Json{{"dataset", dataset_name(d.dataset)}, {"path", d.path},         {"toy", d.toy},
              {"toy_size", d.toy_size},             {"channels", d.channels}, {"limit", d.limit}};
}

Reference reference_stats(const DataSection& data, FeatureNetwork& network, const QualityOptions& o, int64_t batch) {
  const Json key{{"data", data_key(data)}, {"split", o.reference}, {"count", o.count}, {"features", network.name()}};
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(fnv1a(key.dump())));
  Reference r;
  const std::string stem = o.cache_dir + "/" + dataset_name(data.dataset) + "-" + o.reference + "-" +
                           std::to_string(o.count) + "-" + hash;
  r.path = stem + ".npz";
  if (fs::exists(r.path) && fs::exists(stem + ".json")) {
    std::ifstream in(stem + ".json");
    const Json stored = Json::parse(in, nullptr, false);
    if (!stored.is_discarded() && stored.value("key", Json()) == key) {
      const auto arrays = read_npz(r.path);
      DDPM_CHECK(arrays.count("mu") && arrays.count("sigma") && arrays.count("features"), "eval: the cached reference ",
                 r.path, " lacks mu, sigma or features; delete it to recompute");
      r.gaussian.mu = arrays.at("mu").doubles();
      r.gaussian.sigma = arrays.at("sigma").doubles();
      r.gaussian.dim = static_cast<int64_t>(r.gaussian.mu.size());
      r.features = arrays.at("features").floats();
      r.count = arrays.at("features").shape.at(0);
      r.cached = true;
      std::fprintf(stderr, "reference statistics: cached %s\n", r.path.c_str());
      return r;
    }
  }
  std::fprintf(stderr, "reference statistics: computing %s\n", r.path.c_str());
  const ImageSet set = load_dataset(data, o.reference);
  r.count = std::min(o.count, set.size());
  DDPM_CHECK(r.count >= 2, "eval: the ", o.reference, " split has ", set.size(), " images; the reference needs at least 2");
  FeatureStats stats(network.feature_dim(), true);
  ProgressBar bar("reference", r.count, 0, 10 * batch);
  int64_t done = 0;
  for (int64_t first = 0; first < r.count; first += batch) {
    std::vector<int64_t> indices;
    for (int64_t i = first; i < std::min(r.count, first + batch); ++i) indices.push_back(i);
    add_images(network, gather_batch(set, indices, false, 0, 0), batch, stats, nullptr, [&](int64_t n) {
      done += n;
      bar.update(done, "images");
    });
  }
  bar.finish("done");
  r.gaussian = stats.gaussian();
  r.features = stats.features();
  const int64_t d = network.feature_dim();
  fs::create_directories(o.cache_dir);
  write_npz(r.path, {{"mu", NpyArray::of(r.gaussian.mu, {d})},
                     {"sigma", NpyArray::of(r.gaussian.sigma, {d, d})},
                     {"features", NpyArray::of(r.features, {r.count, d})}});
  write_file_atomically(stem + ".json", Json{{"key", key}, {"images", r.count}}.dump(2) + "\n");
  return r;
}
// {"accuracy": the share of samples whose arg-max logit is the class they were drawn for,
//  "per_class_accuracy": {name: {"accuracy", "samples"}}}. logits [N, K] row-major, labels [N].
Json class_accuracy(const std::vector<float>& logits, const std::vector<int>& labels,
                    const std::vector<std::string>& names) {
  const int64_t n = static_cast<int64_t>(labels.size()), k = static_cast<int64_t>(names.size());
  DDPM_CHECK(n > 0 && static_cast<int64_t>(logits.size()) == n * k, "eval: accuracy needs the feature network's ",
             "logits over the run's ", k, " classes (", join(names), "), but it gave ",
             n > 0 ? static_cast<int64_t>(logits.size()) / n : 0, " per image; use a classifier trained on the same ",
             "classes in the same order");
  std::vector<int64_t> hits(k, 0), drawn(k, 0);
  for (int64_t i = 0; i < n; ++i) {
    const int label = labels[i];
    DDPM_CHECK(label >= 0 && label < k, "eval: accuracy needs samples drawn for a class (sample.class a class or ",
               "all), not the unconditional label");
    const float* row = logits.data() + i * k;
    hits[label] += std::max_element(row, row + k) - row == label;
    ++drawn[label];
  }
  Json per_class = Json::object();
  int64_t total = 0;
  for (int64_t c = 0; c < k; ++c) {
    total += hits[c];
    if (drawn[c] > 0)
      per_class[names[c]] = {{"accuracy", static_cast<double>(hits[c]) / drawn[c]}, {"samples", drawn[c]}};
  }
  return {{"accuracy", static_cast<double>(total) / n}, {"per_class_accuracy", per_class}};
}
}  // namespace

const std::vector<std::string>& known_metrics() {
  static const std::vector<std::string> names{"fid", "kid", "precision", "recall", "is", "accuracy", "bpd"};
  return names;
}

std::vector<std::string> parse_metric_list(const std::string& list) {
  if (list.empty()) return {"bpd"};
  std::vector<std::string> out;
  std::stringstream in(list);
  for (std::string name; std::getline(in, name, ',');) {
    DDPM_CHECK(wants(known_metrics(), name), "eval: unknown metric '", name, "' in --metrics; valid: ",
               join(known_metrics()), " (comma-separated, e.g. --metrics fid,kid)");
    DDPM_CHECK(!wants(out, name), "eval: metric '", name, "' is listed twice in --metrics");
    out.push_back(name);
  }
  return out;
}

std::string default_reference_cache_dir() {
  if (const char* dir = std::getenv("DDPM_CACHE_DIR"); dir && *dir) return dir;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return std::string(xdg) + "/ddpm/reference_stats";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.cache/ddpm/reference_stats";
}

QualityOptions quality_options(const RunArgs& args, const std::vector<std::string>& metrics, int64_t default_count) {
  QualityOptions o;
  for (const std::string& m : metrics)
    if (m != "bpd") o.metrics.push_back(m);
  if (o.metrics.empty()) return o;
  DDPM_CHECK(!args.features.empty(), "eval: --metrics ", join(o.metrics),
             " needs a feature network: --features inception:FILE or --features classifier:RUN_DIR");
  o.source = args.source.empty() ? "samples" : args.source;
  o.reference = args.reference.empty() ? "test" : args.reference;
  DDPM_CHECK(o.source == "samples" || o.source == "train" || o.source == "noise",
             "eval: --source must be samples, train or noise, got '", o.source, "'");
  DDPM_CHECK(o.reference == "test" || o.reference == "train", "eval: --reference must be test or train, got '",
             o.reference, "'");
  DDPM_CHECK(!(o.source == "train" && o.reference == "train"),
             "eval: --source train against --reference train compares the training set with itself; use --reference test");
  o.count = args.count != 0 ? args.count : default_count;
  DDPM_CHECK(o.count >= 2, "eval: --count must be at least 2 (a covariance needs two images), got ", o.count);
  o.cache_dir = args.cache.empty() ? default_reference_cache_dir() : args.cache;
  return o;
}

Json quality_eval(TrainedModel& m, FeatureNetwork& network, const QualityOptions& o) {
  const auto started = std::chrono::steady_clock::now();
  const EvalSection& e = m.config.eval;
  const int64_t batch = e.batch_size;
  DDPM_CHECK(batch >= 1, "eval.batch_size must be at least 1, got ", batch);
  const bool want_is = wants(o.metrics, "is"), want_kid = wants(o.metrics, "kid");
  const bool want_pr = wants(o.metrics, "precision") || wants(o.metrics, "recall");
  DDPM_CHECK(!want_is || network.has_logits(), "eval: the Inception score needs class logits, and the feature network ",
             network.name(), " has none; drop 'is' from --metrics");
  const bool want_accuracy = wants(o.metrics, "accuracy");
  if (want_accuracy) {
    DDPM_CHECK(o.source == "samples", "eval: accuracy is the share of generated samples classified as the class they were ",
               "drawn for; it needs --source samples, not ", o.source);
    DDPM_CHECK(m.model->num_classes() > 0, "eval: accuracy needs a class-conditional run (model.num_classes > 0), and ",
               "this run is unconditional");
    DDPM_CHECK(network.has_logits(), "eval: accuracy needs a feature network with class logits (--features ",
               "classifier:RUN_DIR), and ", network.name(), " has none");
  }
  const int64_t d = network.feature_dim();

  const Reference ref = reference_stats(m.config.data, network, o, batch);
  const double reference_seconds = seconds_since(started);

  // The source's features, streamed: `chunk` images at a time, never all of them at once.
  const auto source_started = std::chrono::steady_clock::now();
  FeatureStats stats(d, want_kid || want_pr);
  std::vector<float> logits;  // [count, K] when IS or accuracy needs them
  const bool want_logits = want_is || want_accuracy;
  const uint64_t eval_seed = seed_for(e.seed, Purpose::Evaluation);
  const SampleSection& s = m.config.sample;
  GenerateOptions g = generate_options(s);
  g.batch = kSampleChunk;
  // A conditional model draws its classes as `ddpm sample` would (sample.class, default all: equal
  // shares in blocks), with sample.guidance; each chunk takes its slice of the labels.
  std::vector<int> labels;
  if (o.source == "samples") {
    GenerateOptions all = g;
    all.count = o.count;
    choose_sample_classes(s, class_names_of_run(m.state), m.model->num_classes(), all);
    g.guidance = all.guidance;
    labels.assign(all.labels.begin(), all.labels.begin() + std::min<int64_t>(o.count, all.labels.size()));
  }
  const int chain = generate_evaluations(*m.diffusion, g);  // network evaluations per sample
  ImageSet train;
  std::vector<int64_t> train_order;  // a random N of the training images, drawn by eval.seed
  if (o.source == "train") {
    train = load_dataset(m.config.data, "train");
    DDPM_CHECK(o.count <= train.size(), "eval: --count ", o.count, " exceeds the ", train.size(),
               " images of the train split (--source train)");
    train_order = epoch_permutation(train.size(), eval_seed, 0);
  }
  const int64_t chunks = (o.count + kSampleChunk - 1) / kSampleChunk;
  const bool sampling = o.source == "samples";
  ProgressBar bar(o.source, sampling ? chunks * chain : o.count, 0, sampling ? 100 : 10 * batch);
  int64_t done = 0;
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t first = c * kSampleChunk, n = std::min(kSampleChunk, o.count - first);
    const Shape shape{n, m.image_shape[0], m.image_shape[1], m.image_shape[2]};
    Tensor images;
    if (sampling) {
      g.count = n;
      g.first_batch = c;
      if (!labels.empty()) g.labels.assign(labels.begin() + first, labels.begin() + first + n);
      // Images per second: each of the chain's steps advances n images by 1/chain of their way.
      g.progress = [&](int64_t step, int64_t) { bar.update(c * chain + step, "images", static_cast<double>(n) / chain); };
      images = generate(*m.model, *m.diffusion, m.image_shape, m.device, g);
    } else if (o.source == "train") {
      const std::vector<int64_t> indices(train_order.begin() + first, train_order.begin() + first + n);
      images = gather_batch(train, indices, false, 0, 0);
    } else {  // N(0, 1) noise clamped to [-1, 1]
      images = Tensor::normal(shape, eval_seed, kNoiseStreamTag | static_cast<uint64_t>(c));
      float* p = images.data<float>();
      for (int64_t i = 0; i < images.numel(); ++i) p[i] = std::clamp(p[i], -1.0f, 1.0f);
    }
    add_images(network, images, batch, stats, want_logits ? &logits : nullptr, [&](int64_t k) {
      done += k;
      if (!sampling) bar.update(done, "images");
    });
  }
  bar.finish("done");
  const double source_seconds = seconds_since(source_started);

  const auto metrics_started = std::chrono::steady_clock::now();
  Json metrics = Json::object();
  std::string summary;
  auto note = [&](const char* text, double value) {
    char part[64];
    std::snprintf(part, sizeof part, "%s%s %.5g", summary.empty() ? "" : ", ", text, value);
    summary += part;
  };
  if (wants(o.metrics, "fid")) {
    metrics["fid"] = frechet_distance(stats.gaussian(), ref.gaussian);
    note("FID", metrics["fid"]);
  }
  if (want_kid) {
    KidOptions k;
    k.subsets = o.kid_subsets;
    k.subset_size = o.kid_subset_size;
    k.seed = eval_seed;
    const KidResult r = kernel_inception_distance(stats.features(), stats.count(), ref.features, ref.count, d, k);
    metrics["kid"] = {{"mean", r.mean}, {"std", r.std}, {"subsets", r.subsets}, {"subset_size", r.subset_size}};
    note("KID", r.mean);
  }
  if (want_pr) {
    const PrecisionRecall r = precision_recall(ref.features, ref.count, stats.features(), stats.count(), d, o.pr_k);
    metrics["precision"] = r.precision;
    metrics["recall"] = r.recall;
    metrics["pr_k"] = r.k;
    note("precision", r.precision);
    note("recall", r.recall);
  }
  if (want_is) {
    const int64_t classes = static_cast<int64_t>(logits.size()) / o.count;
    const InceptionScore r = inception_score(logits, o.count, classes, std::min(o.is_splits, o.count));
    metrics["inception_score"] = {{"mean", r.mean}, {"std", r.std}, {"splits", r.splits}, {"classes", classes}};
    note("IS", r.mean);
  }
  if (want_accuracy) {
    metrics.update(class_accuracy(logits, labels, class_names_of_run(m.state)));
    note("accuracy", metrics["accuracy"]);
  }
  const double metric_seconds = seconds_since(metrics_started);
  std::printf("%s over %lld %s images against %lld %s images\n", summary.c_str(), static_cast<long long>(o.count),
              o.source.c_str(), static_cast<long long>(ref.count), o.reference.c_str());

  Json report{{"metrics", metrics},
              {"source", o.source},
              {"count", o.count},
              {"reference", {{"split", o.reference}, {"count", ref.count}, {"cache", ref.path}, {"cached", ref.cached}}},
              {"feature_network", {{"name", network.name()}, {"dim", d}, {"logits", network.has_logits()}}},
              {"seeds", {{"eval", e.seed}, {"sample", s.seed}}},
              {"wall_seconds", {{"reference", reference_seconds}, {"source", source_seconds}, {"metrics", metric_seconds},
                                {"total", seconds_since(started)}}}};
  if (sampling)
    report["sampler"] = {{"method", sample_method_name(g.method)}, {"evaluations", chain}, {"eta", g.eta}, {"clip", g.clip},
                         {"philox_seed", g.seed}, {"chunk", kSampleChunk}, {"guidance", g.guidance},
                         {"class", s.class_spec}};
  if (o.source == "noise") report["noise"] = {{"philox_seed", eval_seed}, {"stream_tag", kNoiseStreamTag}};
  return report;
}

}  // namespace ddpm
