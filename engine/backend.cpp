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

Backend& backend_for(Device device) {
  switch (device) {
    case Device::CPU: return cpu_backend();
    case Device::CUDA: return cuda_backend();
  }
  return cpu_backend();
}

}  // namespace ddpm
