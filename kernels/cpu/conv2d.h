#pragma once
#include <cstdint>
#include <string>

namespace ddpm::cpu {
// Sets the bound on conv2d's im2col scratch (bytes; <= 0 restores the default) and returns the
// previous bound. Tests use it to force a batch to be split into several chunks.
int64_t set_conv2d_chunk_bytes(int64_t bytes);

// How float32 conv2d runs on the CPU (float64 always takes im2col + GEMM):
//   Auto    the default: Winograd or the direct kernels (kernels/cpu/conv2d_direct.h; see below),
//           except dx and dW with fewer than 8 input channels (and dx of strided convolutions),
//           which take im2col + GEMM; a fixed rule, the same in every process on a machine, so a
//           resumed run repeats the uninterrupted one exactly;
//   Timed   the faster of GEMM and Auto's choice per shape and per part (forward, dx, dW), timed at first use;
//           fastest, but two processes may choose differently and round differently;
//   Direct  the direct kernels wherever they apply (dx of a strided convolution takes the GEMM);
//   Gemm    im2col + GEMM everywhere;
//   Winograd  Winograd F(2x2, 3x3) (kernels/cpu/conv2d_winograd.h) for every 3x3 stride-1
//           convolution (forward, dx, dW), the direct kernels elsewhere.
// Auto and Timed take Winograd for 3x3 stride-1 convolutions with at least 32 channels in and out
// and an output of at least 8x8 pixels (7x7 for dW, and for all parts below AVX-512), a fixed
// rule too.
// The environment variable DDPM_CPU_CONV=auto|timed|direct|gemm|winograd sets it at first use.
enum class ConvMethod { Auto, Timed, Direct, Gemm, Winograd };
ConvMethod conv2d_method();
ConvMethod set_conv2d_method(ConvMethod method);  // returns the previous method
ConvMethod parse_conv2d_method(const std::string& name);  // "auto", "timed", "direct", "gemm" or "winograd"
}  // namespace ddpm::cpu
