// Winograd F(2x2, 3x3) on the CPU (kernels/cpu/conv2d_winograd.h for the algorithm).
//
// Forward and dx: the output is cut into 2x2 tiles, numbered over all samples (tile t: sample
// t / (TH * TW), then row-major), and the tiles into blocks of 24 to 28 (a multiple of the
// micro-kernel's tile) that one thread does start to end, in its own scratch (L1/L2-resident):
//   1. V [16][tiles][Cin]: each tile's 4x4 input patch (zeros outside the input), transformed;
//   2. M [16][tiles][Cout] = V[p] U[p] for each of the 16 positions p, on the direct kernels
//      (a 1x1 convolution of a 1 x tiles "image"; U is packed once per call like their weights);
//   3. out (=|+=) A^T M A + bias, the tile's in-bounds pixels only.
// dW: see winograd_conv2d_backward_w below.
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

// The distance between two positions' rows in V and M: `size` floats plus one cache line, so that
// the 16 rows a transform writes at once never share an L1 set (a chunk of 256 tiles x 32 channels
// is 32 KiB, and 16 such rows thrashed one set: dW's transforms ran 2x slower).
int64_t position_pitch(int64_t size) { return size + 16; }

std::vector<float>& scratch(int slot) {
  thread_local std::vector<float> buffers[6];
  return buffers[slot];
}
float* scratch(int slot, int64_t count) {
  std::vector<float>& b = scratch(slot);
  if (static_cast<int64_t>(b.size()) < count) b.resize(static_cast<size_t>(count));
  return b.data();
}

// Output-channel block b of U packed for the direct kernels, per position p: u [p][Cout blocks][Cin]
// [block], positions `stride` floats apart (zeros past Cout), U = G g G^T of the 3x3 kernel
// g = at(co, ky, kx, ci). Each ci writes 16 runs of `block` consecutive floats, one per position.
template <class At>
void transform_weights(int64_t cin, int64_t cout, int64_t block, At at, int64_t b, float* u, int64_t stride) {
  for (int64_t ci = 0; ci < cin; ++ci) {
    float* dst = u + (b * cin + ci) * block;
    for (int64_t j = 0; j < block; ++j) {
      const int64_t co = b * block + j;
      if (co >= cout) {
        for (int p = 0; p < 16; ++p) dst[p * stride + j] = 0.0f;
        continue;
      }
      float g[3][3], gg[4][3];  // gg = G g
      for (int ky = 0; ky < 3; ++ky)
        for (int kx = 0; kx < 3; ++kx) g[ky][kx] = at(co, ky, kx, ci);
      for (int kx = 0; kx < 3; ++kx) {
        gg[0][kx] = g[0][kx];
        gg[1][kx] = 0.5f * (g[0][kx] + g[1][kx] + g[2][kx]);
        gg[2][kx] = 0.5f * (g[0][kx] - g[1][kx] + g[2][kx]);
        gg[3][kx] = g[2][kx];
      }
      for (int i = 0; i < 4; ++i) {  // row i of (G g) G^T
        dst[(4 * i) * stride + j] = gg[i][0];
        dst[(4 * i + 1) * stride + j] = 0.5f * (gg[i][0] + gg[i][1] + gg[i][2]);
        dst[(4 * i + 2) * stride + j] = 0.5f * (gg[i][0] - gg[i][1] + gg[i][2]);
        dst[(4 * i + 3) * stride + j] = gg[i][2];
      }
    }
  }
}

