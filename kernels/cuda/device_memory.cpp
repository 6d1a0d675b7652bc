// CUDA device memory, copies and availability.
//
// The allocator caches: a freed block goes to a free list keyed by its size and is handed out
// again for a request of the same bin, so a training step that is warm never calls cudaMalloc or
// cudaFree (both synchronize the device). Bins: requests up to 1 MiB round up to 512 bytes and
// reuse only an exact bin; larger ones round up to 2 MiB and may take a cached block up to 25%
// larger, so a slightly smaller request does not strand a big block.
//
// Stream ordering: every kernel and copy runs on the one stream of kernels/cuda/context.h, so a
// block freed while kernels using it are still queued can be handed out at once: its next user
// enqueues work on that stream, after them. Work on any other stream would break this.
#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <unordered_map>

#include "engine/backend.h"
#include "engine/storage.h"
#include "kernels/cuda/allocator_stats.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"

namespace ddpm {

bool cuda_available() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" error
    return false;
  }
  return count > 0;
}

void synchronize(Device device) {
  if (device == Device::CUDA) DDPM_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
}

void use_cuda_device(int ordinal) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    (void)cudaGetLastError();
    return;
  }
  DDPM_CUDA_CHECK(cudaSetDevice(ordinal % count));
}

namespace {
constexpr size_t kSmallLimit = size_t{1} << 20;
constexpr size_t kSmallQuantum = 512;
constexpr size_t kLargeQuantum = size_t{2} << 20;

size_t round_up(size_t bytes, size_t quantum) { return (bytes + quantum - 1) / quantum * quantum; }
size_t bin_size(size_t bytes) {
  return bytes <= kSmallLimit ? round_up(bytes, kSmallQuantum) : round_up(bytes, kLargeQuantum);
}
// The largest cached block a request of bin `size` may take.
size_t reuse_limit(size_t size) { return size <= kSmallLimit ? size : size + size / 4; }

class CachingAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    if (bytes == 0) return nullptr;
    const size_t size = bin_size(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    void* block = nullptr;
    size_t block_size = size;
    auto hit = free_.lower_bound(size);
    if (hit != free_.end() && hit->first <= reuse_limit(size)) {
      block = hit->second;
      block_size = hit->first;
      free_.erase(hit);
      stats_.bytes_cached -= block_size;
    } else {
      block = device_malloc(size, bytes);
    }
    live_.emplace(block, block_size);
    stats_.bytes_in_use += block_size;
    if (stats_.bytes_in_use > stats_.peak_bytes_in_use) stats_.peak_bytes_in_use = stats_.bytes_in_use;
    return block;
  }

  void deallocate(void* ptr, size_t) override {
    if (!ptr) return;
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = live_.find(ptr);
    if (it == live_.end()) return;  // not ours; nothing sensible to do in a destructor path
    stats_.bytes_in_use -= it->second;
    stats_.bytes_cached += it->second;
    free_.emplace(it->second, ptr);
    live_.erase(it);
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mutex_);
    release_cached();
  }

  CudaAllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

  void reset_peak() {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.peak_bytes_in_use = stats_.bytes_in_use;
  }

 private:
  // A new block from the driver; on out-of-memory the cache is returned to the driver and the
  // request tried once more. Called with the mutex held.
  void* device_malloc(size_t size, size_t requested) {
    DDPM_CHECK(cuda_available(), "cuda allocator: no CUDA device is available on this machine; use the CPU device");
    void* p = nullptr;
    cudaError_t status = cudaMalloc(&p, size);
    if (status == cudaErrorMemoryAllocation && !free_.empty()) {
      (void)cudaGetLastError();
      release_cached();
      status = cudaMalloc(&p, size);
    }
    if (status != cudaSuccess) {
      (void)cudaGetLastError();
      detail::fail("cuda allocator: cudaMalloc of ", requested, " bytes (bin ", size, ") failed: ",
                   cudaGetErrorString(status), " (", stats_.bytes_in_use, " bytes in use, ",
                   stats_.bytes_cached, " cached)");
    }
    ++stats_.device_allocations;
    return p;
  }

  void release_cached() {
    if (free_.empty()) return;
    DDPM_CUDA_CHECK(cudaDeviceSynchronize());  // queued kernels may still read a freed block
    for (auto& [size, block] : free_) {
      DDPM_CUDA_CHECK(cudaFree(block));
      ++stats_.device_frees;
    }
    free_.clear();
    stats_.bytes_cached = 0;
  }

  std::mutex mutex_;
  std::multimap<size_t, void*> free_;        // block size -> cached block
  std::unordered_map<void*, size_t> live_;   // handed-out block -> its size
  CudaAllocatorStats stats_;
};

CachingAllocator& caching_allocator() {
  // Never destroyed: tensors with static lifetime may be freed after it would have been.
  static CachingAllocator* instance = new CachingAllocator();
  return *instance;
}

cudaMemcpyKind kind_of(Device dst, Device src) {
  if (dst == Device::CUDA && src == Device::CUDA) return cudaMemcpyDeviceToDevice;
  if (dst == Device::CUDA) return cudaMemcpyHostToDevice;
  if (src == Device::CUDA) return cudaMemcpyDeviceToHost;
  return cudaMemcpyHostToHost;
}
}  // namespace

Allocator& cuda_allocator() { return caching_allocator(); }

CudaAllocatorStats cuda_allocator_stats() { return caching_allocator().stats(); }

void cuda_reset_peak_bytes() { caching_allocator().reset_peak(); }

void cuda_empty_cache() { caching_allocator().empty_cache(); }

// Ordered with the kernels on the one stream; a copy that touches host memory waits for itself,
// so that the host sees the data (device to host) or may reuse its buffer (host to device).
void cuda_copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  cudaStream_t s = cuda::stream();
  DDPM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind_of(dst_device, src_device), s));
  if (dst_device == Device::CPU || src_device == Device::CPU) DDPM_CUDA_CHECK(cudaStreamSynchronize(s));
}

void cuda_zero_bytes(void* dst, size_t bytes) {
  if (bytes == 0) return;
  DDPM_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, cuda::stream()));
}

}  // namespace ddpm
