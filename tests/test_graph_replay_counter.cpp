// The replay counters of CUDA graphs (engine/replay_counter.h), simulated on the CPU: a graph
// captured at training step s0 (sampling batch b0) and replayed k times must draw, with its
// captured streams plus the device offsets after k advances, exactly the numbers the uncaptured
// CPU reference draws at step s0 + k (batch b0 + k): every draw inside a training step (the noise
// of q(x_t|x_0), dropout of every layer) and a sampling batch (x_T, every step's noise), bit for bit.
#include <catch2/catch.hpp>

#include <cstring>

#include "engine/ops.h"
#include "engine/philox.h"
#include "engine/replay_counter.h"
#include "engine/tensor.h"
#include "models/denoiser.h"
#include "tools/seeds.h"

using namespace ddpm;

namespace {
// The device counters of one graph, advanced as its last kernel does after each replay.
struct SimulatedCounters {
  uint64_t offset[kDrawKinds] = {0, 0};
  ReplayStrides strides;
  void replay() {
    for (int k = 0; k < kDrawKinds; ++k) offset[k] = advanced_offset(offset[k], strides.of[k]);
  }
  const uint64_t* of(DrawKind kind) const { return &offset[static_cast<int>(kind)]; }
};

// What a captured fill_random kernel writes: normals of (seed, replay_stream(captured, offset)).
std::vector<float> replayed_normals(int64_t n, uint64_t seed, uint64_t captured_stream, const uint64_t* offset) {
  std::vector<float> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    out[static_cast<size_t>(i)] = philox::normal(seed, replay_stream(captured_stream, offset), static_cast<uint64_t>(i));
  return out;
}

// What a captured dropout kernel writes (the op's rule: engine/op_args.h dropout_fwd).
std::vector<float> replayed_dropout(const std::vector<float>& x, double p, uint64_t seed, uint64_t captured_stream,
                                    uint64_t first, const uint64_t* offset) {
  std::vector<float> out(x.size());
  const float threshold = static_cast<float>(p), keep_scale = static_cast<float>(1.0 / (1.0 - p));
  for (size_t i = 0; i < x.size(); ++i)
    out[i] = philox::uniform(seed, replay_stream(captured_stream, offset), first + i) >= threshold ? x[i] * keep_scale
                                                                                                   : 0.0f;
  return out;
}

bool same_bits(const std::vector<float>& a, const Tensor& b) {
  REQUIRE(static_cast<int64_t>(a.size()) == b.numel());
  return std::memcmp(a.data(), b.data<float>(), a.size() * sizeof(float)) == 0;
}
}  // namespace

TEST_CASE("graph replay counters: uncaptured, the stream is used as given", "[graph]") {
  CHECK(replay_stream(12345, nullptr) == 12345);
  const uint64_t zero = 0;
  CHECK(replay_stream(12345, &zero) == 12345);  // the first launch draws the captured step
  CHECK(advanced_offset(7, 256) == 263);
  CHECK(offset_for(5, 9, 256) == 4 * 256);
}

TEST_CASE("graph replay counters: k replays of a training step draw step s0 + k's noise and dropout bit for bit",
          "[graph]") {
  const uint64_t noise_seed = seed_for(42, Purpose::Noise), dropout_seed = seed_for(42, Purpose::Dropout);
  const int64_t s0 = 7;  // the step the graph was captured at (the first after the warm-up)
  const uint64_t first = 3;  // this shard's first example
  const Shape noise_shape{4, 5, 5, 3};
  std::vector<float> activation(4 * 6 * 6 * 8);
  for (size_t i = 0; i < activation.size(); ++i) activation[i] = 0.25f + 0.001f * static_cast<float>(i);
  const Tensor h = Tensor::from_vector(std::vector<double>(activation.begin(), activation.end()), {4, 6, 6, 8});
  const DropoutKey captured_key{dropout_seed, train_step_stream(s0), first};

  SimulatedCounters counters;
  counters.strides = train_step_strides();
  for (int64_t k = 0; k < 6; ++k, counters.replay()) {
    const int64_t step = s0 + k;
    // The offsets are what set_position() would store for this step.
    CHECK(counters.offset[0] == offset_for(s0, step, kTrainStepStreamStride));
    CHECK(counters.offset[1] == offset_for(s0, step, kTrainStepStreamStride * kDropoutStreamsPerStep));
    // Noise: the CPU reference's draw at this step against the captured kernel's.
    const Tensor want_noise = Tensor::normal(noise_shape, noise_seed, train_step_stream(step));
    CHECK(same_bits(replayed_normals(want_noise.numel(), noise_seed, train_step_stream(s0), counters.of(DrawKind::Noise)),
                    want_noise));
    // Dropout of three layers, keyed as the UNet keys them (models/denoiser.h).
    const DropoutKey key{dropout_seed, train_step_stream(step), first};
    for (int layer : {0, 1, 17}) {
      const Tensor want = dropout(h, 0.3, key.seed, key.for_layer(layer), key.offset_in(h));
      CHECK(same_bits(replayed_dropout(activation, 0.3, dropout_seed, captured_key.for_layer(layer),
                                       captured_key.offset_in(h), counters.of(DrawKind::Dropout)),
                      want));
    }
  }
}

TEST_CASE("graph replay counters: k replays of a sampling loop draw batch b0 + k's x_T and step noise bit for bit",
          "[graph]") {
  const uint64_t seed = seed_for(1, Purpose::Sampling);
  const int64_t first_batch = 2, b0 = 1;  // batch 0 is the warm-up, batch 1 is captured
  const Shape shape{3, 4, 4, 2};
  const int steps = 5;
  SimulatedCounters counters;
  counters.strides = sample_batch_strides();
  for (int64_t k = 0; k < 4; ++k, counters.replay()) {
    const int64_t b = b0 + k;
    CHECK(counters.offset[0] == offset_for(b0, b, kSampleBatchStreamStride));
    const uint64_t stream = sample_batch_stream(first_batch, b), captured = sample_batch_stream(first_batch, b0);
    // x_T (samplers.cpp: Tensor::normal on options.stream)
    CHECK(same_bits(replayed_normals(numel(shape), seed, captured, counters.of(DrawKind::Noise)), Tensor::normal(shape, seed, stream)));
    // step j's noise on stream + 1 + j (the reverse-step and solver-step kernels)
    for (int j = 0; j < steps; ++j)
      CHECK(same_bits(replayed_normals(numel(shape), seed, captured + 1 + static_cast<uint64_t>(j), counters.of(DrawKind::Noise)),
                      Tensor::normal(shape, seed, stream + 1 + static_cast<uint64_t>(j))));
  }
  CHECK(counters.offset[1] == 0);  // sampling draws no dropout
}

TEST_CASE("graph replay counters: the strides are the spacing of the uncaptured keys", "[graph]") {
  // Dropout: one step later is kDropoutStreamsPerStep streams later for every layer.
  for (int layer : {0, 5, 255}) {
    const DropoutKey a{1, train_step_stream(10), 0}, b{1, train_step_stream(11), 0};
    CHECK(b.for_layer(layer) - a.for_layer(layer) == train_step_strides().of[static_cast<int>(DrawKind::Dropout)]);
  }
  CHECK(train_step_stream(11) - train_step_stream(10) == train_step_strides().of[static_cast<int>(DrawKind::Noise)]);
  CHECK(sample_batch_stream(0, 5) - sample_batch_stream(0, 4) == sample_batch_strides().of[static_cast<int>(DrawKind::Noise)]);
  CHECK(sample_batch_stream(3, 0) == sample_batch_stream(0, 3));
}
