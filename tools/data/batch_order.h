// Which examples batch `step` (1-based) of a training run takes: a fresh Philox permutation every
// epoch (epoch_permutation), so the position in the data is a function of (seed, step) alone and a
// resumed run sees the same batches. Used by `ddpm train` and `ddpm classifier train`.
#pragma once
#include <cstdint>
#include <vector>

namespace ddpm {

class BatchOrder {
 public:
  BatchOrder(int64_t size, uint64_t seed) : size_(size), seed_(seed) {}
  // Indices of the `batch` examples of batch `step`; a batch may span two epochs.
  std::vector<int64_t> indices(int64_t step, int64_t batch);

 private:
  int64_t size_;
  uint64_t seed_;
  int64_t epoch_ = -1;          // the epoch whose permutation is held
  std::vector<int64_t> order_;  // its permutation
};

}  // namespace ddpm
