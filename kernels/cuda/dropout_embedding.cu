// PLACEHOLDER: the CUDA kernels of this family are being written; each entry throws.
#include "kernels/cuda/cuda_backend.h"

namespace ddpm {

void CudaBackend::dropout_forward(const dropout_fwd&) { detail::fail("CUDA dropout: not implemented yet"); }
void CudaBackend::dropout_backward(const dropout_bwd&) { detail::fail("CUDA dropout: not implemented yet"); }
void CudaBackend::timestep_embedding_forward(const timestep_embedding_fwd&) { detail::fail("CUDA timestep_embedding: not implemented yet"); }
void CudaBackend::timestep_embedding_backward(const timestep_embedding_bwd&) { detail::fail("CUDA timestep_embedding: not implemented yet"); }

}  // namespace ddpm
