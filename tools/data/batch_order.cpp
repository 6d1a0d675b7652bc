#include "tools/data/batch_order.h"

#include "tools/data/dataset.h"

namespace ddpm {

std::vector<int64_t> BatchOrder::indices(int64_t step, int64_t batch) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < batch; ++i) {
    const int64_t global = (step - 1) * batch + i, epoch = global / size_;
    if (epoch != epoch_) order_ = epoch_permutation(size_, seed_, static_cast<uint64_t>(epoch_ = epoch));
    out.push_back(order_[static_cast<size_t>(global % size_)]);
  }
  return out;
}

}  // namespace ddpm
