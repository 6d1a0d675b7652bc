// Linked instead of kernels/cuda/ when the project is configured with DDPM_WITH_CUDA=OFF.
#include "engine/backend.h"
#include "engine/cuda_graph.h"
#include "engine/error.h"
#include "engine/storage.h"

namespace ddpm {

namespace {
[[noreturn]] void no_cuda() {
  detail::fail("CUDA: this build has no CUDA backend (configured with DDPM_WITH_CUDA=OFF); "
               "rebuild with nvcc available or use the CPU device");
}
}  // namespace

bool cuda_available() { return false; }
void use_cuda_device(int) {}
void synchronize(Device) {}
Allocator& cuda_allocator() { no_cuda(); }
void cuda_copy_bytes(void*, Device, const void*, Device, size_t) { no_cuda(); }
void cuda_zero_bytes(void*, size_t) { no_cuda(); }
Backend& cuda_backend() { no_cuda(); }

// CUDA graphs (engine/cuda_graph.h): never available without CUDA.
struct CudaGraph::Impl {};
CudaGraph::CudaGraph(Options) { no_cuda(); }
CudaGraph::~CudaGraph() = default;
void CudaGraph::warm_up(const std::function<void()>&) { no_cuda(); }
void CudaGraph::capture(const std::function<void()>&, int64_t) { no_cuda(); }
void CudaGraph::replay(int64_t) { no_cuda(); }
bool CudaGraph::captured() const { return false; }
bool cuda_graphs_available(Device) { return false; }

}  // namespace ddpm
