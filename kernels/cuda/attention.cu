// PLACEHOLDER: the CUDA kernels of this family are being written; each entry throws.
#include "kernels/cuda/cuda_backend.h"

namespace ddpm {

void CudaBackend::attention_forward(const attention_fwd&) { detail::fail("CUDA attention: not implemented yet"); }
void CudaBackend::attention_backward(const attention_bwd&) { detail::fail("CUDA attention: not implemented yet"); }

}  // namespace ddpm
