// Winograd F(2x2, 3x3) on the CPU (kernels/cpu/conv2d_winograd.h for the algorithm).
//
// The output is cut into 2x2 tiles, numbered over all samples (tile t: sample t / (TH * TW), then
// row-major), and the tiles into blocks of kBlockTiles that one thread does start to end, in its
// own scratch (which stays in its L2):
//   1. V [16][tiles][Cin]: each tile's 4x4 input patch (zeros outside the input), transformed;
//   2. M [16][tiles][Cout] = V[p] U[p] for each of the 16 positions p, on the direct kernels
//      (a 1x1 convolution of a 1 x tiles "image"; U is packed once per call like their weights);
//   3. out (=|+=) A^T M A + bias, the tile's in-bounds pixels only.
// Channels go through the transforms in runs of kRun, as fixed-size loops the compiler vectorizes.
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/conv2d_winograd.h"

namespace ddpm::cpu {

namespace {

constexpr int kRun = 16;  // channels per transform step

// The stride-1 3x3 convolution that one call computes: in [N, H, W, Cin] -> out [N, OH, OW, Cout].
struct WinogradShape {
  int64_t n, h, w, cin, cout, oh, ow, pad_top, pad_left;
  int64_t tiles_h() const { return (oh + 1) / 2; }
  int64_t tiles_w() const { return (ow + 1) / 2; }
  int64_t tiles() const { return n * tiles_h() * tiles_w(); }
};

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

std::vector<float>& scratch(int slot) {
  thread_local std::vector<float> buffers[3];
  return buffers[slot];
}
float* scratch(int slot, int64_t count) {
  std::vector<float>& b = scratch(slot);
  if (static_cast<int64_t>(b.size()) < count) b.resize(static_cast<size_t>(count));
  return b.data();
}

// U packed for the direct kernels, per position p: [p][Cout blocks][Cin][block] (zeros past
// Cout), U = G g G^T of the 3x3 kernel g = at(co, ky, kx, ci). Computed in double, rounded once.
template <class At>
float* transformed_weights(int64_t cin, int64_t cout, int64_t block, At at, int64_t& per_position) {
  const int64_t blocks = (cout + block - 1) / block;
  per_position = blocks * cin * block;
  float* u = scratch(2, 16 * per_position);
  std::fill(u, u + 16 * per_position, 0.0f);
  for (int64_t co = 0; co < cout; ++co)
    for (int64_t ci = 0; ci < cin; ++ci) {
      double g[3][3], gg[4][3];  // gg = G g
      for (int ky = 0; ky < 3; ++ky)
        for (int kx = 0; kx < 3; ++kx) g[ky][kx] = at(co, ky, kx, ci);
      for (int kx = 0; kx < 3; ++kx) {
        gg[0][kx] = g[0][kx];
        gg[1][kx] = 0.5 * (g[0][kx] + g[1][kx] + g[2][kx]);
        gg[2][kx] = 0.5 * (g[0][kx] - g[1][kx] + g[2][kx]);
        gg[3][kx] = g[2][kx];
      }
      float* dst = u + ((co / block) * cin + ci) * block + co % block;
      for (int i = 0; i < 4; ++i) {  // row i of (G g) G^T
        const double r[4] = {gg[i][0], 0.5 * (gg[i][0] + gg[i][1] + gg[i][2]), 0.5 * (gg[i][0] - gg[i][1] + gg[i][2]),
                             gg[i][2]};
        for (int j = 0; j < 4; ++j) dst[(i * 4 + j) * per_position] = static_cast<float>(r[j]);
      }
    }
  return u;
}

// v[p][0 .. count) = (B^T d B)[p] for the 4x4 patch d[p] (16 rows of `count` <= kRun channels).
void input_transform(const float* const* d, int64_t count, float* const* v) {
  float x[16][kRun] = {}, t[16][kRun];
  for (int p = 0; p < 16; ++p) std::memcpy(x[p], d[p], static_cast<size_t>(count) * sizeof(float));
  for (int j = 0; j < 4; ++j)  // B^T d: along the rows
    for (int l = 0; l < kRun; ++l) {
      t[j][l] = x[j][l] - x[8 + j][l];
      t[4 + j][l] = x[4 + j][l] + x[8 + j][l];
      t[8 + j][l] = x[8 + j][l] - x[4 + j][l];
      t[12 + j][l] = x[4 + j][l] - x[12 + j][l];
    }
  for (int i = 0; i < 4; ++i)  // (B^T d) B: along the columns
    for (int l = 0; l < kRun; ++l) {
      x[4 * i][l] = t[4 * i][l] - t[4 * i + 2][l];
      x[4 * i + 1][l] = t[4 * i + 1][l] + t[4 * i + 2][l];
      x[4 * i + 2][l] = t[4 * i + 2][l] - t[4 * i + 1][l];
      x[4 * i + 3][l] = t[4 * i + 1][l] - t[4 * i + 3][l];
    }
  for (int p = 0; p < 16; ++p) std::memcpy(v[p], x[p], static_cast<size_t>(count) * sizeof(float));
}

// y[q][0 .. count) for the 2x2 outputs q = (A^T m A)[q] + bias, from m[p] (16 rows of `count`).
void output_transform(const float* const* m, int64_t count, const float* bias, float y[4][kRun]) {
  float x[16][kRun] = {}, s[8][kRun], b[kRun] = {};
  for (int p = 0; p < 16; ++p) std::memcpy(x[p], m[p], static_cast<size_t>(count) * sizeof(float));
  if (bias) std::memcpy(b, bias, static_cast<size_t>(count) * sizeof(float));
  for (int j = 0; j < 4; ++j)  // A^T m
    for (int l = 0; l < kRun; ++l) {
      s[j][l] = x[j][l] + x[4 + j][l] + x[8 + j][l];
      s[4 + j][l] = x[4 + j][l] - x[8 + j][l] - x[12 + j][l];
    }
  for (int i = 0; i < 2; ++i)  // (A^T m) A
    for (int l = 0; l < kRun; ++l) {
      y[2 * i][l] = s[4 * i][l] + s[4 * i + 1][l] + s[4 * i + 2][l] + b[l];
      y[2 * i + 1][l] = s[4 * i + 1][l] - s[4 * i + 2][l] - s[4 * i + 3][l] + b[l];
    }
}

// out (=|+=) the convolution of in with the weights at(co, ky, kx, ci), plus bias.
template <class At>
void winograd(const WinogradShape& t, const float* in, At at, const float* bias, float* out, bool accumulate) {
  if (t.n == 0 || t.oh <= 0 || t.ow <= 0) return;
  const DirectKernels& k = direct_kernels();
  const int64_t block = 2 * k.lanes, co_blocks = (t.cout + block - 1) / block;
  int64_t per_position = 0;
  const float* u = transformed_weights(t.cin, t.cout, block, at, per_position);
  // A few forward tiles' worth of rows per block: enough to reuse each packed weight run, small
  // enough that V and M stay in L2 (28 tiles x 256 channels x 16 positions: 458 KiB).
  const int64_t block_tiles = round_up(24, k.tile), tiles = t.tiles(), blocks = (tiles + block_tiles - 1) / block_tiles;
  const int64_t th = t.tiles_h(), tw = t.tiles_w();
  const int64_t work = tiles * 16 * t.cin * round_up(t.cout, block);
#pragma omp parallel if (work > (1 << 16))
  {
    float* v = scratch(0, 16 * block_tiles * t.cin);      // V [16][block_tiles][Cin]
    float* m = scratch(1, 16 * block_tiles * t.cout);     // M [16][block_tiles][Cout]
    std::vector<float> zeros(static_cast<size_t>(t.cin)); // what taps outside the input read
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t t0 = b * block_tiles, rows = std::min(block_tiles, tiles - t0);
      // 1. input transform
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t tile = t0 + r, s = tile / (th * tw), ty = (tile / tw) % th, tx = tile % tw;
        const float* patch[16];
        for (int i = 0; i < 4; ++i)
          for (int j = 0; j < 4; ++j) {
            const int64_t iy = 2 * ty - t.pad_top + i, ix = 2 * tx - t.pad_left + j;
            const bool inside = iy >= 0 && iy < t.h && ix >= 0 && ix < t.w;
            patch[i * 4 + j] = inside ? in + ((s * t.h + iy) * t.w + ix) * t.cin : zeros.data();
          }
        for (int64_t c0 = 0; c0 < t.cin; c0 += kRun) {
          const float* d[16];
          float* dst[16];
          for (int p = 0; p < 16; ++p) {
            d[p] = patch[p] + c0;
            dst[p] = v + (p * block_tiles + r) * t.cin + c0;
          }
          input_transform(d, std::min<int64_t>(kRun, t.cin - c0), dst);
        }
      }
      // 2. the 16 products, on the direct kernels
      for (int p = 0; p < 16; ++p) {
        const DirectFwdArgs a{v + p * block_tiles * t.cin, 1, block_tiles, t.cin, t.cin, u + p * per_position,
                              1, 1, 1, m + p * block_tiles * t.cout, 1, block_tiles, t.cout, nullptr, false};
        for (int64_t cb = 0; cb < co_blocks; ++cb) k.forward_pixels(a, 0, 0, rows, cb);
      }
      // 3. output transform
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t tile = t0 + r, s = tile / (th * tw), ty = (tile / tw) % th, tx = tile % tw;
        for (int64_t c0 = 0; c0 < t.cout; c0 += kRun) {
          const int64_t count = std::min<int64_t>(kRun, t.cout - c0);
          const float* src[16];
          for (int p = 0; p < 16; ++p) src[p] = m + (p * block_tiles + r) * t.cout + c0;
          float y[4][kRun];
          output_transform(src, count, bias ? bias + c0 : nullptr, y);
          for (int q = 0; q < 4; ++q) {
            const int64_t oy = 2 * ty + q / 2, ox = 2 * tx + q % 2;
            if (oy >= t.oh || ox >= t.ow) continue;
            float* o = out + ((s * t.oh + oy) * t.ow + ox) * t.cout + c0;
            if (accumulate)
              for (int64_t l = 0; l < count; ++l) o[l] += y[q][l];
            else
              std::memcpy(o, y[q], static_cast<size_t>(count) * sizeof(float));
          }
        }
      }
    }
  }
}

}  // namespace

