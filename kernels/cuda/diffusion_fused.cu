// PLACEHOLDER: the CUDA kernels of this family are being written; each entry throws.
#include "kernels/cuda/cuda_backend.h"

namespace ddpm {

void CudaBackend::q_sample(const q_sample_args&) { detail::fail("CUDA q_sample: not implemented yet"); }
void CudaBackend::reverse_step(const reverse_step_args&) { detail::fail("CUDA reverse_step: not implemented yet"); }
void CudaBackend::vlb_term_forward(const vlb_term_fwd&) { detail::fail("CUDA vlb_term: not implemented yet"); }
void CudaBackend::vlb_term_backward(const vlb_term_bwd&) { detail::fail("CUDA vlb_term: not implemented yet"); }

}  // namespace ddpm
