// Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs"), as torch-fidelity
// defines it: the unbiased estimate of MMD^2 with the polynomial kernel
//   k(x, y) = (x.y / d + 1)^3
// on `subsets` random pairs of subsets of `subset_size` features each (drawn without replacement,
// independently per subset), reported as the mean and the population standard deviation over the
// subsets. Per subset pair X, Y of size m:
//   MMD^2 = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (m (m - 1))
//           - 2 sum_{i, j} k(x_i, y_j) / m^2.
#pragma once
#include <cstdint>
#include <vector>

namespace ddpm {

struct KidOptions {
  int64_t subsets = 100;       // torch-fidelity's kid_subsets
  int64_t subset_size = 1000;  // torch-fidelity's kid_subset_size; capped at the smaller set's size
  uint64_t seed = 0;           // Philox key of the subset draws
};

struct KidResult {
  double mean = 0, std = 0;
  int64_t subsets = 0, subset_size = 0;
};

// a [na, d], b [nb, d] float32 row-major. Subset s of `a` takes the first m entries of a Philox
// Fisher-Yates shuffle on stream 2s, that of `b` on stream 2s + 1.
KidResult kernel_inception_distance(const std::vector<float>& a, int64_t na, const std::vector<float>& b, int64_t nb,
                                    int64_t d, const KidOptions& options = {});

// The unbiased MMD^2 above of one pair of sets x, y [m, d] float32 row-major (m >= 2).
double polynomial_mmd2(const std::vector<float>& x, const std::vector<float>& y, int64_t m, int64_t d);

// The first m indices of a Philox-driven Fisher-Yates shuffle of 0..n-1: m draws without replacement.
std::vector<int64_t> random_subset(int64_t n, int64_t m, uint64_t seed, uint64_t stream);

}  // namespace ddpm
