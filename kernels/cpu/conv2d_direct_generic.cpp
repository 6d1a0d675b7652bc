// The direct convolution's micro-kernels for baseline x86-64 (SSE2) or any other CPU: 4-float vectors, 16 registers.
// Compiled with this level's flags (CMakeLists.txt); run only where best_cpu_isa() allows.
#include <cstdint>

#include "kernels/cpu/conv2d_direct.h"

namespace ddpm::cpu {
namespace direct_generic {
constexpr int kLanes = 4;
constexpr int kTile = 6;     // output pixels per forward tile
constexpr int kDwBlock = 6;  // output channels per dW tile
#include "kernels/cpu/conv2d_direct_kernels.h"
}  // namespace direct_generic

const DirectKernels kDirectKernelsGeneric{direct_generic::kLanes, direct_generic::kDwBlock, direct_generic::kTile, &direct_generic::forward_pixels,
                                       &direct_generic::dw_samples};

}  // namespace ddpm::cpu
