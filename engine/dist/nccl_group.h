// NCCL collectives on the engine's CUDA stream, for the MPI communicator's CUDA tensors.
#pragma once
#include <functional>
#include <memory>

#include "engine/tensor.h"

namespace ddpm {

class NcclGroup {
 public:
  // share_id(bytes, size) must broadcast the bytes from rank 0 to every rank (MPI does it).
  NcclGroup(int rank, int size, const std::function<void(void*, int)>& share_id);
  ~NcclGroup();
  NcclGroup(const NcclGroup&) = delete;
  NcclGroup& operator=(const NcclGroup&) = delete;

  void sum(const Tensor& t);                  // in place, float32/float64/bfloat16 on the GPU
  void broadcast(const Tensor& t, int root);  // in place

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace ddpm
