// PLACEHOLDER: the CUDA kernels of this family are being written; each entry throws.
#include "kernels/cuda/cuda_backend.h"

namespace ddpm {

void CudaBackend::linear_forward(const linear_fwd&) { detail::fail("CUDA linear: not implemented yet"); }
void CudaBackend::linear_backward(const linear_bwd&) { detail::fail("CUDA linear: not implemented yet"); }

}  // namespace ddpm
