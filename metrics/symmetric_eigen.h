// Eigen-decomposition of a real symmetric matrix through LAPACK's dsyevd (divide and conquer),
// which OpenBLAS ships: the one piece of dense linear algebra the Fréchet distance needs.
#pragma once
#include <cstdint>
#include <vector>

namespace ddpm {

struct SymmetricEigen {
  std::vector<double> values;   // [n] ascending
  std::vector<double> vectors;  // [n, n] row i = the unit eigenvector of values[i] (empty if not asked for)
};

// a [n, n] symmetric, row-major (only its values matter, so either triangle may be read).
// Throws if LAPACK reports a failure.
SymmetricEigen symmetric_eigen(std::vector<double> a, int64_t n, bool with_vectors);

}  // namespace ddpm
