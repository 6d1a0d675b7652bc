// PLACEHOLDER: the CUDA kernels of this family are being written; each entry throws.
#include "kernels/cuda/cuda_backend.h"

namespace ddpm {

void CudaBackend::fill(const fill_args&) { detail::fail("CUDA fill: not implemented yet"); }
void CudaBackend::fill_random(const fill_random_args&) { detail::fail("CUDA fill_random: not implemented yet"); }
void CudaBackend::cast(const cast_args&) { detail::fail("CUDA cast: not implemented yet"); }

}  // namespace ddpm