bool winograd_supported(const DirectConvShape& s) { return s.kh == 3 && s.kw == 3 && s.stride == 1; }

void winograd_conv2d_forward(const DirectConvShape& s, const float* x, const float* w, const float* bias, float* out) {
  // w [Cout, 3, 3, Cin]
  winograd({s.n, s.h, s.w, s.cin, s.cout, s.oh, s.ow, s.pad_top, s.pad_left}, x,
           [&](int64_t co, int64_t ky, int64_t kx, int64_t ci) { return w[((co * 3 + ky) * 3 + kx) * s.cin + ci]; },
           bias, out, false);
}

void winograd_conv2d_backward_x(const DirectConvShape& s, const float* g, const float* w, float* dx, bool accumulate) {
  // dx [N, H, W, Cin] is the stride-1 convolution of g [N, OH, OW, Cout], padded by 2 - pad_top
  // and 2 - pad_left, with the kernel flipped in space and transposed: (ci, ky, kx, co) reads
  // w (co, 2 - ky, 2 - kx, ci).
  winograd({s.n, s.oh, s.ow, s.cout, s.cin, s.h, s.w, 2 - s.pad_top, 2 - s.pad_left}, g,
           [&](int64_t ci, int64_t ky, int64_t kx, int64_t co) {
             return w[((co * 3 + (2 - ky)) * 3 + (2 - kx)) * s.cin + ci];
           },
           nullptr, dx, accumulate);
}

}  // namespace ddpm::cpu
