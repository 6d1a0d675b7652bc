// The direct convolution's micro-kernels for AVX2 + FMA: 8 floats per ymm register, 16 registers.
// Compiled with this level's flags (CMakeLists.txt); run only where best_cpu_isa() allows.
#include <cstdint>

#include "kernels/cpu/conv2d_direct.h"

namespace ddpm::cpu {
namespace direct_avx2 {
constexpr int kLanes = 8;
constexpr int kTile = 6;     // output pixels per forward tile
constexpr int kDwBlock = 6;  // output channels per dW tile
#include "kernels/cpu/conv2d_direct_kernels.h"
}  // namespace direct_avx2

const DirectKernels kDirectKernelsAvx2{direct_avx2::kLanes, direct_avx2::kDwBlock, direct_avx2::kTile, &direct_avx2::forward_pixels,
                                       &direct_avx2::dw_samples};

}  // namespace ddpm::cpu
