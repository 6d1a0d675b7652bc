// The backend interface, generated from engine/ops.def. A backend implements every op's forward
// and backward and every plain kernel; the pure virtuals make a missing one a build error.
#pragma once
#include "engine/device.h"
#include "engine/op_args.h"
#include "engine/op_kind.h"

namespace ddpm {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;

#define DDPM_OP(name)                                     \
  virtual void name##_forward(const name##_fwd& args) = 0; \
  virtual void name##_backward(const name##_bwd& args) = 0;
#define DDPM_KERNEL(name) virtual void name(const name##_args& args) = 0;
#include "engine/ops.def"
};

Backend& cpu_backend();
Backend& cuda_backend();  // throws when the build has no CUDA backend
Backend& backend_for(Device device);

}  // namespace ddpm
