// In-memory image datasets for the `ddpm` program, and the two pieces of randomness the trainer
// needs from them: which images go into an epoch (a permutation) and which get mirrored.
//
// Every loader returns an ImageSet: NHWC float32 on the CPU with pixels mapped to [-1, 1]
// (byte b -> b / 255 * 2 - 1). 2-D toy data uses the same layout as 1x1 "images" with 2 channels
// ([N, 1, 1, 2]) so that batching, flipping (a no-op at width 1) and the NHWC models work
// unchanged.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace ddpm {

struct ImageSet {
  Tensor images;            // [N, H, W, C] float32 on the CPU, values in [-1, 1]
  std::vector<int> labels;  // N class labels, or empty when the source has none
  std::string description;  // e.g. "IDX train split of /usr/share/datasets/fashion-mnist: ..."
  std::vector<std::string> class_names = {};  // label k's name (when labelled and the source names them)

  int64_t size() const { return images.dim(0); }
  int64_t height() const { return images.dim(1); }
  int64_t width() const { return images.dim(2); }
  int64_t channels() const { return images.dim(3); }
};

// The pixel mapping shared by every loader (and inverted by tools/image_io): computed in double so
// that 0 -> -1 and 255 -> +1 exactly, and byte -> pixel -> byte round-trips.
inline float pixel_from_byte(uint8_t b) { return static_cast<float>(b / 255.0 * 2.0 - 1.0); }

// Copies images[indices[i]] into row i of a new [B, H, W, C] CPU tensor. With random_flip, item i
// is mirrored left-right when philox::uniform(seed, stream, first_position + i) < 0.5, so a batch's
// flips are fixed by (seed, stream), a resumed run redraws the same ones, and a shard of a batch
// (first_position = its first item's place in the whole) flips what the whole would. Throws on an
// index out of range.
Tensor gather_batch(const ImageSet& set, const std::vector<int64_t>& indices, bool random_flip,
                    uint64_t seed, uint64_t stream, uint64_t first_position = 0);

// A permutation of 0..n-1 for epoch `epoch`: Fisher-Yates driven by Philox words keyed by `seed`
// on stream (kShuffleStreamTag ^ epoch), so it is a pure function of (n, seed, epoch) and a resumed
// run recomputes it from the epoch number. The tag in the high bits keeps these draws apart from
// other users of the same seed that number their streams from 0 (e.g. parameter init).
constexpr uint64_t kShuffleStreamTag = 0x5348554600000000ull;  // "SHUF" in the high word
std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, uint64_t epoch);

}  // namespace ddpm
