// The CPU reference backend: every op of engine/ops.def, templated on the scalar type (float,
// double), parallel with OpenMP, GEMMs through OpenBLAS. Each op family lives in its own file.
#pragma once
#include <cstdint>

#include "engine/backend.h"
#include "engine/philox.h"

namespace ddpm {

class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::CPU; }
#define DDPM_OP(name)                                      \
  void name##_forward(const name##_fwd& args) override;   \
  void name##_backward(const name##_bwd& args) override;
#define DDPM_KERNEL(name) void name(const name##_args& args) override;
#include "engine/ops.def"
};

namespace cpu {

// Calls fn(float{}) or fn(double{}) for the tensor's dtype; bfloat16 is CUDA-only storage.
template <class Fn>
void dispatch_float(DType dtype, const char* op, Fn&& fn) {
  switch (dtype) {
    case DType::F32: fn(float{}); return;
    case DType::F64: fn(double{}); return;
    case DType::BF16:
      detail::fail(op, ": bfloat16 is storage for CUDA mixed precision; the CPU backend computes in "
                       "float32 or float64 (convert with .to(DType::F32))");
  }
}

// Writes (=) or adds (+=) into a gradient slot, following the GradSlot rule.
template <class T>
inline void put(T* dst, int64_t i, T value, bool accumulate) {
  if (accumulate)
    dst[i] += value;
  else
    dst[i] = value;
}

// Below this many elements a loop runs on one thread: the fork/join costs more than it saves.
constexpr int64_t kParallelGrain = 1 << 14;

// body(i, draw) for every i in [0, n), draw = the Philox normal (or uniform) of element
// offset + i under (seed, stream): one Philox evaluation per four elements, in parallel. The
// offset lets a shard of a batch draw exactly what its rows draw in the whole batch.
template <class Body>
void for_each_draw(int64_t n, bool normal, uint64_t seed, uint64_t stream, Body body, uint64_t offset = 0) {
  const int64_t first = static_cast<int64_t>(offset / 4), last = static_cast<int64_t>((offset + n + 3) / 4);
  const int64_t begin = static_cast<int64_t>(offset);
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t b = first; b < last; ++b) {
    float draws[4];
    if (normal)
      philox::normal4(seed, stream, static_cast<uint64_t>(b), draws);
    else
      philox::uniform4(seed, stream, static_cast<uint64_t>(b), draws);
    for (int w = 0; w < 4; ++w) {
      const int64_t i = 4 * b + w - begin;
      if (i >= 0 && i < n) body(i, draws[w]);
    }
  }
}

}  // namespace cpu
}  // namespace ddpm
