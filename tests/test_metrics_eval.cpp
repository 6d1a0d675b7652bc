// `ddpm eval --metrics` end to end on a tiny toy run with a stand-in feature network (a fixed
// random projection of the pixels through tanh): FD(train vs test) is small and FD(noise vs test)
// far larger, the reference statistics are cached and reused, and bad input gets clear errors.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>

#include "engine/io/safetensors.h"
#include "engine/philox.h"
#include "metrics/feature_stats.h"
#include "metrics/npz.h"
#include "tests/cli_runner.h"
#include "tests/support.h"
#include "tools/quality_eval.h"
#include "tools/factories.h"

using namespace ddpm;
using namespace ddpm::test;
using Catch::Contains;
namespace fs = std::filesystem;

namespace {
// features [N, 8] = tanh(W p + b) of the flattened pixels p (W, b ~ N(0, 1/4): nearly linear); logits [N, 4] = 3 * features[:, :4].
class ProjectionNetwork : public FeatureNetwork {
 public:
  explicit ProjectionNetwork(int64_t pixels) : pixels_(pixels) {
    for (int64_t i = 0; i < kDim * (pixels + 1); ++i) w_.push_back(0.5 * philox::normal(5, 0, static_cast<uint64_t>(i)));
  }
  std::string name() const override { return "test-projection-8"; }
  int64_t feature_dim() const override { return kDim; }
  bool has_logits() const override { return true; }
  FeatureBatch run(const Tensor& images) override {
    const Tensor x = images.to(Device::CPU);
    const int64_t n = x.dim(0);
    REQUIRE(x.numel() == n * pixels_);
    images_seen += n;
    pixels_seen.insert(pixels_seen.end(), x.data<float>(), x.data<float>() + x.numel());
    FeatureBatch out{Tensor::empty({n, kDim}), Tensor::empty({n, 4})};
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < kDim; ++j) {
        double s = w_[static_cast<size_t>(j * (pixels_ + 1) + pixels_)];
        for (int64_t p = 0; p < pixels_; ++p)
          s += w_[static_cast<size_t>(j * (pixels_ + 1) + p)] * x.data<float>()[i * pixels_ + p];
        out.features.data<float>()[i * kDim + j] = static_cast<float>(std::tanh(s));
        if (j < 4) out.logits.data<float>()[i * 4 + j] = static_cast<float>(3 * std::tanh(s));
      }
    return out;
  }
  int64_t images_seen = 0;
  std::vector<float> pixels_seen;  // every image run, in order

 private:
  static constexpr int64_t kDim = 8;
  int64_t pixels_;
  std::vector<double> w_;
};

std::string toy_run(const TempDir& dir) {
  const std::string run = dir / "toy";
  const Outcome train = run_ddpm({"train", "--out", run, "--set", "data.dataset=toy", "--set", "data.toy_size=600",
                                  "--set", "model.type=mlp", "--set", "model.mlp_hidden=32", "--set", "diffusion.steps=20",
                                  "--set", "train.batch_size=16", "--set", "train.steps=3", "--set",
                                  "train.checkpoint_every=3", "--set", "train.sample_steps=5", "--set", "sample.count=4"});
  INFO(train.err);
  REQUIRE(train.status == 0);
  return run;
}

QualityOptions options(const std::string& source, const std::string& cache) {
  RunArgs args;
  args.features = "test:stand-in";
  args.source = source;
  args.count = 300;
  args.cache = cache;
  return quality_options(args, parse_metric_list("fid,kid,precision,recall,is"), 64);
}
}  // namespace

