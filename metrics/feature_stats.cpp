#include "metrics/feature_stats.h"

#include "engine/error.h"
#include "kernels/cpu/blas.h"

namespace ddpm {

FeatureStats::FeatureStats(int64_t dim, bool keep_features)
    : dim_(dim), keep_(keep_features), mean_(static_cast<size_t>(dim), 0.0),
      scatter_(static_cast<size_t>(dim * dim), 0.0) {
  DDPM_CHECK(dim >= 1, "feature statistics: the feature dimension must be at least 1, got ", dim);
}

void FeatureStats::add(const float* rows, int64_t n) {
  if (n <= 0) return;
  const size_t d = static_cast<size_t>(dim_);
  // The batch's mean and its rows centred on it, in float64: centred [n, D].
  std::vector<double> batch_mean(d, 0.0), centred(static_cast<size_t>(n) * d);
  for (int64_t i = 0; i < n; ++i)
    for (size_t j = 0; j < d; ++j) batch_mean[j] += rows[static_cast<size_t>(i) * d + j];
  for (double& m : batch_mean) m /= static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i)
    for (size_t j = 0; j < d; ++j)
      centred[static_cast<size_t>(i) * d + j] = rows[static_cast<size_t>(i) * d + j] - batch_mean[j];
  // scatter += centred^T centred (the batch's own scatter), upper triangle only (SYRK: half a GEMM).
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<blasint>(dim_), static_cast<blasint>(n), 1.0,
              centred.data(), static_cast<blasint>(dim_), 1.0, scatter_.data(), static_cast<blasint>(dim_));
  // + delta delta^T * n_a n_b / (n_a + n_b), delta = batch mean - running mean; then the new mean.
  const double na = static_cast<double>(count_), nb = static_cast<double>(n), total = na + nb;
  std::vector<double> delta(d);
  for (size_t j = 0; j < d; ++j) delta[j] = batch_mean[j] - mean_[j];
  const double w = na * nb / total;
  if (w > 0)
    for (size_t r = 0; r < d; ++r)
      for (size_t c = r; c < d; ++c) scatter_[r * d + c] += w * delta[r] * delta[c];
  for (size_t j = 0; j < d; ++j) mean_[j] += delta[j] * nb / total;
  count_ += n;
  if (keep_) features_.insert(features_.end(), rows, rows + static_cast<size_t>(n) * d);
}

void FeatureStats::add(const Tensor& features) {
  DDPM_CHECK(features.rank() == 2 && features.dim(1) == dim_ && features.dtype() == DType::F32 &&
                 features.device() == Device::CPU,
             "feature statistics: expected float32 [N, ", dim_, "] features on the CPU, got ", features.describe());
  add(features.data<float>(), features.dim(0));
}

GaussianStats FeatureStats::gaussian() const {
  DDPM_CHECK(count_ >= 2, "feature statistics: a covariance needs at least 2 feature vectors, got ", count_);
  GaussianStats g;
  g.dim = dim_;
  g.mu = mean_;
  g.sigma = scatter_;
  const size_t d = static_cast<size_t>(dim_);
  for (size_t r = 0; r < d; ++r)
    for (size_t c = r; c < d; ++c) g.sigma[c * d + r] = g.sigma[r * d + c] /= static_cast<double>(count_ - 1);
  return g;
}

}  // namespace ddpm
