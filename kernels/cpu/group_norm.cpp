// PLACEHOLDER: replaced by the real kernel.
#include "kernels/cpu/cpu_backend.h"

namespace ddpm {
void CpuBackend::group_norm_forward(const group_norm_fwd&) { detail::fail("group_norm: not implemented yet"); }
void CpuBackend::group_norm_backward(const group_norm_bwd&) { detail::fail("group_norm: not implemented yet"); }
}  // namespace ddpm
