// The custom convolution for float32: FMA kernels (conv2d_simt.cuh) behind the shared host
// driver (conv2d_driver.cuh).
//   config 0: 128x128 outputs per block, 8x8 per thread, k steps of 8
//   config 1: 128x64, 8x4 per thread, k steps of 8
//   config 2: 64x64, 4x4 per thread, k steps of 16
#include "kernels/cuda/check.h"
#include "kernels/cuda/conv2d_driver.cuh"
#include "kernels/cuda/conv2d_simt.cuh"

namespace ddpm::cuda::conv {

namespace {
using Tile0 = SimtTile<128, 128, 8>;
using Tile1 = SimtTile<128, 64, 8>;
using Tile2 = SimtTile<64, 64, 16>;

template <class Tile, class P>
void launch_tile(const P& p, dim3 grid) {
  conv2d_simt_kernel<Tile, P><<<grid, Tile::THREADS, 0, stream()>>>(p);
  DDPM_CUDA_CHECK_LAUNCH();
}
}  // namespace

template <>
struct Engine<float> {
  static constexpr int kVec = 4;
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

template void custom_forward<float>(const conv2d_fwd&);
template void custom_backward<float>(const conv2d_bwd&);

}  // namespace ddpm::cuda::conv
