// PLACEHOLDER: being written.
#include "kernels/cpu/cpu_backend.h"

namespace ddpm {
void CpuBackend::q_sample(const q_sample_args&) { detail::fail("q_sample: not implemented yet"); }
void CpuBackend::reverse_step(const reverse_step_args&) { detail::fail("reverse_step: not implemented yet"); }
void CpuBackend::vlb_term_forward(const vlb_term_fwd&) { detail::fail("vlb_term: not implemented yet"); }
void CpuBackend::vlb_term_backward(const vlb_term_bwd&) { detail::fail("vlb_term: not implemented yet"); }
void CpuBackend::channel_slice_forward(const channel_slice_fwd&) { detail::fail("channel_slice: not implemented yet"); }
void CpuBackend::channel_slice_backward(const channel_slice_bwd&) { detail::fail("channel_slice: not implemented yet"); }
}  // namespace ddpm
