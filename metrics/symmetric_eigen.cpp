#include "metrics/symmetric_eigen.h"

#include <algorithm>
#include <cstddef>

#include "engine/error.h"

// LAPACK's Fortran entry point (in OpenBLAS). The two trailing arguments are the hidden lengths
// of the character arguments that gfortran-compiled code expects.
extern "C" void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w,
                        double* work, const int* lwork, int* iwork, const int* liwork, int* info, size_t jobz_len,
                        size_t uplo_len);

namespace ddpm {

SymmetricEigen symmetric_eigen(std::vector<double> a, int64_t n, bool with_vectors) {
  DDPM_CHECK(n >= 1 && a.size() == static_cast<size_t>(n * n), "symmetric_eigen: expected an [", n, ", ", n,
             "] matrix, got ", a.size(), " values");
  const char jobz = with_vectors ? 'V' : 'N', uplo = 'U';
  const int size = static_cast<int>(n);
  SymmetricEigen out;
  out.values.resize(static_cast<size_t>(n));
  int info = 0, lwork = -1, liwork = -1, iwork_query = 0;
  double work_query = 0;
  dsyevd_(&jobz, &uplo, &size, a.data(), &size, out.values.data(), &work_query, &lwork, &iwork_query, &liwork, &info,
          1, 1);
  DDPM_CHECK(info == 0, "symmetric_eigen: LAPACK dsyevd workspace query failed (info ", info, ")");
  lwork = static_cast<int>(work_query) + 1;
  liwork = std::max(iwork_query, 1);
  std::vector<double> work(static_cast<size_t>(lwork));
  std::vector<int> iwork(static_cast<size_t>(liwork));
  dsyevd_(&jobz, &uplo, &size, a.data(), &size, out.values.data(), work.data(), &lwork, iwork.data(), &liwork, &info,
          1, 1);
  DDPM_CHECK(info == 0, "symmetric_eigen: LAPACK dsyevd failed to converge (info ", info, ") on a ", n, "x", n,
             " matrix; check the features for NaN or infinite values");
  // LAPACK is column-major: column j of its result is eigenvector j, i.e. row j of our row-major array.
  if (with_vectors) out.vectors = std::move(a);
  return out;
}

}  // namespace ddpm
