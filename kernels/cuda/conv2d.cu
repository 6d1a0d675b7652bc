// PLACEHOLDER: the CUDA kernels of this family are being written; each entry throws.
#include "kernels/cuda/cuda_backend.h"

namespace ddpm {

void CudaBackend::conv2d_forward(const conv2d_fwd&) { detail::fail("CUDA conv2d: not implemented yet"); }
void CudaBackend::conv2d_backward(const conv2d_bwd&) { detail::fail("CUDA conv2d: not implemented yet"); }

}  // namespace ddpm
