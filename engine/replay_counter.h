// Randomness that a replayed CUDA graph can advance (kernels/cuda/graph_capture.h). A captured
// kernel keeps the arguments it was captured with, so a Philox stream passed by value would make
// every replay draw the captured step's numbers again. Kernels that draw take, besides the stream
// (the value at capture time), a pointer to a device counter, the stream offset of their kind of
// draw; a replay adds that kind's stride to it after its last kernel, so replay k draws with
// stream + k * stride, which is exactly the stream the uncaptured run uses for the k-th step (or
// batch) after the captured one. Uncaptured, the pointer is null and the stream is used as given:
// numbers do not change.
//
// What varies between replays, and by how much (per kind of draw):
//   training step s:   noise of q(x_t|x_0) on stream s                          -> stride 1
//                      dropout of layer l on stream 256 s + l (DropoutKey)       -> stride 256
//                      (timesteps, flips and label dropout are drawn on the host and uploaded
//                      before the replay: they are inputs of the graph, not draws inside it)
//   sampling batch b:  x_T on stream S(b), step k's noise on S(b) + 1 + k,
//                      S(b) = (first_batch + b) << 32                           -> stride 2^32
//                      (no dropout: the model samples in eval mode)             -> stride 0
#pragma once
#include <cstdint>

#include "engine/philox.h"  // DDPM_HOST_DEVICE

namespace ddpm {

// The stream a kernel draws from: the captured value plus the replay offset (null: not replayed).
DDPM_HOST_DEVICE uint64_t replay_stream(uint64_t stream, const uint64_t* offset) {
  return offset ? stream + *offset : stream;
}

// The offset after one more replay (the graph's last kernel stores this).
DDPM_HOST_DEVICE uint64_t advanced_offset(uint64_t offset, uint64_t stride) { return offset + stride; }

// The offset that makes a graph captured at position `captured` (a step or a batch index) draw
// what the uncaptured run draws at position `at` (at >= captured): set before a replay that does
// not follow the previous one directly (kernels/cuda/graph_capture.h set_position).
inline uint64_t offset_for(int64_t captured, int64_t at, uint64_t stride) {
  return static_cast<uint64_t>(at - captured) * stride;
}

// The kinds of draw inside a graph, each with its own offset (and stride).
enum class DrawKind : int { Noise = 0, Dropout = 1 };
constexpr int kDrawKinds = 2;
struct ReplayStrides {
  uint64_t of[kDrawKinds] = {0, 0};  // indexed by DrawKind
};

constexpr uint64_t kTrainStepStreamStride = 1;
constexpr uint64_t kDropoutStreamsPerStep = 256;  // models/denoiser.h DropoutKey::for_layer
constexpr uint64_t kSampleBatchStreamStride = uint64_t{1} << 32;

// The stream of training step `step`'s draws (tools/train_step.cpp): noise on it, dropout on
// DropoutKey{seed, stream}.for_layer(l).
inline uint64_t train_step_stream(int64_t step) { return static_cast<uint64_t>(step) * kTrainStepStreamStride; }
inline ReplayStrides train_step_strides() {
  ReplayStrides s;
  s.of[static_cast<int>(DrawKind::Noise)] = kTrainStepStreamStride;
  s.of[static_cast<int>(DrawKind::Dropout)] = kTrainStepStreamStride * kDropoutStreamsPerStep;
  return s;
}
inline ReplayStrides sample_batch_strides() {
  ReplayStrides s;
  s.of[static_cast<int>(DrawKind::Noise)] = kSampleBatchStreamStride;
  return s;
}

// The stream of sampling batch b of a draw that starts at batch first_batch (tools/generate.cpp).
inline uint64_t sample_batch_stream(int64_t first_batch, int64_t b) {
  return static_cast<uint64_t>(first_batch + b) * kSampleBatchStreamStride;
}

}  // namespace ddpm
