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

#include <algorithm>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "engine/backend.h"
#include "engine/storage.h"
#include "kernels/cuda/allocator_stats.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/graph_capture.h"
#include "kernels/cuda/graph_memory.h"

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
  if (device == Device::CUDA && cuda::capturing()) cuda::refuse_during_capture("a device synchronization");
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
  void* allocate(size_t bytes) override { return allocate_from(bytes, true); }

  // shared = false: memory that outlives any graph, never from a graph's pool.
  void* allocate_from(size_t bytes, bool graph_pool_if_routed) {
    if (bytes == 0) return nullptr;
    const size_t size = bin_size(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    if (routed_ && graph_pool_if_routed) return routed_->allocate(bytes);
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
    for (GraphMemoryPool* pool : pools_)
      if (pool->owns(ptr)) return pool->deallocate(ptr);
    auto it = live_.find(ptr);
    if (it == live_.end()) return;  // not ours; nothing sensible to do in a destructor path
    if (routed_ && routed_->mode() == GraphMemoryPool::Mode::Capturing) {
      // The graph reads or writes this block on replay: it stays out of the cache while the graph lives.
      routed_->retain(ptr, it->second);
      live_.erase(it);
      return;
    }
    stats_.bytes_in_use -= it->second;
    stats_.bytes_cached += it->second;
    free_.emplace(it->second, ptr);
    live_.erase(it);
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mutex_);
    release_cached();
  }

  void route_to(GraphMemoryPool* pool) {
    std::lock_guard<std::mutex> lock(mutex_);
    routed_ = pool;
  }
  void register_pool(GraphMemoryPool* pool) {
    std::lock_guard<std::mutex> lock(mutex_);
    pools_.push_back(pool);
  }
  // The pool's live blocks become the cache's (a tensor may outlive its graph), its retained ones
  // are freed into the cache, the rest go back to the driver.
  void unregister_pool(GraphMemoryPool* pool) {
    std::lock_guard<std::mutex> lock(mutex_);
    pools_.erase(std::remove(pools_.begin(), pools_.end(), pool), pools_.end());
    if (routed_ == pool) routed_ = nullptr;
    for (const auto& [ptr, size] : pool->release()) {
      live_.emplace(ptr, size);
      stats_.bytes_in_use += size;
    }
    for (const auto& [ptr, size] : pool->take_retained()) {
      stats_.bytes_in_use -= size;
      stats_.bytes_cached += size;
      free_.emplace(size, ptr);
    }
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
  GraphMemoryPool* routed_ = nullptr;        // warming up or capturing a graph: its pool
  std::vector<GraphMemoryPool*> pools_;      // every graph's pool (frees of their blocks go back to them)
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

namespace cuda {
namespace {
struct DeviceRawMemory final : RawMemory {
  void* allocate(size_t bytes) override {
    void* p = nullptr;
    DDPM_CUDA_CHECK(cudaMalloc(&p, bytes));
    return p;
  }
  void release(void* ptr) override {
    DDPM_CUDA_CHECK(cudaDeviceSynchronize());  // a replay still queued may use it
    DDPM_CUDA_CHECK(cudaFree(ptr));
  }
};
}  // namespace

RawMemory& device_raw_memory() {
  static DeviceRawMemory* instance = new DeviceRawMemory();
  return *instance;
}
void route_allocations_to(GraphMemoryPool* pool) { caching_allocator().route_to(pool); }
void register_graph_pool(GraphMemoryPool* pool) { caching_allocator().register_pool(pool); }
void unregister_graph_pool(GraphMemoryPool* pool) { caching_allocator().unregister_pool(pool); }
void* allocate_shared(size_t bytes) { return caching_allocator().allocate_from(bytes, false); }
}  // namespace cuda

CudaAllocatorStats cuda_allocator_stats() { return caching_allocator().stats(); }

void cuda_reset_peak_bytes() { caching_allocator().reset_peak(); }

void cuda_empty_cache() { caching_allocator().empty_cache(); }

// Ordered with the kernels on the one stream; a copy that touches host memory waits for itself,
// so that the host sees the data (device to host) or may reuse its buffer (host to device).
void cuda_copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  if (dst_device == Device::CUDA && src_device == Device::CPU) {
    if (cuda::capturing()) return cuda::upload_during_capture(dst, src, bytes);
    cuda::note_upload(bytes);
  }
  if (src_device == Device::CUDA && dst_device == Device::CPU && cuda::capturing())
    cuda::refuse_during_capture("a copy from the device to the host (a value read back: item(), to_vector(), to(cpu))");
  cudaStream_t s = cuda::stream();
  DDPM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind_of(dst_device, src_device), s));
  if (dst_device == Device::CPU || src_device == Device::CPU) DDPM_CUDA_CHECK(cudaStreamSynchronize(s));
}

void cuda_zero_bytes(void* dst, size_t bytes) {
  if (bytes == 0) return;
  DDPM_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, cuda::stream()));
}

}  // namespace ddpm
