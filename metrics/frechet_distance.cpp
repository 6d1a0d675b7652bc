// Why the eigenvalue route equals pytorch-fid's sqrtm route. pytorch-fid computes
// trace(sqrtm(S1 S2)) with a general (Schur-based) matrix square root and drops the imaginary
// round-off. For symmetric PSD S1 = E^T W E (E orthogonal, rows eigenvectors, W >= 0 diagonal),
// let C = W^{1/2} E. Then C^T C = S1 and
//   S1 S2 = C^T (C S2 C^T) C^{-T}   (when S1 is invertible),
// so S1 S2 is similar to M = C S2 C^T, which is symmetric PSD (and orthogonally similar to
// S1^{1/2} S2 S1^{1/2}). S1 S2 therefore has the real eigenvalues lambda_i >= 0 of M, its
// principal square root has eigenvalues sqrt(lambda_i), and the trace is sum_i sqrt(lambda_i).
// When S1 is singular the same holds by continuity (both sides are continuous in S1), which is why
// this route needs no eps * I offset: M is always symmetric PSD, so only round-off can make an
// eigenvalue negative, and those (tiny) values are clamped to 0.
#include "metrics/frechet_distance.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "kernels/cpu/blas.h"
#include "metrics/symmetric_eigen.h"

namespace ddpm {

double trace_sqrt_product(const std::vector<double>& s1, const std::vector<double>& s2, int64_t n) {
  const size_t d = static_cast<size_t>(n);
  const SymmetricEigen e = symmetric_eigen(s1, n, true);
  // c [n, n] = W^{1/2} E: row i is eigenvector i scaled by sqrt(max(w_i, 0)).
  std::vector<double> c = e.vectors;
  for (size_t i = 0; i < d; ++i) {
    const double scale = std::sqrt(std::max(e.values[i], 0.0));
    for (size_t j = 0; j < d; ++j) c[i * d + j] *= scale;
  }
  // m = c s2 c^T, through t = c s2.
  std::vector<double> t(d * d), m(d * d);
  cpu::gemm(false, false, n, n, n, 1.0, c.data(), n, s2.data(), n, 0.0, t.data(), n);
  cpu::gemm(false, true, n, n, n, 1.0, t.data(), n, c.data(), n, 0.0, m.data(), n);
  for (size_t i = 0; i < d; ++i)  // symmetrise away GEMM round-off
    for (size_t j = 0; j < i; ++j) m[i * d + j] = m[j * d + i] = 0.5 * (m[i * d + j] + m[j * d + i]);
  double trace = 0;
  for (double lambda : symmetric_eigen(std::move(m), n, false).values) trace += std::sqrt(std::max(lambda, 0.0));
  return trace;
}

double frechet_distance(const GaussianStats& a, const GaussianStats& b) {
  DDPM_CHECK(a.dim == b.dim && a.dim >= 1, "frechet_distance: the two feature sets have different dimensions (",
             a.dim, " and ", b.dim, "); compute both with the same feature network");
  const size_t d = static_cast<size_t>(a.dim);
  DDPM_CHECK(a.mu.size() == d && b.mu.size() == d && a.sigma.size() == d * d && b.sigma.size() == d * d,
             "frechet_distance: mu must have ", d, " values and sigma ", d * d);
  double mean_term = 0, trace_a = 0, trace_b = 0;
  for (size_t i = 0; i < d; ++i) {
    const double diff = a.mu[i] - b.mu[i];
    mean_term += diff * diff;
    trace_a += a.sigma[i * d + i];
    trace_b += b.sigma[i * d + i];
  }
  for (double v : a.sigma) DDPM_CHECK(std::isfinite(v), "frechet_distance: the first covariance has non-finite values");
  for (double v : b.sigma) DDPM_CHECK(std::isfinite(v), "frechet_distance: the second covariance has non-finite values");
  return mean_term + trace_a + trace_b - 2.0 * trace_sqrt_product(a.sigma, b.sigma, a.dim);
}

}  // namespace ddpm
