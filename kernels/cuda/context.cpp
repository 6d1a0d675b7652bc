#include "kernels/cuda/context.h"

#include "kernels/cuda/check_libs.h"

namespace ddpm::cuda {

namespace {
struct Context {
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  cublasLtHandle_t cublas_lt = nullptr;
  cudnnHandle_t cudnn = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;

  Context() {
    DDPM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    DDPM_CUBLAS_CHECK(cublasCreate(&cublas));
    DDPM_CUBLAS_CHECK(cublasSetStream(cublas, stream));
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

void* workspace(size_t bytes) {
  Context& c = context();
  if (bytes > c.workspace_bytes) {
    // Grows rarely (the first steps of training reach the largest size), so a synchronizing
    // free here is outside the steady state.
    if (c.workspace) {
      DDPM_CUDA_CHECK(cudaStreamSynchronize(c.stream));
      DDPM_CUDA_CHECK(cudaFree(c.workspace));
    }
    DDPM_CUDA_CHECK(cudaMalloc(&c.workspace, bytes));
    c.workspace_bytes = bytes;
  }
  return c.workspace;
}

}  // namespace ddpm::cuda
