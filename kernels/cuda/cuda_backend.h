// The CUDA backend: every op of engine/ops.def on the GPU, for float32 and bfloat16 activations
// (float32 accumulation). One file per op family; shared device helpers in device_utils.cuh.
#pragma once
#include "engine/backend.h"

namespace ddpm {

class CudaBackend final : public Backend {
 public:
  Device device() const override { return Device::CUDA; }
#define DDPM_OP(name)                                     \
  void name##_forward(const name##_fwd& args) override;  \
  void name##_backward(const name##_bwd& args) override;
#define DDPM_KERNEL(name) void name(const name##_args& args) override;
#include "engine/ops.def"
};

}  // namespace ddpm
