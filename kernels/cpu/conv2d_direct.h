// Direct NHWC convolution on the CPU (float32): no column matrix. The driver
// (conv2d_direct.cpp) pads the input into scratch once, packs the weights, splits the work over
// the OpenMP team and calls register-blocked micro-kernels compiled once per instruction set
// (conv2d_direct_avx512.cpp, _avx2.cpp, _generic.cpp, all from conv2d_direct_kernels.h) and
// chosen at run time from what the CPU supports.
#pragma once
#include <cstdint>

namespace ddpm::cpu {

// Instruction-set levels of the micro-kernels, lowest first.
enum class CpuIsa { Generic, Avx2, Avx512 };
const char* isa_name(CpuIsa isa);
CpuIsa best_cpu_isa();  // the highest level this CPU runs
// Forces the micro-kernels' level (clamped to best_cpu_isa()) and returns the previous one; tests
// run every level the machine has. The default is best_cpu_isa(), or lower by DDPM_CPU_ISA=generic|avx2.
CpuIsa set_conv2d_direct_isa(CpuIsa isa);

// One convolution's shape. Only the top and left pads enter the arithmetic; the bottom and right
// ones are already in oh and ow.
struct DirectConvShape {
  int64_t n, h, w, cin, cout, kh, kw, oh, ow, stride, pad_top, pad_left;
};

// out [N, OH, OW, Cout] = conv(x [N, H, W, Cin], w [Cout, KH, KW, Cin]) + bias (bias may be null).
void direct_conv2d_forward(const DirectConvShape& s, const float* x, const float* w, const float* bias, float* out);
// dx [N, H, W, Cin] (=|+=) the gradient of x from g [N, OH, OW, Cout]: the stride-1 convolution of
// g with the kernel flipped in space and transposed in channels. Needs direct_dx_supported(s).
bool direct_dx_supported(const DirectConvShape& s);
void direct_conv2d_backward_x(const DirectConvShape& s, const float* g, const float* w, float* dx, bool accumulate);
// dw [Cout, KH, KW, Cin] (=|+=) sum over pixels of g x outer products; any stride and padding.
void direct_conv2d_backward_w(const DirectConvShape& s, const float* x, const float* g, float* dw, bool accumulate);

// What a micro-kernel sees (plain structs shared by the per-ISA translation units).
struct DirectFwdArgs {
  const float* in;  // padded input [N, HP, WP, CS]: CS >= cin is the channel stride
  int64_t hp, wp, cs, cin;
  const float* w;  // packed weights [Cout blocks][KH][KW][cin][block]; block = 2 * lanes
  int64_t kh, kw, stride;
  float* out;  // [N, OH, OW, Cout]
  int64_t oh, ow, cout;
  const float* bias;  // [Cout] or null
  bool accumulate;    // out += instead of out =
};
struct DirectDwArgs {
  const float* in;  // padded input [N, HP, WP, CS], CS a multiple of the lanes, zero past cin
  int64_t hp, wp, cs, cin;
  const float* g;  // [N, OH, OW, Cout]
  int64_t oh, ow, cout, kh, kw, stride;
  float* dw;  // [Cout, KH, KW, cin]
};
struct DirectKernels {
  int lanes;     // floats per vector register
  int dw_block;  // output channels one dW micro-kernel call covers
  int tile;      // output pixels per forward micro-kernel call
  // Output pixels p0 .. p1 (flat: oy * OW + ox) of sample n, one block of 2 * lanes output channels.
  void (*forward_pixels)(const DirectFwdArgs& a, int64_t n, int64_t p0, int64_t p1, int64_t block);
  // dw[co0 .. co0 + dw_block, ky, kx, :] (+)= the sums over samples n0 .. n1; zero_first: from 0.
  void (*dw_samples)(const DirectDwArgs& a, int64_t n0, int64_t n1, int64_t ky, int64_t kx, int64_t co0,
                     bool zero_first);
};
extern const DirectKernels kDirectKernelsGeneric, kDirectKernelsAvx2, kDirectKernelsAvx512;
// The micro-kernels of the level in force (best_cpu_isa(), DDPM_CPU_ISA, set_conv2d_direct_isa);
// the Winograd convolution (conv2d_winograd.h) runs its products on them too.
const DirectKernels& direct_kernels();

}  // namespace ddpm::cpu
