// The CUDA caching allocator's side of graphs (kernels/cuda/device_memory.cpp): while a graph
// warms up or is captured, allocations come from its private pool (engine/graph_memory_pool.h).
#pragma once
#include <cstddef>

#include "engine/graph_memory_pool.h"

namespace ddpm::cuda {

// cudaMalloc/cudaFree for graph pools (cudaFree waits for the device first).
RawMemory& device_raw_memory();
// Routes allocations to `pool` (null: the shared cache again). The pool must be registered.
void route_allocations_to(GraphMemoryPool* pool);
void register_graph_pool(GraphMemoryPool* pool);
// Before a pool goes: its live blocks and the blocks it retained join the shared cache.
void unregister_graph_pool(GraphMemoryPool* pool);
// Memory that outlives any graph (the workspace, cuBLAS's workspace): always the shared cache.
void* allocate_shared(size_t bytes);

}  // namespace ddpm::cuda
