// PLACEHOLDER: replaced by the real kernel.
#include "kernels/cpu/cpu_backend.h"

namespace ddpm {
void CpuBackend::attention_forward(const attention_fwd&) { detail::fail("attention: not implemented yet"); }
void CpuBackend::attention_backward(const attention_bwd&) { detail::fail("attention: not implemented yet"); }
}  // namespace ddpm
