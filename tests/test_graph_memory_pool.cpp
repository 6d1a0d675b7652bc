// The CUDA graph memory pool's bookkeeping (engine/graph_memory_pool.h) over host memory: the
// capture gets the warm-up's blocks in the warm-up's order without asking for new memory, a
// capture that asks for more than the warm-up did is refused by name, blocks from elsewhere
// freed during a capture are retained, and blocks still live when the pool goes away are handed
// back for adoption.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <set>

#include "engine/graph_memory_pool.h"

using namespace ddpm;
using Catch::Contains;

namespace {
// Host memory that counts what it hands out and takes back.
struct CountingMemory final : RawMemory {
  std::set<void*> outstanding;
  int64_t allocations = 0, releases = 0;
  void* allocate(size_t bytes) override {
    void* p = std::malloc(bytes);
    outstanding.insert(p);
    ++allocations;
    return p;
  }
  void release(void* ptr) override {
    REQUIRE(outstanding.erase(ptr) == 1);  // only what it handed out, once
    ++releases;
    std::free(ptr);
  }
};

// One "step" of a program: activations allocated and freed in a pattern that reuses blocks.
// Returns the block that stays live (the step's output).
void* run_step(GraphMemoryPool& pool, size_t n) {
  void* a = pool.allocate(n * 4);
  void* b = pool.allocate(n * 8);
  pool.deallocate(a);
  void* c = pool.allocate(n * 4);  // takes a's block back
  void* d = pool.allocate(100);
  pool.deallocate(b);
  pool.deallocate(d);
  void* out = pool.allocate(n * 8);  // takes b's block back
  pool.deallocate(c);
  return out;
}
}  // namespace

TEST_CASE("graph pool: the capture gets the warm-up's blocks, in the same order, with no new memory", "[graph]") {
  CountingMemory raw;
  GraphMemoryPool pool(raw, "sample.cuda_graphs=false");
  pool.begin_recording();
  void* warm_out = run_step(pool, 1000);
  pool.end();
  const std::vector<void*> warm = pool.handed_out();
  REQUIRE(warm.size() == 5);
  CHECK(warm[2] == warm[0]);  // the freed block of the same size came back
  CHECK(warm[4] == warm[1]);
  const int64_t after_warm_up = raw.allocations;
  CHECK(after_warm_up == 3);  // a, b, d: c and out reused
  pool.deallocate(warm_out);  // the caller is done with the warm-up's output

  pool.begin_capture();
  void* captured_out = run_step(pool, 1000);
  pool.end();
  CHECK(pool.handed_out() == warm);  // exactly the same addresses in the same order
  CHECK(raw.allocations == after_warm_up);
  CHECK(captured_out == warm_out);
  CHECK(pool.live_blocks() == 1);

  // The live output is handed back for adoption; the rest goes back to the raw source.
  const std::vector<GraphMemoryPool::Block> live = pool.release();
  REQUIRE(live.size() == 1);
  CHECK(live[0].first == captured_out);
  CHECK(live[0].second == GraphMemoryPool::block_size(8000));
  CHECK(raw.outstanding == std::set<void*>{captured_out});
  raw.release(captured_out);
}

TEST_CASE("graph pool: a capture that needs more than the warm-up had is refused, naming the switch", "[graph][errors]") {
  CountingMemory raw;
  GraphMemoryPool pool(raw, "sample.cuda_graphs=false");
  pool.begin_recording();
  pool.deallocate(run_step(pool, 1000));
  pool.end();
  pool.begin_capture();
  // A shape change: the first request already has no block of its size.
  try {
    pool.allocate(2000 * 8);
    FAIL("no error");
  } catch (const std::exception& e) {
    CHECK_THAT(e.what(), Contains("allocation #1 (16000 bytes) finds no free block of its size among the 3"));
    CHECK_THAT(e.what(), Contains("--set sample.cuda_graphs=false"));
  }
  // More live blocks of one size than the warm-up ever held at once.
  void* a = pool.allocate(4000);
  CHECK_THROWS_WITH(pool.allocate(4000), Contains("allocation #3 (4000 bytes)"));
  pool.deallocate(a);
  pool.end();
  CHECK(raw.allocations == 3);
}

TEST_CASE("graph pool: sizes round to 512 bytes and only an equal size is reused", "[graph]") {
  CHECK(GraphMemoryPool::block_size(1) == 512);
  CHECK(GraphMemoryPool::block_size(512) == 512);
  CHECK(GraphMemoryPool::block_size(513) == 1024);
  CountingMemory raw;
  GraphMemoryPool pool(raw, "x");
  pool.begin_recording();
  void* small = pool.allocate(600);   // 1024
  pool.deallocate(small);
  void* large = pool.allocate(1100);  // 1536: does not take the 1024 block
  CHECK(large != small);
  void* again = pool.allocate(1000);  // 1024 again
  CHECK(again == small);
  pool.deallocate(large);
  pool.deallocate(again);
  pool.end();
  CHECK(pool.bytes_reserved() == 1024 + 1536);
  // The oldest free block of a size is taken first, whatever order they were freed in.
  pool.begin_recording();
  void* x = pool.allocate(1000);
  void* y = pool.allocate(1000);  // a new block
  pool.deallocate(y);
  pool.deallocate(x);
  void* oldest = pool.allocate(1000);
  CHECK(oldest == small);
  pool.deallocate(oldest);
  pool.end();
}

TEST_CASE("graph pool: blocks from elsewhere freed during a capture are retained until the graph goes", "[graph]") {
  CountingMemory raw;
  GraphMemoryPool pool(raw, "x");
  int outside = 0;
  pool.begin_capture();
  pool.retain(&outside, 4);
  pool.end();
  CHECK_FALSE(pool.owns(&outside));
  const auto retained = pool.take_retained();
  REQUIRE(retained.size() == 1);
  CHECK(retained[0].first == &outside);
  CHECK(retained[0].second == 4);
  CHECK(pool.take_retained().empty());
}

TEST_CASE("graph pool: the destructor returns free blocks; allocating outside warm-up or capture is refused", "[graph][errors]") {
  CountingMemory raw;
  {
    GraphMemoryPool pool(raw, "x");
    CHECK_THROWS_WITH(pool.allocate(10), Contains("outside a warm-up or a capture"));
    pool.begin_recording();
    void* a = pool.allocate(10);
    pool.allocate(20000);
    pool.deallocate(a);
    pool.end();
    CHECK(pool.live_blocks() == 1);
  }
  CHECK(raw.releases == 1);  // the live block is not the destructor's to release
  CHECK(raw.outstanding.size() == 1);
  raw.release(*raw.outstanding.begin());
}

TEST_CASE("graph constant uploads: the capture places its uploads within what the warm-up recorded", "[graph][errors]") {
  ConstantUploads uploads("sample.cuda_graphs=false");
  uploads.record(40);  // 48 aligned
  uploads.record(16);
  CHECK(uploads.capacity() == 64);
  uploads.begin_capture();
  CHECK(uploads.place(40) == 0);
  CHECK(uploads.place(16) == 48);
  CHECK_THROWS_WITH(uploads.place(1), Contains("uploads 80 bytes from the host, more than the 64"));
  uploads.begin_capture();
  CHECK(uploads.place(60) == 0);  // a different split of the same bytes fits
}
