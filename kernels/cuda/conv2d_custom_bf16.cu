// The custom convolution for bfloat16: tensor-core kernels (conv2d_tc.cuh) behind the shared
// host driver (conv2d_driver.cuh).
//   config 0: 128x128 outputs per block, 8 warps of 64x32
//   config 1: 128x64, 4 warps of 64x32
//   config 2: 64x64, 4 warps of 32x32
// all with k steps of 32 and a 3-stage cp.async pipeline.
#include "kernels/cuda/check.h"
#include "kernels/cuda/conv2d_driver.cuh"
#include "kernels/cuda/conv2d_tc.cuh"

namespace ddpm::cuda::conv {

namespace {
using Tile0 = TcTile<128, 128, 64, 32, 3>;
using Tile1 = TcTile<128, 64, 64, 32, 3>;
using Tile2 = TcTile<64, 64, 32, 32, 3>;

template <class Tile, class P>
void launch_tile(const P& p, dim3 grid) {
  constexpr int smem = tc_smem_bytes<Tile, P>();
  // Above 48 KiB of dynamic shared memory a kernel must opt in; once per instantiation.
  static const bool opted_in = [] {
    DDPM_CUDA_CHECK(cudaFuncSetAttribute(conv2d_tc_kernel<Tile, P>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    return true;
  }();
  (void)opted_in;
  conv2d_tc_kernel<Tile, P><<<grid, Tile::THREADS, smem, stream()>>>(p);
  DDPM_CUDA_CHECK_LAUNCH();
}
}  // namespace

template <>
struct Engine<__nv_bfloat16> {
  static constexpr int kVec = 8;
  static TileChoice tile(int id) {
    switch (id) {
      case 0: return {0, Tile0::BM, Tile0::BN, Tile0::BK};
      case 1: return {1, Tile1::BM, Tile1::BN, Tile1::BK};
      default: return {2, Tile2::BM, Tile2::BN, Tile2::BK};
    }
  }
  template <class P>
  static void launch(int id, const P& p, dim3 grid) {
    switch (id) {
      case 0: launch_tile<Tile0>(p, grid); return;
      case 1: launch_tile<Tile1>(p, grid); return;
      default: launch_tile<Tile2>(p, grid); return;
    }
  }
};

template void custom_forward<__nv_bfloat16>(const conv2d_fwd&);
template void custom_backward<__nv_bfloat16>(const conv2d_bwd&);

}  // namespace ddpm::cuda::conv
