#include "kernels/cuda/context.h"

#include "engine/storage.h"
#include "kernels/cuda/check_libs.h"
#include "kernels/cuda/graph_capture.h"
#include "kernels/cuda/graph_memory.h"

namespace ddpm::cuda {

namespace {
// cuBLAS's own workspace, given to it so that it never allocates behind our back (32 MiB is what
// NVIDIA recommends for Hopper; more than enough for Ampere).
constexpr size_t kCublasWorkspaceBytes = size_t{32} << 20;

struct Context {
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  cublasLtHandle_t cublas_lt = nullptr;
  cudnnHandle_t cudnn = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  cudaDeviceProp properties{};

  Context() {
    int device = 0;
    DDPM_CUDA_CHECK(cudaGetDevice(&device));
    DDPM_CUDA_CHECK(cudaGetDeviceProperties(&properties, device));
    DDPM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    DDPM_CUBLAS_CHECK(cublasCreate(&cublas));
    DDPM_CUBLAS_CHECK(cublasSetStream(cublas, stream));  // resets the workspace: set it after
    DDPM_CUBLAS_CHECK(cublasSetWorkspace(cublas, allocate_shared(kCublasWorkspaceBytes),
                                         kCublasWorkspaceBytes));
    DDPM_CUBLAS_CHECK(cublasLtCreate(&cublas_lt));
    DDPM_CUDNN_CHECK(cudnnCreate(&cudnn));
    DDPM_CUDNN_CHECK(cudnnSetStream(cudnn, stream));
  }
  // Deliberately not destroyed: the CUDA runtime may already be gone at static destruction.
};

Context& context() {
  static Context* instance = new Context();
  return *instance;
}
}  // namespace

cudaStream_t stream() { return context().stream; }
cublasHandle_t cublas() { return context().cublas; }
cublasLtHandle_t cublas_lt() { return context().cublas_lt; }
cudnnHandle_t cudnn() { return context().cudnn; }
const cudaDeviceProp& device_properties() { return context().properties; }

void* workspace(size_t bytes) {
  Context& c = context();
  if (bytes > c.workspace_bytes) {
    // A graph keeps the workspace's address: it must have its final size before the capture (the
    // warm-up run grows it), and it is never a graph's own memory.
    if (capturing()) refuse_during_capture("growing the kernel workspace (the warm-up run should have)");
    // The old block goes back to the caching allocator without a sync: kernels still using it
    // are queued on the one stream ahead of whatever uses the block next.
    if (c.workspace) cuda_allocator().deallocate(c.workspace, c.workspace_bytes);
    c.workspace = nullptr;
    c.workspace_bytes = 0;
    c.workspace = allocate_shared(bytes);
    c.workspace_bytes = bytes;
  }
  return c.workspace;
}

}  // namespace ddpm::cuda
