#include "models/denoiser.h"

#include "engine/ops.h"

namespace ddpm {

Tensor time_features(const Tensor& t, int dim, DType dtype) {
  const DType real = dtype == DType::F64 ? DType::F64 : DType::F32;
  return convert(timestep_embedding(t.to(real), dim), dtype);
}

}  // namespace ddpm
