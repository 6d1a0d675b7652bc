#include "metrics/inception_score.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"

namespace ddpm {

InceptionScore inception_score(const std::vector<float>& logits, int64_t n, int64_t k, int64_t splits) {
  DDPM_CHECK(k >= 1 && logits.size() == static_cast<size_t>(n * k), "inception score: the logits do not match [", n,
             ", ", k, "]");
  DDPM_CHECK(splits >= 1 && n >= splits, "inception score: ", splits, " splits need at least ", splits,
             " samples, got ", n);
  // p [n, k] = softmax of each row, in float64 (shifted by the row's maximum).
  std::vector<double> p(static_cast<size_t>(n * k));
  for (int64_t i = 0; i < n; ++i) {
    const float* row = logits.data() + i * k;
    const double top = *std::max_element(row, row + k);
    double total = 0;
    for (int64_t j = 0; j < k; ++j) total += p[static_cast<size_t>(i * k + j)] = std::exp(row[j] - top);
    for (int64_t j = 0; j < k; ++j) p[static_cast<size_t>(i * k + j)] /= total;
  }
  const int64_t per_split = n / splits;
  std::vector<double> scores;
  for (int64_t s = 0; s < splits; ++s) {
    const int64_t first = s * per_split;
    std::vector<double> marginal(static_cast<size_t>(k), 0.0);
    for (int64_t i = first; i < first + per_split; ++i)
      for (int64_t j = 0; j < k; ++j) marginal[static_cast<size_t>(j)] += p[static_cast<size_t>(i * k + j)];
    for (double& m : marginal) m /= static_cast<double>(per_split);
    double kl = 0;
    for (int64_t i = first; i < first + per_split; ++i)
      for (int64_t j = 0; j < k; ++j) {
        const double q = p[static_cast<size_t>(i * k + j)];
        if (q > 0) kl += q * (std::log(q) - std::log(marginal[static_cast<size_t>(j)]));
      }
    scores.push_back(std::exp(kl / static_cast<double>(per_split)));
  }
  InceptionScore r;
  r.splits = splits;
  for (double v : scores) r.mean += v;
  r.mean /= static_cast<double>(splits);
  for (double v : scores) r.std += (v - r.mean) * (v - r.mean);
  r.std = std::sqrt(r.std / static_cast<double>(splits));
  return r;
}

}  // namespace ddpm
