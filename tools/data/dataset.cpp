#include "tools/data/dataset.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "engine/philox.h"

namespace ddpm {

Tensor gather_batch(const ImageSet& set, const std::vector<int64_t>& indices, bool random_flip,
                    uint64_t seed, uint64_t stream, uint64_t first_position) {
  const Tensor& images = set.images;
  DDPM_CHECK(images.defined() && images.rank() == 4 && images.dtype() == DType::F32 &&
                 images.device() == Device::CPU,
             "gather_batch: the image set must hold a float32 [N, H, W, C] CPU tensor, got ",
             images.defined() ? images.describe() : std::string("no tensor"));
  const int64_t n = images.dim(0), h = images.dim(1), w = images.dim(2), c = images.dim(3);
  const int64_t batch = static_cast<int64_t>(indices.size());
  const int64_t row = w * c, image_size = h * row;

  Tensor out = Tensor::empty({batch, h, w, c});
  const float* src_all = images.data<float>();
  float* dst_all = out.data<float>();
  for (int64_t i = 0; i < batch; ++i) {
    const int64_t index = indices[static_cast<size_t>(i)];
    DDPM_CHECK(index >= 0 && index < n, "gather_batch: index ", index, " (batch item ", i,
               ") is outside the data set of ", n, " images");
    const float* src = src_all + index * image_size;
    float* dst = dst_all + i * image_size;
    const bool flip = random_flip && philox::uniform(seed, stream, first_position + static_cast<uint64_t>(i)) < 0.5f;
    if (!flip) {
      std::memcpy(dst, src, static_cast<size_t>(image_size) * sizeof(float));
      continue;
    }
    // Mirror: pixel x of each row goes to w-1-x; the channels of a pixel stay in order.
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        std::memcpy(dst + y * row + (w - 1 - x) * c, src + y * row + x * c,
                    static_cast<size_t>(c) * sizeof(float));
  }
  return out;
}

std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, uint64_t epoch) {
  DDPM_CHECK(n >= 0, "epoch_permutation: the data set size must be >= 0, got ", n);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  const uint64_t stream = kShuffleStreamTag ^ epoch;
  // Draw k takes a 64-bit word (two Philox words) so that `% (i + 1)` has negligible bias for any
  // data set size; a float uniform has only 24 bits.
  uint64_t draw = 0;
  for (int64_t i = n - 1; i > 0; --i, ++draw) {
    philox::Block b = philox::block_at(seed, stream, draw >> 1);
    const unsigned word = static_cast<unsigned>(draw & 1) * 2;
    const uint64_t bits = (static_cast<uint64_t>(b.v[word]) << 32) | b.v[word + 1];
    const int64_t j = static_cast<int64_t>(bits % static_cast<uint64_t>(i + 1));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

}  // namespace ddpm