TEST_CASE("metrics eval: train vs test is close, noise is far, and the reference is cached", "[metrics][eval]") {
  TempDir dir;
  const std::string run = toy_run(dir);
  TrainedModel m = load_trained_model(run, {}, true);
  ProjectionNetwork net(2);

  const Json train = quality_eval(m, net, options("train", dir / "cache"));
  REQUIRE(net.images_seen == 600);  // 300 reference + 300 source images
  REQUIRE(train["reference"]["cached"] == false);
  const std::string npz = train["reference"]["cache"];
  REQUIRE(fs::exists(npz));
  const auto written = fs::last_write_time(npz);

  // The cached statistics are those of the first 300 test images in this network's space.
  const ImageSet test = load_dataset(m.config.data, "test");
  std::vector<int64_t> first;
  for (int64_t i = 0; i < 300; ++i) first.push_back(i);
  FeatureStats direct(8, false);
  direct.add(net.run(gather_batch(test, first, false, 0, 0)).features);
  const auto cached = read_npz(npz);
  require_close(cached.at("mu").doubles(), direct.gaussian().mu, 1e-12, 1e-12, "cached mu");
  require_close(cached.at("sigma").doubles(), direct.gaussian().sigma, 1e-10, 1e-12, "cached sigma");
  REQUIRE(cached.at("features").shape == std::vector<int64_t>{300, 8});

  net.images_seen = 0;
  const Json noise = quality_eval(m, net, options("noise", dir / "cache"));
  REQUIRE(net.images_seen == 300);  // the source only: the reference came from the cache
  REQUIRE(noise["reference"]["cached"] == true);
  REQUIRE(fs::last_write_time(npz) == written);

  const double fd_train = train["metrics"]["fid"], fd_noise = noise["metrics"]["fid"];
  INFO("FD train " << fd_train << ", noise " << fd_noise);
  REQUIRE(fd_train >= 0);
  // (2-D toy points: noise clamped to [-1, 1]^2 and the swiss roll share much of their first two
  // moments, so the FD gap is ~10x here, while precision separates them clearly.)
  REQUIRE(fd_noise > 5 * fd_train);
  REQUIRE(noise["metrics"]["kid"]["mean"].get<double>() > 2 * std::abs(train["metrics"]["kid"]["mean"].get<double>()));
  REQUIRE(train["metrics"]["precision"].get<double>() > 0.9);
  REQUIRE(noise["metrics"]["precision"].get<double>() < 0.5);
  REQUIRE(train["metrics"]["recall"].get<double>() > 0.9);
  REQUIRE(train["metrics"]["kid"]["subset_size"] == 300);
  REQUIRE(train["metrics"]["inception_score"]["splits"] == 10);
  REQUIRE(train["count"] == 300);
  REQUIRE(train["feature_network"]["name"] == "test-projection-8");
  REQUIRE(train["wall_seconds"]["total"].get<double>() > 0);

  net.images_seen = 0;
  net.pixels_seen.clear();
  const Json samples = quality_eval(m, net, options("samples", dir / "cache"));
  REQUIRE(net.images_seen == 300);
  REQUIRE(samples["sampler"]["method"] == "ancestral");
  REQUIRE(samples["sampler"]["evaluations"] == 20);
  REQUIRE(std::isfinite(samples["metrics"]["fid"].get<double>()));
  // The streamed samples (two chunks: 256 + 44) are exactly the images `ddpm sample` draws.
  const Outcome drawn = run_ddpm({"sample", "--run", run, "--set", "sample.count=300", "--out", dir / "s.png", "--raw",
                                  dir / "s.safetensors"});
  REQUIRE(drawn.status == 0);
  REQUIRE(load_safetensors(dir / "s.safetensors").at("samples").to_vector() ==
          std::vector<double>(net.pixels_seen.begin(), net.pixels_seen.end()));
}

TEST_CASE("metrics eval: bad options are refused with what to do", "[metrics][eval][errors]") {
  TempDir dir;
  const std::string run = toy_run(dir);
  auto eval = [&](std::vector<std::string> extra) {
    std::vector<std::string> args{"eval", "--run", run, "--cache", dir / "cache"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_ddpm(args);
  };
  Outcome unknown = eval({"--metrics", "fid,sharpness", "--features", "inception:x"});
  REQUIRE(unknown.status == 1);
  REQUIRE_THAT(unknown.err, Contains("unknown metric 'sharpness'") && Contains("fid, kid, precision, recall, is, accuracy, bpd"));
  for (const char* spec : {"inception", "resnet:weights.pt", "classifier:"}) {
    Outcome bad = eval({"--metrics", "fid", "--features", spec});
    INFO(spec);
    REQUIRE(bad.status == 1);
    REQUIRE_THAT(bad.err, Contains("inception:FILE") && Contains("classifier:RUN_DIR") && Contains(spec));
  }
  REQUIRE_THAT(eval({"--metrics", "fid"}).err, Contains("needs a feature network"));
  REQUIRE_THAT(eval({"--metrics", "fid", "--features", "inception:x", "--count", "1"}).err,
               Contains("--count must be at least 2"));
  REQUIRE_THAT(eval({"--metrics", "fid", "--features", "inception:x", "--count", "ten"}).err,
               Contains("--count needs an integer"));
  REQUIRE_THAT(eval({"--metrics", "fid", "--features", "inception:x", "--source", "gan"}).err,
               Contains("--source must be samples, train or noise"));
  REQUIRE_THAT(eval({"--metrics", "fid", "--features", "inception:x", "--source", "train", "--reference", "train"}).err,
               Contains("use --reference test"));
  REQUIRE_THAT(eval({"--metrics", "fid,fid", "--features", "inception:x"}).err, Contains("listed twice"));
  REQUIRE_FALSE(fs::exists(dir / "cache"));
}
