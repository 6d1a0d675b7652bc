// PLACEHOLDER: the CUDA kernels of this family are being written; each entry throws.
#include "kernels/cuda/cuda_backend.h"

namespace ddpm {

void CudaBackend::adam_step(const adam_step_args&) { detail::fail("CUDA adam_step: not implemented yet"); }
void CudaBackend::ema_update(const ema_update_args&) { detail::fail("CUDA ema_update: not implemented yet"); }

}  // namespace ddpm
