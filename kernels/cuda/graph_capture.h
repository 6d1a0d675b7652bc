// What the rest of the CUDA backend asks about a capture in progress (engine/cuda_graph.h): the
// replay offsets random kernels read their stream from, and the hooks of copies and syncs.
#pragma once
#include <cstddef>
#include <cstdint>

#include "engine/replay_counter.h"

namespace ddpm::cuda {

// During a capture on this thread: the device offset of `kind` (engine/replay_counter.h), which
// kernels add to their captured stream. Otherwise null (the stream is used as given).
const uint64_t* replay_offset(DrawKind kind);

bool capturing();
// A host-to-device copy during a capture: staged as a constant of the graph, or refused.
void upload_during_capture(void* dst, const void* src, size_t bytes);
// A host-to-device copy outside a capture: the warm-up counts them (the staging buffer's size).
void note_upload(size_t bytes);
// Throws: `what` cannot be captured; names the setting that turns graphs off.
[[noreturn]] void refuse_during_capture(const char* what);

// Launches the graph's last kernel: offsets[k] = advanced_offset(offsets[k], strides.of[k]).
void launch_advance_offsets(uint64_t* offsets, const ReplayStrides& strides);

}  // namespace ddpm::cuda