// v[p][0 .. count) = (B^T d B)[p] for the 4x4 patch d[p] (16 rows of `count` channels; count is
// kRun when kFull, so that the loops have a constant trip count and vectorize whole).
template <bool kFull>
void input_transform(const float* const* d, int64_t count, float* const* v) {
  const int64_t n = kFull ? kRun : count;
  float t[16][kRun], x[16][kRun];
  for (int j = 0; j < 4; ++j)  // B^T d: along the rows
    for (int64_t l = 0; l < n; ++l) {
      t[j][l] = d[j][l] - d[8 + j][l];
      t[4 + j][l] = d[4 + j][l] + d[8 + j][l];
      t[8 + j][l] = d[8 + j][l] - d[4 + j][l];
      t[12 + j][l] = d[4 + j][l] - d[12 + j][l];
    }
  for (int i = 0; i < 4; ++i)  // (B^T d) B: along the columns
    for (int64_t l = 0; l < n; ++l) {
      x[4 * i][l] = t[4 * i][l] - t[4 * i + 2][l];
      x[4 * i + 1][l] = t[4 * i + 1][l] + t[4 * i + 2][l];
      x[4 * i + 2][l] = t[4 * i + 2][l] - t[4 * i + 1][l];
      x[4 * i + 3][l] = t[4 * i + 1][l] - t[4 * i + 3][l];
    }
  for (int p = 0; p < 16; ++p)
    for (int64_t l = 0; l < n; ++l) v[p][l] = x[p][l];
}

// o[q] (=|+=) (A^T m A)[q] + bias for the 2x2 outputs q (null o[q]: outside the image), from m[p]
// (16 rows of `count` channels, kRun when kFull).
template <bool kFull>
void output_transform(const float* const* m, int64_t count, const float* bias, float* const* o, bool accumulate) {
  const int64_t n = kFull ? kRun : count;
  float s[8][kRun], y[4][kRun];
  for (int j = 0; j < 4; ++j)  // A^T m
    for (int64_t l = 0; l < n; ++l) {
      s[j][l] = m[j][l] + m[4 + j][l] + m[8 + j][l];
      s[4 + j][l] = m[4 + j][l] - m[8 + j][l] - m[12 + j][l];
    }
  for (int i = 0; i < 2; ++i)  // (A^T m) A
    for (int64_t l = 0; l < n; ++l) {
      const float b = bias ? bias[l] : 0.0f;
      y[2 * i][l] = s[4 * i][l] + s[4 * i + 1][l] + s[4 * i + 2][l] + b;
      y[2 * i + 1][l] = s[4 * i + 1][l] - s[4 * i + 2][l] - s[4 * i + 3][l] + b;
    }
  for (int q = 0; q < 4; ++q) {
    if (!o[q]) continue;
    if (accumulate)
      for (int64_t l = 0; l < n; ++l) o[q][l] += y[q][l];
    else
      for (int64_t l = 0; l < n; ++l) o[q][l] = y[q][l];
  }
}

// gt[p][0 .. count) = (A dy A^T)[p], the 4x4 image of one tile's 2x2 output gradient dy[q]
// (null dy[q]: outside the output, zero), A = [1 0; 1 1; 1 -1; 0 -1].
template <bool kFull>
void gradient_transform(const float* const* dy, int64_t count, float* const* gt) {
  const int64_t n = kFull ? kRun : count;
  float y[4][kRun], h[8][kRun];
  for (int q = 0; q < 4; ++q) {  // (a branch per row: inside the loop it becomes a gather)
    if (dy[q])
      for (int64_t l = 0; l < n; ++l) y[q][l] = dy[q][l];
    else
      for (int64_t l = 0; l < n; ++l) y[q][l] = 0.0f;
  }
  for (int c = 0; c < 2; ++c)  // A dy: along the rows
    for (int64_t l = 0; l < n; ++l) {
      h[c][l] = y[c][l];
      h[2 + c][l] = y[c][l] + y[2 + c][l];
      h[4 + c][l] = y[c][l] - y[2 + c][l];
      h[6 + c][l] = -y[2 + c][l];
    }
  for (int i = 0; i < 4; ++i)  // (A dy) A^T: along the columns
    for (int64_t l = 0; l < n; ++l) {
      gt[4 * i][l] = h[2 * i][l];
      gt[4 * i + 1][l] = h[2 * i][l] + h[2 * i + 1][l];
      gt[4 * i + 2][l] = h[2 * i][l] - h[2 * i + 1][l];
      gt[4 * i + 3][l] = -h[2 * i + 1][l];
    }
}

