// Winograd F(2x2, 3x3) convolution on the CPU (float32, NHWC), for 3x3 stride-1 convolutions and
// their stride-1 input gradients: each 2x2 block of output pixels costs 16 multiplies per
// (input, output) channel pair instead of 36 (2.25x fewer), at the price of an input transform
// (4x4 input patch -> 16 values per channel) and an output transform (16 -> 2x2), both additions
// only. With d the 4x4 input patch, g the 3x3 kernel and m = U * V elementwise per position,
//   V = B^T d B,  U = G g G^T,  y (2x2) = A^T (sum over input channels of U V) A,
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
//   A^T = [1 1 1 0; 0 1 -1 -1]
// (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2015). The sum over input
// channels is, per position, a [tiles, Cin] x [Cin, Cout] product that runs on the direct
// convolution's register-blocked micro-kernels (as a 1x1 convolution), so it dispatches to
// AVX-512 / AVX2 / generic the same way (kernels/cpu/conv2d_direct.h).
//
// Every output element is computed by one thread in a fixed order, so results do not depend on
// the number of threads. They differ from the direct kernels' in the last bits (relative error of
// a few float32 ulps of the sum of |terms|; tests/test_conv2d_winograd.cpp bounds it).
#pragma once

#include "kernels/cpu/conv2d_direct.h"

namespace ddpm::cpu {

// 3x3 kernels at stride 1 (any pads: taps outside the input read as zero).
bool winograd_supported(const DirectConvShape& s);
// out [N, OH, OW, Cout] = conv(x [N, H, W, Cin], w [Cout, 3, 3, Cin]) + bias (bias may be null).
void winograd_conv2d_forward(const DirectConvShape& s, const float* x, const float* w, const float* bias, float* out);
// dx [N, H, W, Cin] (=|+=) the gradient of x from g [N, OH, OW, Cout]; needs winograd_supported(s)
// and direct_dx_supported(s).
void winograd_conv2d_backward_x(const DirectConvShape& s, const float* g, const float* w, float* dx, bool accumulate);
// dw [Cout, 3, 3, Cin] (=|+=) the gradient of w from x [N, H, W, Cin] and g [N, OH, OW, Cout]:
// per position a product of transformed gradients and inputs, summed over every tile
// (conv2d_winograd.cpp), then mapped back to the 3x3 taps. Needs winograd_supported(s).
void winograd_conv2d_backward_w(const DirectConvShape& s, const float* x, const float* g, float* dw, bool accumulate);

}  // namespace ddpm::cpu
