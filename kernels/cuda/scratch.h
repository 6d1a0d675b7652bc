// Temporary device memory for the kernels of one op, from the caching allocator (so no cudaMalloc
// once warm). It may be released while kernels that use it are still queued: whoever gets the
// block next enqueues its work on the same stream (kernels/cuda/context.h), after them.
#pragma once
#include <cstddef>

#include "engine/storage.h"

namespace ddpm::cuda {

class Scratch {
 public:
  explicit Scratch(size_t bytes) : bytes_(bytes), ptr_(cuda_allocator().allocate(bytes)) {}
  ~Scratch() {
    if (ptr_) cuda_allocator().deallocate(ptr_, bytes_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  template <class T> T* as() const { return static_cast<T*>(ptr_); }

 private:
  size_t bytes_;
  void* ptr_;
};

}  // namespace ddpm::cuda
