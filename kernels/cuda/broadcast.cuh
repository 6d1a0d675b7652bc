// b broadcast into a (numpy rules, b's rank <= a's), as kernels need it: a's axes collapsed into
// runs along which b either follows a ("kept") or repeats ("broadcast"). Forward kernels map an
// element of a to its element of b with b_index(); backward passes sum a-shaped values into b with
// reduce_into_b(), deterministically.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "engine/dtype.h"
#include "engine/shape.h"

namespace ddpm::cuda {

struct BroadcastAxes {
  static constexpr int kMaxAxes = 8;
  int count = 0;                    // collapsed axes, outermost first; kinds alternate
  int64_t dim[kMaxAxes] = {};
  int64_t a_stride[kMaxAxes] = {};  // a is contiguous
  int64_t b_stride[kMaxAxes] = {};  // 0 on a broadcast axis
  bool kept[kMaxAxes] = {};
  int64_t a_numel = 1, b_numel = 1;
  bool b_is_suffix = false;  // b holds a's trailing axes: b index = a index mod b_numel

  // Throws (naming op) unless b broadcasts into a.
  static BroadcastAxes make(const char* op, const Shape& a, const Shape& b);

  __host__ __device__ int64_t b_index(int64_t i) const {
    if (b_is_suffix) return i % b_numel;
    int64_t j = 0;
    for (int k = count - 1; k >= 0; --k) {
      j += (i % dim[k]) * b_stride[k];
      i /= dim[k];
    }
    return j;
  }
};

// out[j] (= or +=) sum over the elements i of a that meet b's element j of g[i] * w[i], where
// w = factor (a_values null) or a_values[i] (mul's gradient for b). g and a_values are a-shaped,
// out b-shaped, all of `dtype` (float32 or bfloat16). Sums are in double, in a fixed order that
// depends only on the shapes (two stages, no atomics), so results are reproducible run to run.
void reduce_into_b(DType dtype, const BroadcastAxes& axes, const void* g, const void* a_values,
                   float factor, void* out, bool accumulate);

}  // namespace ddpm::cuda
