// Random draws of batch-shaped tensors are addressed by the example's place in the whole batch, so
// a data-parallel shard (rows [first, first + n)) draws exactly what those rows draw in a
// one-process run: dropout masks, the forward-noising epsilon and the flips of gather_batch.
#include <catch2/catch.hpp>

#include "diffusion/gaussian_diffusion.h"
#include "engine/ops.h"
#include "tests/support.h"
#include "tools/data/dataset.h"

using namespace ddpm;

namespace {
// Rows [first, first + n) of a [N, ...] tensor's values.
std::vector<double> rows(const Tensor& t, int64_t first, int64_t n) {
  const std::vector<double> all = t.to_vector();
  const int64_t per = t.numel() / t.dim(0);
  return {all.begin() + first * per, all.begin() + (first + n) * per};
}

Tensor row_slice(const Tensor& t, int64_t first, int64_t n) {
  Shape shape = t.shape();
  shape[0] = n;
  return Tensor::from_vector(rows(t, first, n), shape, t.dtype());
}
}  // namespace

TEST_CASE("shards draw their rows' dropout masks", "[shard][dropout]") {
  // 3 x 5 x 7 = 105 elements per row: shard offsets that are not multiples of Philox's 4.
  const Tensor x = Tensor::uniform({6, 3, 5, 7}, 1, 2, 0.5, 1.5);
  const Tensor whole = dropout(x, 0.3, 9, 4);
  for (int64_t first : {0, 1, 3, 5}) {
    const int64_t n = 6 - first;
    const Tensor shard = dropout(row_slice(x, first, n), 0.3, 9, 4, static_cast<uint64_t>(first * 105));
    INFO("first row " << first);
    REQUIRE(shard.to_vector() == rows(whole, first, n));
  }
}

TEST_CASE("shards draw their rows' forward-noising epsilon", "[shard][diffusion]") {
  const GaussianDiffusion d(Schedule(BetaSchedule::Linear, 100), DiffusionConfig{});
  const Tensor x0 = Tensor::uniform({5, 3, 3, 3}, 3, 4, -1, 1);
  const std::vector<int> t{0, 17, 42, 63, 99};
  const auto whole = d.q_sample(x0, t, 11, 12);
  for (int64_t first : {1, 2, 4}) {
    const int64_t n = 5 - first;
    const auto shard = d.q_sample(row_slice(x0, first, n), {t.begin() + first, t.end()}, 11, 12,
                                  static_cast<uint64_t>(first));
    INFO("first row " << first);
    REQUIRE(shard.noise.to_vector() == rows(whole.noise, first, n));
    REQUIRE(shard.x_t.to_vector() == rows(whole.x_t, first, n));
  }
}

TEST_CASE("shards of a batch flip what the whole batch flips", "[shard][data]") {
  ImageSet set;
  set.images = Tensor::uniform({16, 2, 3, 1}, 5, 6, -1, 1);
  std::vector<int64_t> indices(16);
  for (int64_t i = 0; i < 16; ++i) indices[static_cast<size_t>(i)] = (i * 7) % 16;
  const Tensor whole = gather_batch(set, indices, true, 21, 3);
  for (int64_t first : {4, 9}) {
    const std::vector<int64_t> part(indices.begin() + first, indices.end());
    const Tensor shard = gather_batch(set, part, true, 21, 3, static_cast<uint64_t>(first));
    INFO("first item " << first);
    REQUIRE(shard.to_vector() == rows(whole, first, 16 - first));
  }
}
