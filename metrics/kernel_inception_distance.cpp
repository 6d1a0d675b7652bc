#include "metrics/kernel_inception_distance.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/error.h"
#include "engine/philox.h"
#include "kernels/cpu/blas.h"

namespace ddpm {

std::vector<int64_t> random_subset(int64_t n, int64_t m, uint64_t seed, uint64_t stream) {
  DDPM_CHECK(m >= 0 && m <= n, "random_subset: cannot draw ", m, " of ", n, " without replacement");
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  for (int64_t i = 0; i < m; ++i) {
    // Position i takes a uniform pick among the n - i not yet drawn (a 24-bit uniform is plenty
    // fine for any set this code sees; the pick is clamped against round-up at the top).
    const double u = philox::uniform(seed, stream, static_cast<uint64_t>(i));
    const int64_t j = std::min(n - 1, i + static_cast<int64_t>(u * static_cast<double>(n - i)));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  order.resize(static_cast<size_t>(m));
  return order;
}

namespace {
// rows [m, d] of `set` picked by `index`.
std::vector<float> gather_rows(const std::vector<float>& set, const std::vector<int64_t>& index, int64_t d) {
  std::vector<float> out(index.size() * static_cast<size_t>(d));
  for (size_t i = 0; i < index.size(); ++i)
    std::copy_n(set.data() + index[i] * d, d, out.data() + i * static_cast<size_t>(d));
  return out;
}

// sum_{i, j >= first(i)} k over dots [m, m], as per-row sums added in order, so the result does
// not depend on how OpenMP splits the rows.
double kernel_sum(const std::vector<float>& dots, int64_t m, int64_t d, bool strict_upper) {
  std::vector<double> rows(static_cast<size_t>(m), 0.0);
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t i = 0; i < m; ++i) {
    double row = 0;
    for (int64_t j = strict_upper ? i + 1 : 0; j < m; ++j) {
      const double base = static_cast<double>(dots[static_cast<size_t>(i * m + j)]) / static_cast<double>(d) + 1.0;
      row += base * base * base;
    }
    rows[static_cast<size_t>(i)] = row;
  }
  double total = 0;
  for (double r : rows) total += r;
  return total;
}

// Sum over k(x_i, y_j) for all i, j, in float64; the dot products from one float32 GEMM x y^T.
double cross_kernel_sum(const std::vector<float>& x, const std::vector<float>& y, int64_t m, int64_t d) {
  std::vector<float> dots(static_cast<size_t>(m * m));
  cpu::gemm(false, true, m, m, d, 1.0f, x.data(), d, y.data(), d, 0.0f, dots.data(), m);
  return kernel_sum(dots, m, d, false);
}

// Sum over k(x_i, x_j) for i != j: twice the strict upper triangle of x x^T, which one SYRK
// computes at half a GEMM's cost.
double self_kernel_sum(const std::vector<float>& x, int64_t m, int64_t d) {
  std::vector<float> dots(static_cast<size_t>(m * m));
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, static_cast<blasint>(m), static_cast<blasint>(d), 1.0f, x.data(),
              static_cast<blasint>(d), 0.0f, dots.data(), static_cast<blasint>(m));
  return 2 * kernel_sum(dots, m, d, true);
}
}  // namespace

double polynomial_mmd2(const std::vector<float>& x, const std::vector<float>& y, int64_t m, int64_t d) {
  DDPM_CHECK(m >= 2 && x.size() == static_cast<size_t>(m * d) && y.size() == x.size(),
             "kid: MMD^2 needs two [m, d] sets with m >= 2");
  const double md = static_cast<double>(m);
  const double xx = self_kernel_sum(x, m, d), yy = self_kernel_sum(y, m, d), xy = cross_kernel_sum(x, y, m, d);
  return (xx + yy) / (md * (md - 1)) - 2.0 * xy / (md * md);
}

KidResult kernel_inception_distance(const std::vector<float>& a, int64_t na, const std::vector<float>& b, int64_t nb,
                                    int64_t d, const KidOptions& o) {
  DDPM_CHECK(d >= 1 && a.size() == static_cast<size_t>(na * d) && b.size() == static_cast<size_t>(nb * d),
             "kid: the feature arrays do not match their counts and dimension ", d);
  DDPM_CHECK(o.subsets >= 1, "kid: the number of subsets must be at least 1, got ", o.subsets);
  const int64_t m = std::min({o.subset_size, na, nb});
  DDPM_CHECK(m >= 2, "kid: each set needs at least 2 features (got ", na, " and ", nb, ", subset size ", o.subset_size,
             ")");
  KidResult r;
  r.subsets = o.subsets;
  r.subset_size = m;
  std::vector<double> values;
  for (int64_t s = 0; s < o.subsets; ++s) {
    const std::vector<float> x = gather_rows(a, random_subset(na, m, o.seed, 2 * static_cast<uint64_t>(s)), d);
    const std::vector<float> y = gather_rows(b, random_subset(nb, m, o.seed, 2 * static_cast<uint64_t>(s) + 1), d);
    values.push_back(polynomial_mmd2(x, y, m, d));
  }
  for (double v : values) r.mean += v;
  r.mean /= static_cast<double>(values.size());
  for (double v : values) r.std += (v - r.mean) * (v - r.mean);
  r.std = std::sqrt(r.std / static_cast<double>(values.size()));
  return r;
}

}  // namespace ddpm
