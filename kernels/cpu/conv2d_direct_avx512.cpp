// The direct convolution's micro-kernels for AVX-512F: 16 floats per zmm register, 32 registers.
// Compiled with this level's flags (CMakeLists.txt); run only where best_cpu_isa() allows.
#include <cstdint>

#include "kernels/cpu/conv2d_direct.h"

namespace ddpm::cpu {
namespace direct_avx512 {
constexpr int kLanes = 16;
constexpr int kTile = 14;     // output pixels per forward tile
constexpr int kDwBlock = 12;  // output channels per dW tile
#include "kernels/cpu/conv2d_direct_kernels.h"
}  // namespace direct_avx512

const DirectKernels kDirectKernelsAvx512{direct_avx512::kLanes, direct_avx512::kDwBlock, direct_avx512::kTile, &direct_avx512::forward_pixels,
                                       &direct_avx512::dw_samples};

}  // namespace ddpm::cpu
