// PLACEHOLDER: replaced by the real kernel.
#include "kernels/cpu/cpu_backend.h"

namespace ddpm {
void CpuBackend::conv2d_forward(const conv2d_fwd&) { detail::fail("conv2d: not implemented yet"); }
void CpuBackend::conv2d_backward(const conv2d_bwd&) { detail::fail("conv2d: not implemented yet"); }
}  // namespace ddpm