// Pointers to the 16 input pixels of a tile's 4x4 patch (zeros outside the input).
void patch_pointers(const WinogradShape& t, const float* in, const float* zeros, int64_t tile, const float** patch) {
  const int64_t th = t.tiles_h(), tw = t.tiles_w();
  const int64_t s = tile / (th * tw), ty = (tile / tw) % th, tx = tile % tw;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) {
      const int64_t iy = 2 * ty - t.pad_top + i, ix = 2 * tx - t.pad_left + j;
      const bool inside = iy >= 0 && iy < t.h && ix >= 0 && ix < t.w;
      patch[i * 4 + j] = inside ? in + ((s * t.h + iy) * t.w + ix) * t.cin : zeros;
    }
}

// out (=|+=) the convolution of in with the weights at(co, ky, kx, ci), plus bias.
template <class At>
void winograd(const WinogradShape& t, const float* in, At at, const float* bias, float* out, bool accumulate) {
  if (t.n == 0 || t.oh <= 0 || t.ow <= 0) return;
  const DirectKernels& k = direct_kernels();
  const int64_t block = 2 * k.lanes, co_blocks = (t.cout + block - 1) / block;
  const int64_t per_position = co_blocks * t.cin * block;
  float* u = scratch(2, 16 * per_position);  // U, packed (transform_weights)
  // A few forward tiles' worth of rows per block: enough to reuse each packed weight run, small
  // enough that V and M stay in L2 (28 tiles x 256 channels x 16 positions: 458 KiB).
  const int64_t block_tiles = round_up(24, k.tile), tiles = t.tiles(), blocks = (tiles + block_tiles - 1) / block_tiles;
  const int64_t th = t.tiles_h(), tw = t.tiles_w();
  const int64_t work = tiles * 16 * t.cin * round_up(t.cout, block);
  // One parallel region (each costs a wake-up of the team, slow when other processes hold the
  // cores): the weights, a barrier, then the tiles.
#pragma omp parallel if (work > (1 << 16))
  {
#pragma omp for schedule(static)
    for (int64_t cb = 0; cb < co_blocks; ++cb) transform_weights(t.cin, t.cout, block, at, cb, u, per_position);
    const int64_t v_pitch = position_pitch(block_tiles * t.cin), m_pitch = position_pitch(block_tiles * t.cout);
    float* v = scratch(0, 16 * v_pitch);  // V [16][block_tiles][Cin], positions v_pitch apart
    float* m = scratch(1, 16 * m_pitch);  // M [16][block_tiles][Cout], m_pitch apart
    const std::vector<float> zeros(static_cast<size_t>(t.cin), 0.0f);  // what taps outside the input read
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t t0 = b * block_tiles, rows = std::min(block_tiles, tiles - t0);
      // 1. input transform
      for (int64_t r = 0; r < rows; ++r) {
        const float* patch[16];
        patch_pointers(t, in, zeros.data(), t0 + r, patch);
        for (int64_t c0 = 0; c0 < t.cin; c0 += kRun) {
          const float* d[16];
          float* dst[16];
          for (int p = 0; p < 16; ++p) {
            d[p] = patch[p] + c0;
            dst[p] = v + p * v_pitch + r * t.cin + c0;
          }
          if (t.cin - c0 >= kRun)
            input_transform<true>(d, kRun, dst);
          else
            input_transform<false>(d, t.cin - c0, dst);
        }
      }
      // 2. the 16 products, on the direct kernels
      for (int p = 0; p < 16; ++p) {
        const DirectFwdArgs a{v + p * v_pitch, 1, block_tiles, t.cin, t.cin, u + p * per_position,
                              1, 1, 1, m + p * m_pitch, 1, block_tiles, t.cout, nullptr, false};
        for (int64_t cb = 0; cb < co_blocks; ++cb) k.forward_pixels(a, 0, 0, rows, cb);
      }
      // 3. output transform
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t tile = t0 + r, s = tile / (th * tw), ty = (tile / tw) % th, tx = tile % tw;
        for (int64_t c0 = 0; c0 < t.cout; c0 += kRun) {
          const int64_t count = std::min<int64_t>(kRun, t.cout - c0);
          const float* src[16];
          for (int p = 0; p < 16; ++p) src[p] = m + p * m_pitch + r * t.cout + c0;
          float* o[4];
          for (int q = 0; q < 4; ++q) {
            const int64_t oy = 2 * ty + q / 2, ox = 2 * tx + q % 2;
            o[q] = oy < t.oh && ox < t.ow ? out + ((s * t.oh + oy) * t.ow + ox) * t.cout + c0 : nullptr;
          }
          const float* bias_run = bias ? bias + c0 : nullptr;
          if (count == kRun)
            output_transform<true>(src, kRun, bias_run, o, accumulate);
          else
            output_transform<false>(src, count, bias_run, o, accumulate);
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

// dW through the same transforms: y = A^T [U . V] A with U = G w G^T is linear in U, so
// dL/dU[p] = sum over tiles of (A dy A^T)[p] V[p] (per position p a [Cout, tiles] x [tiles, Cin]
// product, on the direct kernels' dW micro-kernel) and dW = G^T (dL/dU) G per (co, ci).
// The tiles are cut into slabs by the shape alone (at most kSlabs); one thread sums a slab start to
// end into the slab's own dL/dU, a chunk of tiles at a time in its own scratch, and the slabs are
// added in order at the end: no barrier inside (a team that waits at every chunk for a thread
// the OS has parked ran 2 to 3x slower on the loaded 2-core machine), and the result does not
// depend on the number of threads.
constexpr int64_t kSlabs = 16;

void winograd_conv2d_backward_w(const DirectConvShape& s, const float* x, const float* g, float* dw, bool accumulate) {
  const WinogradShape t{s.n, s.h, s.w, s.cin, s.cout, s.oh, s.ow, s.pad_top, s.pad_left};
  const int64_t dw_size = s.cout * 9 * s.cin, tiles = s.oh > 0 && s.ow > 0 ? t.tiles() : 0;
  if (tiles == 0) {
    if (!accumulate) std::fill(dw, dw + dw_size, 0.0f);
    return;
  }
  const DirectKernels& k = direct_kernels();
  const int64_t cs = round_up(s.cin, k.lanes);  // V's channel pitch: the dW kernel reads whole vectors
  // About 1 MiB of V and A dy A^T per chunk; slabs of at least 256 tiles (shorter runs of the
  // dW micro-kernel and more slab sums to add cost 1.25x at 7x7, 64 tiles a slab).
  const int64_t chunk = std::clamp<int64_t>((int64_t{1} << 18) / (16 * (cs + s.cout)), 16, tiles);
  // The slabs' partial dL/dU stay under 16 MiB in all (4 slabs at 256 x 256 channels).
  const int64_t du_size = 16 * s.cout * s.cin;
  const int64_t slabs = std::clamp<int64_t>(std::min(tiles / 256, (int64_t{1} << 22) / du_size), 1, kSlabs);
  float* du = scratch(5, slabs * du_size);  // dL/dU per slab [slabs][16][Cout][Cin]
  const int64_t th = t.tiles_h(), tw = t.tiles_w();
  const int64_t co_blocks = (s.cout + k.dw_block - 1) / k.dw_block;
  const int64_t work = tiles * 16 * s.cin * s.cout;
  // One parallel region: the slabs, a barrier, then the sums over slabs and the 3x3 transform.
#pragma omp parallel if (work > (1 << 16))
  {
    const int64_t v_pitch = position_pitch(chunk * cs), gt_pitch = position_pitch(chunk * s.cout);
    float* v = scratch(3, 16 * v_pitch);    // V [16][chunk][CS], zero past Cin, positions v_pitch apart
    float* gt = scratch(4, 16 * gt_pitch);  // A dy A^T [16][chunk][Cout], gt_pitch apart
    const std::vector<float> zeros(static_cast<size_t>(std::max(s.cin, s.cout)), 0.0f);
#pragma omp for schedule(dynamic)
    for (int64_t slab = 0; slab < slabs; ++slab) {
      const int64_t slab_begin = tiles * slab / slabs, slab_end = tiles * (slab + 1) / slabs;
      float* slab_du = du + slab * du_size;
      for (int64_t c0 = slab_begin; c0 < slab_end; c0 += chunk) {
        const int64_t rows = std::min(chunk, slab_end - c0);
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t tile = c0 + r, n = tile / (th * tw), ty = (tile / tw) % th, tx = tile % tw;
          const float* patch[16];
          patch_pointers(t, x, zeros.data(), tile, patch);
          const float* d[16];
          float* dst[16];
          for (int64_t ci0 = 0; ci0 < s.cin; ci0 += kRun) {
            for (int p = 0; p < 16; ++p) {
              d[p] = patch[p] + ci0;
              dst[p] = v + p * v_pitch + r * cs + ci0;
            }
            if (s.cin - ci0 >= kRun)
              input_transform<true>(d, kRun, dst);
            else
              input_transform<false>(d, s.cin - ci0, dst);
          }
          for (int p = 0; p < 16; ++p) std::fill(v + p * v_pitch + r * cs + s.cin, v + p * v_pitch + (r + 1) * cs, 0.0f);
          const float* dy[4];
          for (int q = 0; q < 4; ++q) {
            const int64_t oy = 2 * ty + q / 2, ox = 2 * tx + q % 2;
            dy[q] = oy < s.oh && ox < s.ow ? g + ((n * s.oh + oy) * s.ow + ox) * s.cout : nullptr;
          }
          for (int64_t co0 = 0; co0 < s.cout; co0 += kRun) {
            const float* src[4];
            for (int q = 0; q < 4; ++q) src[q] = dy[q] ? dy[q] + co0 : nullptr;
            for (int p = 0; p < 16; ++p) dst[p] = gt + p * gt_pitch + r * s.cout + co0;
            if (s.cout - co0 >= kRun)
              gradient_transform<true>(src, kRun, dst);
            else
              gradient_transform<false>(src, s.cout - co0, dst);
          }
        }
        for (int p = 0; p < 16; ++p) {
          const DirectDwArgs a{v + p * v_pitch, 1, rows, cs, s.cin, gt + p * gt_pitch, 1, rows, s.cout, 1, 1, 1,
                               slab_du + p * s.cout * s.cin};
          for (int64_t cb = 0; cb < co_blocks; ++cb) k.dw_samples(a, 0, 1, 0, 0, cb * k.dw_block, c0 == slab_begin);
        }
      }
    }
  // dW [Cout, 3, 3, Cin] (=|+=) G^T dL/dU G, G^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1], with
  // dL/dU the slabs' sums added in slab order.
#pragma omp for schedule(static)
  for (int64_t co = 0; co < s.cout; ++co)
    for (int64_t ci = 0; ci < s.cin; ++ci) {
      float u[4][4], h[3][4];
      for (int p = 0; p < 16; ++p) {
        const float* entry = du + (p * s.cout + co) * s.cin + ci;
        float sum = entry[0];
        for (int64_t slab = 1; slab < slabs; ++slab) sum += entry[slab * du_size];
        u[p / 4][p % 4] = sum;
      }
      for (int j = 0; j < 4; ++j) {
        h[0][j] = u[0][j] + 0.5f * (u[1][j] + u[2][j]);
        h[1][j] = 0.5f * (u[1][j] - u[2][j]);
        h[2][j] = 0.5f * (u[1][j] + u[2][j]) + u[3][j];
      }
      for (int i = 0; i < 3; ++i) {
        const float r[3] = {h[i][0] + 0.5f * (h[i][1] + h[i][2]), 0.5f * (h[i][1] - h[i][2]),
                            0.5f * (h[i][1] + h[i][2]) + h[i][3]};
        for (int j = 0; j < 3; ++j) {
          float& out = dw[((co * 3 + i) * 3 + j) * s.cin + ci];
          out = accumulate ? out + r[j] : r[j];
        }
      }
    }
  }
}

}  // namespace ddpm::cpu
