// PLACEHOLDER: the CUDA kernels of this family are being written; each entry throws.
#include "kernels/cuda/cuda_backend.h"

namespace ddpm {

void CudaBackend::add_forward(const add_fwd&) { detail::fail("CUDA add: not implemented yet"); }
void CudaBackend::add_backward(const add_bwd&) { detail::fail("CUDA add: not implemented yet"); }
void CudaBackend::sub_forward(const sub_fwd&) { detail::fail("CUDA sub: not implemented yet"); }
void CudaBackend::sub_backward(const sub_bwd&) { detail::fail("CUDA sub: not implemented yet"); }
void CudaBackend::mul_forward(const mul_fwd&) { detail::fail("CUDA mul: not implemented yet"); }
void CudaBackend::mul_backward(const mul_bwd&) { detail::fail("CUDA mul: not implemented yet"); }
void CudaBackend::scale_forward(const scale_fwd&) { detail::fail("CUDA scale: not implemented yet"); }
void CudaBackend::scale_backward(const scale_bwd&) { detail::fail("CUDA scale: not implemented yet"); }
void CudaBackend::silu_forward(const silu_fwd&) { detail::fail("CUDA silu: not implemented yet"); }
void CudaBackend::silu_backward(const silu_bwd&) { detail::fail("CUDA silu: not implemented yet"); }

}  // namespace ddpm
