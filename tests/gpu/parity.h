// The CPU-versus-CUDA parity harness. A parity test runs one backend entry (forward or backward)
// on the CPU in float64 and on the GPU (float32 or bfloat16) from the same inputs, writes the GPU
// outputs into guarded buffers, and requires: the guard bytes untouched, no NaN/Inf, and the
// normalized error max|gpu - cpu| / max|cpu| within the bound stated for the op and dtype.
#pragma once
#include <memory>
#include <string>

#include "engine/op_args.h"
#include "engine/tensor.h"
#include "tests/support.h"

namespace ddpm::test {

// A CUDA tensor inside a larger allocation; the bytes before and after it hold a pattern that a
// kernel writing out of bounds would change.
struct Guarded {
  Tensor tensor;
  size_t guard_bytes = 0;
  bool guards_intact() const;
};
Guarded guarded_empty(const Shape& shape, DType dtype);
// A guarded CUDA copy of `values` (for accumulating gradient slots, which kernels read).
Guarded guarded_copy(const Tensor& values, DType dtype);

// The GPU copy of a CPU tensor in `dtype` (bfloat16 rounds on the host).
Tensor to_cuda(const Tensor& cpu, DType dtype);
// What the GPU sees of `cpu` in `dtype`, back on the CPU as float64: the reference input, so
// that the comparison measures the kernel and not the input rounding.
Tensor as_seen(const Tensor& cpu, DType dtype);

// normalized_error and all_finite are in tests/support.h; the bounds apply to normalized_error.

// REQUIREs guards intact, finite values, the shape, and normalized_error <= bound; `what` names
// the op, dtype and shape in the failure message.
void require_parity(const Guarded& got, const Tensor& want, double bound, const std::string& what,
                    double floor = 0);

// One input as each backend sees it: float64 on the CPU (rounded through `dtype`), `dtype` on the GPU.
struct In {
  Tensor cpu, gpu;
};
In input(const Tensor& x, DType dtype);

// One output or gradient slot on both backends: float64 on the CPU, guarded on the GPU. A slot
// that accumulates starts from the same random values on both; a written one starts as NaN on the
// GPU, so a kernel that reads it instead of writing it fails the finite check.
struct Out {
  Tensor cpu;
  Guarded gpu;
  bool accumulate = false;
  GradSlot cpu_slot() const { return {cpu, accumulate}; }
  GradSlot gpu_slot() const { return {gpu.tensor, accumulate}; }
};
Out output(const Shape& shape, DType dtype, bool accumulate = false, uint64_t stream = 900);

// Bounds on the normalized error, by dtype: float32 kernels accumulate in float32 (error grows
// with the reduction length), bfloat16 ones store activations with 8 significand bits.
constexpr double kBoundF32 = 1e-5;
constexpr double kBoundBF16 = 2e-2;

}  // namespace ddpm::test
