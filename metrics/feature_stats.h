// Streaming statistics of feature vectors: the float64 mean and covariance that the Fréchet
// distance needs, accumulated batch by batch, and optionally the raw features (float32) that KID
// and precision/recall need.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace ddpm {

// A Gaussian fitted to features: what FID compares (and what pytorch-fid's .npz holds).
struct GaussianStats {
  int64_t dim = 0;
  std::vector<double> mu;     // [D]
  std::vector<double> sigma;  // [D, D], unbiased (divided by count - 1, as numpy.cov)
};

class FeatureStats {
 public:
  FeatureStats(int64_t dim, bool keep_features);

  // rows [n, D] float32, row-major. Merges the batch's own mean and centred scatter into the
  // running ones (Chan, Golub & LeVeque's pairwise update), so no sum of squares of uncentred
  // values is ever formed and large means cost no precision.
  void add(const float* rows, int64_t n);
  void add(const Tensor& features);  // [n, D] float32 on the CPU

  int64_t count() const { return count_; }
  int64_t dim() const { return dim_; }
  GaussianStats gaussian() const;  // needs count >= 2
  // [count, D] float32 in the order added; empty unless keep_features.
  const std::vector<float>& features() const { return features_; }

 private:
  int64_t dim_, count_ = 0;
  bool keep_;
  std::vector<double> mean_;     // [D]
  std::vector<double> scatter_;  // [D, D] sum of (x - mean)(x - mean)^T; upper triangle kept
  std::vector<float> features_;
};

}  // namespace ddpm
