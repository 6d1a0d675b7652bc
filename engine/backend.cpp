#include "engine/backend.h"

namespace ddpm {

const char* op_name(OpKind kind) {
  switch (kind) {
#define DDPM_OP(name) \
  case OpKind::name:  \
    return #name;
#define DDPM_KERNEL(name) \
  case OpKind::name:      \
    return #name;
#define DDPM_COMPOSITE(name) \
  case OpKind::name:         \
    return #name;
#include "engine/ops.def"
  }
  return "?";
}

namespace detail {
Backend& counted(Backend& backend);  // engine/backend_call_counter.cpp
}

Backend& backend_for(Device device) {
  switch (device) {
    case Device::CPU: return detail::counted(cpu_backend());
    case Device::CUDA: return detail::counted(cuda_backend());
  }
  return cpu_backend();
}

}  // namespace ddpm
