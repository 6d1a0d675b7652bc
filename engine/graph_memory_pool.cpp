#include "engine/graph_memory_pool.h"

#include "engine/error.h"

namespace ddpm {

GraphMemoryPool::GraphMemoryPool(RawMemory& raw, std::string turn_off) : raw_(raw), turn_off_(std::move(turn_off)) {}

GraphMemoryPool::~GraphMemoryPool() {
  for (const Entry& e : blocks_)
    if (!e.live) raw_.release(e.ptr);
}

void GraphMemoryPool::begin_recording() {
  mode_ = Mode::Recording;
  handed_out_.clear();
  requests_ = 0;
}

void GraphMemoryPool::begin_capture() {
  mode_ = Mode::Capturing;
  handed_out_.clear();
  requests_ = 0;
}

void GraphMemoryPool::end() { mode_ = Mode::Idle; }

void* GraphMemoryPool::allocate(size_t bytes) {
  DDPM_CHECK(mode_ != Mode::Idle, "graph memory pool: allocation outside a warm-up or a capture (internal error)");
  const size_t size = block_size(bytes);
  ++requests_;
  size_t position;
  auto hit = free_.find(size);
  if (hit != free_.end() && !hit->second.empty()) {
    position = *hit->second.begin();
    hit->second.erase(hit->second.begin());
  } else {
    DDPM_CHECK(mode_ == Mode::Recording, "CUDA graph capture: allocation #", requests_, " (", bytes,
               " bytes) finds no free block of its size among the ", blocks_.size(),
               " the warm-up run left: the captured code allocates differently from the uncaptured run "
               "(a shape or a branch changed between them). Run without graphs: --set ", turn_off_);
    void* ptr = raw_.allocate(size);
    ++raw_allocations_;
    position = blocks_.size();
    blocks_.push_back({ptr, size, false});
    index_.emplace(ptr, position);
    bytes_reserved_ += size;
  }
  Entry& e = blocks_[position];
  e.live = true;
  ++live_;
  handed_out_.push_back(e.ptr);
  return e.ptr;
}

void GraphMemoryPool::deallocate(void* ptr) {
  auto it = index_.find(ptr);
  DDPM_CHECK(it != index_.end(), "graph memory pool: freeing a block it does not own (internal error)");
  Entry& e = blocks_[it->second];
  DDPM_CHECK(e.live, "graph memory pool: a block freed twice (internal error)");
  e.live = false;
  --live_;
  free_[e.size].insert(it->second);
}

void GraphMemoryPool::retain(void* ptr, size_t bytes) { retained_.emplace_back(ptr, bytes); }

std::vector<GraphMemoryPool::Block> GraphMemoryPool::take_retained() {
  std::vector<Block> out;
  out.swap(retained_);
  return out;
}

std::vector<GraphMemoryPool::Block> GraphMemoryPool::release() {
  std::vector<Block> live;
  for (const Entry& e : blocks_) {
    if (e.live)
      live.emplace_back(e.ptr, e.size);
    else
      raw_.release(e.ptr);
  }
  blocks_.clear();
  index_.clear();
  free_.clear();
  handed_out_.clear();
  bytes_reserved_ = 0;
  live_ = 0;
  mode_ = Mode::Idle;
  return live;
}

size_t ConstantUploads::place(size_t bytes) {
  const size_t offset = placed_;
  placed_ += aligned(bytes);
  DDPM_CHECK(placed_ <= recorded_, "CUDA graph capture: the captured code uploads ", placed_,
             " bytes from the host, more than the ", recorded_,
             " the warm-up run did (a shape or a branch changed between them). Run without graphs: --set ", turn_off_);
  return offset;
}

}  // namespace ddpm
