// PLACEHOLDER: the CUDA kernels of this family are being written; each entry throws.
#include "kernels/cuda/cuda_backend.h"

namespace ddpm {

void CudaBackend::sum_forward(const sum_fwd&) { detail::fail("CUDA sum: not implemented yet"); }
void CudaBackend::sum_backward(const sum_bwd&) { detail::fail("CUDA sum: not implemented yet"); }
void CudaBackend::mse_forward(const mse_fwd&) { detail::fail("CUDA mse: not implemented yet"); }
void CudaBackend::mse_backward(const mse_bwd&) { detail::fail("CUDA mse: not implemented yet"); }
void CudaBackend::sum_squares(const sum_squares_args&) { detail::fail("CUDA sum_squares: not implemented yet"); }

}  // namespace ddpm
