// Improved precision and recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric
// for Assessing Generative Models"): each set's manifold is the union of balls around its
// features, each ball reaching the centre's k-th nearest neighbour in the same set (k = 3).
//   precision = the fraction of generated features inside the real manifold,
//   recall    = the fraction of real features inside the generated manifold.
// "Inside" is distance <= radius. Pairwise distances come from float32 GEMMs in row blocks, so
// 10k x 10k never needs all distances at once.
#pragma once
#include <cstdint>
#include <vector>

namespace ddpm {

struct PrecisionRecall {
  double precision = 0, recall = 0;
  int64_t k = 0;
};

// Squared distance from each of the n features [n, d] to its k-th nearest other feature in the set.
std::vector<float> knn_radii_squared(const std::vector<float>& set, int64_t n, int64_t d, int64_t k);

// The fraction of queries [nq, d] within distance sqrt(radii_squared[j]) of some centre j [nc, d].
double fraction_covered(const std::vector<float>& queries, int64_t nq, const std::vector<float>& centres, int64_t nc,
                        const std::vector<float>& radii_squared, int64_t d);

PrecisionRecall precision_recall(const std::vector<float>& real, int64_t n_real, const std::vector<float>& fake,
                                 int64_t n_fake, int64_t d, int64_t k = 3);

}  // namespace ddpm
