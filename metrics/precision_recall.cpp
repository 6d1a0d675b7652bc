#include "metrics/precision_recall.h"

#include <algorithm>
#include <functional>

#include "engine/error.h"
#include "kernels/cpu/blas.h"

namespace ddpm {

namespace {
constexpr int64_t kBlockRows = 1024;

std::vector<float> squared_norms(const std::vector<float>& x, int64_t n, int64_t d) {
  std::vector<float> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (int64_t j = 0; j < d; ++j) s += static_cast<double>(x[i * d + j]) * x[i * d + j];
    out[static_cast<size_t>(i)] = static_cast<float>(s);
  }
  return out;
}

// Calls visit(first_row, rows, dist) for blocks of rows of `a`, with dist [rows, nb] the squared
// distances ||a_i - b_j||^2 = ||a_i||^2 + ||b_j||^2 - 2 a_i.b_j (clamped at 0 against round-off).
void for_distance_blocks(const std::vector<float>& a, int64_t na, const std::vector<float>& b, int64_t nb, int64_t d,
                         const std::function<void(int64_t, int64_t, const std::vector<float>&)>& visit) {
  const std::vector<float> norm_a = squared_norms(a, na, d), norm_b = squared_norms(b, nb, d);
  std::vector<float> dist(static_cast<size_t>(std::min(na, kBlockRows) * nb));
  for (int64_t first = 0; first < na; first += kBlockRows) {
    const int64_t rows = std::min(kBlockRows, na - first);
    cpu::gemm(false, true, rows, nb, d, -2.0f, a.data() + first * d, d, b.data(), d, 0.0f, dist.data(), nb);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < nb; ++j) {
        float& v = dist[static_cast<size_t>(i * nb + j)];
        v = std::max(0.0f, v + norm_a[static_cast<size_t>(first + i)] + norm_b[static_cast<size_t>(j)]);
      }
    visit(first, rows, dist);
  }
}
}  // namespace

std::vector<float> knn_radii_squared(const std::vector<float>& set, int64_t n, int64_t d, int64_t k) {
  DDPM_CHECK(k >= 1 && n > k, "precision/recall: the k-th nearest neighbour (k = ", k, ") needs more than ", k,
             " features in each set, got ", n);
  DDPM_CHECK(set.size() == static_cast<size_t>(n * d), "precision/recall: the feature array does not match [", n,
             ", ", d, "]");
  std::vector<float> radii(static_cast<size_t>(n));
  for_distance_blocks(set, n, set, n, d, [&](int64_t first, int64_t rows, const std::vector<float>& dist) {
#pragma omp parallel
    {
      std::vector<float> row(static_cast<size_t>(n));
#pragma omp for schedule(static)
      for (int64_t i = 0; i < rows; ++i) {
        std::copy_n(dist.data() + i * n, n, row.data());
        row[static_cast<size_t>(first + i)] = 0.0f;  // itself: exactly 0, then the k nearest others
        std::nth_element(row.begin(), row.begin() + k, row.end());
        radii[static_cast<size_t>(first + i)] = row[static_cast<size_t>(k)];
      }
    }
  });
  return radii;
}

double fraction_covered(const std::vector<float>& queries, int64_t nq, const std::vector<float>& centres, int64_t nc,
                        const std::vector<float>& radii_squared, int64_t d) {
  DDPM_CHECK(nq >= 1 && queries.size() == static_cast<size_t>(nq * d) && centres.size() == static_cast<size_t>(nc * d) &&
                 radii_squared.size() == static_cast<size_t>(nc),
             "precision/recall: the feature arrays do not match their counts and dimension ", d);
  int64_t covered = 0;
  for_distance_blocks(queries, nq, centres, nc, d, [&](int64_t, int64_t rows, const std::vector<float>& dist) {
#pragma omp parallel for schedule(static) reduction(+ : covered)
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < nc; ++j)
        if (dist[static_cast<size_t>(i * nc + j)] <= radii_squared[static_cast<size_t>(j)]) {
          ++covered;
          break;
        }
  });
  return static_cast<double>(covered) / static_cast<double>(nq);
}

PrecisionRecall precision_recall(const std::vector<float>& real, int64_t n_real, const std::vector<float>& fake,
                                 int64_t n_fake, int64_t d, int64_t k) {
  PrecisionRecall r;
  r.k = k;
  r.precision = fraction_covered(fake, n_fake, real, n_real, knn_radii_squared(real, n_real, d, k), d);
  r.recall = fraction_covered(real, n_real, fake, n_fake, knn_radii_squared(fake, n_fake, d, k), d);
  return r;
}

}  // namespace ddpm
