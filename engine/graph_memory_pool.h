// Device memory for a captured CUDA graph (kernels/cuda/graph_capture.h): a private pool that one
// uncaptured run (the warm-up) fills and that the capture then draws from without asking the driver.
//
// A captured graph keeps the addresses its kernels were captured with, so the blocks it used must
// stay its own for as long as it may be replayed: nothing outside the graph may be handed one of
// them. Hence a pool per graph instead of the shared caching allocator. The driver may not be asked
// for memory during capture (cudaMalloc/cudaFree are not captured, and cudaFree synchronizes), so:
//   recording (the warm-up run): a request takes a free block of its size or a new one (the driver);
//   capturing: a request takes a free block of its size; none left is an error that says the
//     captured code asks for more than the warm-up did (a shape or a branch changed).
// Blocks are chosen deterministically (the oldest free block of the size), so the same sequence of
// requests and frees gets the same addresses in the same order. Sizes round up to 512 bytes and
// only an equal size is reused. A block that the pool did not hand out, freed during the capture
// (an input the graph reads, a tensor from before the capture), is retained: the graph would read
// or write it again on replay, so it may not go back to the shared cache until the graph is gone.
//
// Plain C++ over an abstract source of raw memory: tests/test_graph_memory_pool.cpp runs it on the
// CPU; kernels/cuda/device_memory.cpp routes the CUDA allocator through it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace ddpm {

struct RawMemory {
  virtual ~RawMemory() = default;
  virtual void* allocate(size_t bytes) = 0;
  virtual void release(void* ptr) = 0;
};

class GraphMemoryPool {
 public:
  enum class Mode { Idle, Recording, Capturing };
  using Block = std::pair<void*, size_t>;

  // `turn_off`: the setting that runs without graphs, named in errors (e.g. "sample.cuda_graphs=false").
  GraphMemoryPool(RawMemory& raw, std::string turn_off);
  ~GraphMemoryPool();  // releases the free blocks; call release() first to learn the live ones
  GraphMemoryPool(const GraphMemoryPool&) = delete;
  GraphMemoryPool& operator=(const GraphMemoryPool&) = delete;

  void begin_recording();
  void begin_capture();
  void end();  // back to Idle: the pool still owns its blocks and takes frees of them
  Mode mode() const { return mode_; }

  static size_t block_size(size_t bytes) { return (bytes + kQuantum - 1) / kQuantum * kQuantum; }
  void* allocate(size_t bytes);  // only while Recording or Capturing
  bool owns(const void* ptr) const { return index_.count(ptr) != 0; }
  void deallocate(void* ptr);    // a block of this pool (owns(ptr)), live
  // A block from elsewhere freed while Capturing: kept until take_retained().
  void retain(void* ptr, size_t bytes);
  std::vector<Block> take_retained();

  // Returns every block to the raw source except those still live, which it returns to the caller
  // (who adopts them: a tensor may outlive the graph). The pool is empty afterwards.
  std::vector<Block> release();

  // Addresses handed out since the last begin_recording() / begin_capture(), in order.
  const std::vector<void*>& handed_out() const { return handed_out_; }
  size_t blocks() const { return blocks_.size(); }
  size_t bytes_reserved() const { return bytes_reserved_; }
  size_t live_blocks() const { return live_; }
  int64_t raw_allocations() const { return raw_allocations_; }

 private:
  static constexpr size_t kQuantum = 512;
  struct Entry {
    void* ptr;
    size_t size;
    bool live;
  };
  RawMemory& raw_;
  std::string turn_off_;
  Mode mode_ = Mode::Idle;
  std::vector<Entry> blocks_;                           // in creation order
  std::unordered_map<const void*, size_t> index_;       // ptr -> position in blocks_
  std::map<size_t, std::set<size_t>> free_;             // size -> free positions (oldest first)
  std::vector<Block> retained_;
  std::vector<void*> handed_out_;
  size_t bytes_reserved_ = 0, live_ = 0;
  int64_t raw_allocations_ = 0, requests_ = 0;
};

// Host data uploaded during a capture (a timestep table, the schedule's coefficients) becomes a
// copy from a staging buffer that the graph owns: the bytes are constants of the graph, and each
// replay uploads them again. The warm-up records how much; the capture places its uploads in
// order and may not exceed that.
class ConstantUploads {
 public:
  explicit ConstantUploads(std::string turn_off) : turn_off_(std::move(turn_off)) {}
  static size_t aligned(size_t bytes) { return (bytes + 15) / 16 * 16; }
  void record(size_t bytes) { recorded_ += aligned(bytes); }  // warm-up
  size_t capacity() const { return recorded_; }               // the staging buffer's size
  size_t place(size_t bytes);                                 // capture: the offset in the staging buffer
  void begin_capture() { placed_ = 0; }

 private:
  std::string turn_off_;
  size_t recorded_ = 0, placed_ = 0;
};

}  // namespace ddpm
