// out[c] (=|+=) sum over r of m[r, c] for a row-major [rows, cols] matrix: the bias gradient of
// linear and conv2d. Sums in double; threads keep partial rows.
#pragma once
#include <vector>

#include "kernels/cpu/cpu_backend.h"

namespace ddpm::cpu {

template <class T>
void column_sums(const T* m, int64_t rows, int64_t cols, T* out, bool accumulate) {
  std::vector<double> total(static_cast<size_t>(cols), 0.0);
#pragma omp parallel if (rows * cols > kParallelGrain)
  {
    std::vector<double> partial(static_cast<size_t>(cols), 0.0);
#pragma omp for nowait
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) partial[static_cast<size_t>(c)] += static_cast<double>(m[r * cols + c]);
#pragma omp critical
    for (int64_t c = 0; c < cols; ++c) total[static_cast<size_t>(c)] += partial[static_cast<size_t>(c)];
  }
  for (int64_t c = 0; c < cols; ++c) put(out, c, static_cast<T>(total[static_cast<size_t>(c)]), accumulate);
}

// Fills every row of a row-major [rows, cols] matrix with v[0..cols).
template <class T>
void broadcast_rows(const T* v, int64_t rows, int64_t cols, T* m) {
#pragma omp parallel for if (rows * cols > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) m[r * cols + c] = v[c];
}

}  // namespace ddpm::cpu
