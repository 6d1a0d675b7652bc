// Times the sample-quality metrics on random features: statistics, FD, KID (100 subsets of 1000)
// and precision/recall (k = 3) for two sets of N x D (default 10000 x 2048, Inception's size).
//   bench_metrics [N] [D]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>

#include "engine/cpu_startup_env.h"
#include "engine/philox.h"
#include "metrics/feature_stats.h"
#include "metrics/frechet_distance.h"
#include "metrics/kernel_inception_distance.h"
#include "metrics/precision_recall.h"

using namespace ddpm;

namespace {
double seconds(const std::function<void()>& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// ReLU-like non-negative features (as Inception's pool features are), a shifted second set.
std::vector<float> features(int64_t n, int64_t d, uint64_t stream, float shift) {
  std::vector<float> out(static_cast<size_t>(n * d));
  for (int64_t i = 0; i < n * d; ++i)
    out[static_cast<size_t>(i)] = std::abs(philox::normal(1, stream, static_cast<uint64_t>(i)) + shift);
  return out;
}
}  // namespace

int main(int argc, char** argv) {
  set_cpu_startup_env(argv);  // OpenBLAS's kernel family for this CPU (docs/benchmarks.md)
  const int64_t n = argc > 1 ? std::atoll(argv[1]) : 10000, d = argc > 2 ? std::atoll(argv[2]) : 2048;
  const std::vector<float> a = features(n, d, 0, 0.0f), b = features(n, d, 1, 0.1f);
  FeatureStats sa(d, true), sb(d, true);
  const double t_stats = seconds([&] {
    for (int64_t first = 0; first < n; first += 256) {
      sa.add(a.data() + first * d, std::min<int64_t>(256, n - first));
      sb.add(b.data() + first * d, std::min<int64_t>(256, n - first));
    }
  });
  double fd = 0;
  const double t_fd = seconds([&] { fd = frechet_distance(sa.gaussian(), sb.gaussian()); });
  KidResult kid;
  const double t_kid = seconds([&] { kid = kernel_inception_distance(a, n, b, n, d); });
  PrecisionRecall pr;
  const double t_pr = seconds([&] { pr = precision_recall(a, n, b, n, d); });
  std::printf("N %lld, D %lld\n", static_cast<long long>(n), static_cast<long long>(d));
  std::printf("statistics of both sets (batches of 256)  %7.2f s\n", t_stats);
  std::printf("Frechet distance %.4f                  %7.2f s\n", fd, t_fd);
  std::printf("KID %.5f +- %.5f (%lld x %lld)       %7.2f s\n", kid.mean, kid.std, static_cast<long long>(kid.subsets),
              static_cast<long long>(kid.subset_size), t_kid);
  std::printf("precision %.4f recall %.4f (k = 3)      %7.2f s\n", pr.precision, pr.recall, t_pr);
  return 0;
}
