// group_norm: x viewed as [N, S, C] (S = product of the spatial axes; 1 for a rank-2 x), the C
// channels split into G contiguous runs of Cg = C / G. Statistics per (sample, group) over its
// M = S * Cg elements, in double and two-pass (a large mean does not cancel the variance away):
//   xhat = (x - mean) * rstd, rstd = 1 / sqrt(var + eps) (biased variance)
//   y = xhat * gamma[c] + beta[c], out = y or silu(y)
// The backward recomputes xhat (and y, for the fused SiLU) from x and the saved mean and rstd.
// A sample bias b [N, C] (x + b normalized) folds into the per-channel mean tables: x + b - mean =
// x - (mean - b), so every pass reads x alone; its gradient is sum_s dx =
// rstd (gamma sum_s dy - S mean(h) - mean(h xhat) sum_s xhat) per (n, c).
// Dropout (p > 0) multiplies the output by the dropout op's mask (the same Philox draws, one block
// per four elements); the backward first masks grad_out the same way.
// Sums accumulate in double and x - mean keeps the double mean's precision (a float32 mean of 1e4
// is off by 5e-4): it is formed as (x - hi) - lo with the mean split into two values of the
// tensor's type (SplitMean below), so that, like the rest of the per-element arithmetic, it runs
// in float32 for float32 tensors (loops vectorize twice as wide as in double, and float32 exp is
// the vectorizable one of kernels/cpu/fast_exp.h).
//
// Every pass reads whole contiguous rows x[n, s, :] (a group is only Cg channels wide, often less
// than a cache line): reductions first sum per channel over blocks of rows, then combine the
// channels of a group. Blocks are summed in a fixed order, so results do not depend on the
// number of threads.
#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/philox.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/fast_exp.h"

namespace ddpm {

namespace {
using cpu::kParallelGrain;
using cpu::put;

// Rows per reduction block: about this many elements, so that blocks are worth a thread.
constexpr int64_t kBlockElements = 1 << 14;

struct GroupDims {
  int64_t n = 0, s = 0, c = 0, g = 0, cg = 0;
  int64_t count() const { return s * cg; }  // elements per (sample, group)
};

GroupDims group_dims(const Tensor& x, int groups) {
  GroupDims d;
  d.n = x.dim(0);
  d.c = x.dim(-1);
  d.s = d.n * d.c == 0 ? 0 : x.numel() / (d.n * d.c);
  d.g = groups;
  d.cg = d.c / groups;
  return d;
}

inline size_t at(int64_t i) { return static_cast<size_t>(i); }

// v[0, count) (the flat elements [first, first + count) of the output) times the dropout mask:
// keep(i) / (1 - p), keep(i) = uniform(seed, stream, offset + i) >= float(p), as the dropout op.
template <class T>
void apply_dropout(T* v, int64_t first, int64_t count, const DropoutMask& d) {
  const T keep_scale = static_cast<T>(1.0 / (1.0 - d.p));
  const float threshold = static_cast<float>(d.p);
  const uint64_t begin = d.offset + static_cast<uint64_t>(first), end = begin + static_cast<uint64_t>(count);
  for (uint64_t b = begin / 4; b < (end + 3) / 4; ++b) {
    float u[4];
    philox::uniform4(d.seed, d.stream, b, u);
    for (uint64_t w = 0; w < 4; ++w) {
      const uint64_t i = 4 * b + w;
      if (i >= begin && i < end) v[i - begin] = u[w] >= threshold ? v[i - begin] * keep_scale : T(0);
    }
  }
}

// channel_mean [N, C] - b [N, C] when the op has a sample bias (see the top of the file).
template <class T>
void subtract_sample_bias(std::vector<double>& channel_mean, const Tensor& bias) {
  if (!bias.defined()) return;
  const T* b = bias.data<T>();
  for (size_t i = 0; i < channel_mean.size(); ++i) channel_mean[i] -= static_cast<double>(b[i]);
}

// Per-sample sums [N, width]: fn(n, s_begin, s_end, acc) adds the rows [s_begin, s_end) of sample
// n into acc[0, width) (zeroed, private to the block). Blocks run in parallel.
template <class Fn>
std::vector<double> per_sample_sums(const GroupDims& d, int64_t width, const Fn& fn) {
  const int64_t rows_per_block = std::max<int64_t>(1, kBlockElements / std::max<int64_t>(1, d.c));
  const int64_t blocks = (d.s + rows_per_block - 1) / rows_per_block;  // per sample
  std::vector<double> partial(at(d.n * blocks * width), 0.0);
#pragma omp parallel for if (d.n * d.s * d.c > kParallelGrain)
  for (int64_t nb = 0; nb < d.n * blocks; ++nb) {
    const int64_t n = nb / blocks, s0 = (nb % blocks) * rows_per_block;
    fn(n, s0, std::min(d.s, s0 + rows_per_block), partial.data() + nb * width);
  }
  std::vector<double> total(at(d.n * width), 0.0);
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t b = 0; b < blocks; ++b)
      for (int64_t w = 0; w < width; ++w)
        total[at(n * width + w)] += partial[at((n * blocks + b) * width + w)];
  return total;
}

// [N, C] per-channel values (row stride `stride`, from column `first`) summed over each group,
// times `factor`: [N, G]. weight (optional, [C]) multiplies each channel first.
std::vector<double> group_sums(const std::vector<double>& values, const GroupDims& d, int64_t stride,
                               int64_t first, double factor, const std::vector<double>* weight = nullptr) {
  std::vector<double> out(at(d.n * d.g), 0.0);
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t c = 0; c < d.c; ++c) {
      const double v = values[at(n * stride + first + c)];
      out[at(n * d.g + c / d.cg)] += (weight ? (*weight)[at(c)] * v : v) * factor;
    }
  return out;
}

// [N, G] -> [N, C]: each channel gets its group's value, so row loops index by channel alone.
std::vector<double> per_channel(const std::vector<double>& per_group, const GroupDims& d) {
  std::vector<double> out(at(d.n * d.c));
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t c = 0; c < d.c; ++c) out[at(n * d.c + c)] = per_group[at(n * d.g + c / d.cg)];
  return out;
}

template <class T>
std::vector<double> widened(const T* v, int64_t count) {
  return std::vector<double>(v, v + count);
}

template <class T>
std::vector<T> narrowed(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

// The saved mean and rstd may be in x's dtype or in float64: a float32 mean of a large-mean
// input is off by up to half an ulp (5e-4 at 1e4), and the backward's xhat inherits that error.
void save_statistics(const Tensor& t, const std::vector<double>& values) {
  cpu::dispatch_float(t.dtype(), "group_norm", [&](auto tag) {
    using S = decltype(tag);
    S* dst = t.data<S>();
    for (size_t i = 0; i < values.size(); ++i) dst[i] = static_cast<S>(values[i]);
  });
}
std::vector<double> load_statistics(const Tensor& t) {
  std::vector<double> values;
  cpu::dispatch_float(t.dtype(), "group_norm", [&](auto tag) {
    using S = decltype(tag);
    values = widened(t.data<S>(), t.numel());
  });
  return values;
}

// x - mean with the double mean carried as hi + lo in T (hi = T(mean), lo = T(mean - hi)): the
// one step whose rounding matters at a large mean. x - hi is exact when x is within a factor 2 of
// hi (Sterbenz) and otherwise rounds to within half an ulp of a result that lo barely moves, so
// (x - hi) - lo is within about an ulp of the double difference, at T's vector width (float32
// twice as wide as double). For T = double, lo is 0 and this is x - mean.
template <class T>
struct SplitMean {
  std::vector<T> hi, lo;  // [N, C]
  explicit SplitMean(const std::vector<double>& mean) : hi(mean.size()), lo(mean.size()) {
    for (size_t i = 0; i < mean.size(); ++i) {
      hi[i] = static_cast<T>(mean[i]);
      lo[i] = static_cast<T>(mean[i] - static_cast<double>(hi[i]));
    }
  }
};
template <class T>
T centered(T x, T hi, T lo) {
  return (x - hi) - lo;
}

template <class T>
T silu(T y) {
  return y / (T(1) + cpu::exp_vectorizable(-y));
}
template <class T>
T silu_grad(T y) {  // s (1 + y (1 - s)), s = sigmoid(y)
  const T s = T(1) / (T(1) + cpu::exp_vectorizable(-y));
  return s * (T(1) + y * (T(1) - s));
}

}  // namespace

void CpuBackend::group_norm_forward(const group_norm_fwd& args) {
  cpu::dispatch_float(args.x.dtype(), "group_norm", [&](auto tag) {
    using T = decltype(tag);
    const GroupDims d = group_dims(args.x, args.groups);
    const T* x = args.x.data<T>();
    const T* gamma = args.gamma.data<T>();
    const T* beta = args.beta.data<T>();
    T* out = args.out.data<T>();
    const double count = static_cast<double>(d.count());

    // Pass 1: group means [N, G] from per-channel sums.
    auto sum_rows = [&](int64_t n, int64_t s0, int64_t s1, double* acc) {
      for (int64_t s = s0; s < s1; ++s) {
        const T* row = x + (n * d.s + s) * d.c;
        for (int64_t c = 0; c < d.c; ++c) acc[c] += static_cast<double>(row[c]);
      }
    };
    std::vector<double> channel_sums = per_sample_sums(d, d.c, sum_rows);
    if (args.sample_bias.defined()) {  // the sums of x + b
      const T* b = args.sample_bias.data<T>();
      for (int64_t i = 0; i < d.n * d.c; ++i) channel_sums[at(i)] += static_cast<double>(d.s) * static_cast<double>(b[i]);
    }
    const std::vector<double> mean = group_sums(channel_sums, d, d.c, 0, 1.0 / count);
    std::vector<double> channel_mean = per_channel(mean, d);  // [N, C]
    subtract_sample_bias<T>(channel_mean, args.sample_bias);  // x - (mean - b) = (x + b) - mean

    // Pass 2: squared deviations from the group mean -> rstd [N, G].
    auto sum_squares = [&](int64_t n, int64_t s0, int64_t s1, double* acc) {
      const double* m = channel_mean.data() + n * d.c;
      for (int64_t s = s0; s < s1; ++s) {
        const T* row = x + (n * d.s + s) * d.c;
        for (int64_t c = 0; c < d.c; ++c) {
          const double dev = static_cast<double>(row[c]) - m[c];
          acc[c] += dev * dev;
        }
      }
    };
    const std::vector<double> squares = per_sample_sums(d, d.c, sum_squares);
    std::vector<double> rstd = group_sums(squares, d, d.c, 0, 1.0 / count);
    for (double& r : rstd) r = 1.0 / std::sqrt(r + args.eps);

    // The saved copies feed only the backward; the double values normalize.
    save_statistics(args.mean, mean);
    save_statistics(args.rstd, rstd);

    // Pass 3, over rows (n, s): y = (x - mean) * (rstd * gamma) + beta.
    std::vector<double> channel_scale = per_channel(rstd, d);  // [N, C]
    for (int64_t i = 0; i < d.n * d.c; ++i) channel_scale[at(i)] *= static_cast<double>(gamma[i % d.c]);
    const std::vector<T> scale_t = narrowed<T>(channel_scale);
    const SplitMean<T> split(channel_mean);
    const int64_t rows = d.n * d.s;
    const bool fuse_silu = args.fuse_silu;
#pragma omp parallel for if (rows * d.c > kParallelGrain)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t n = r / d.s;
      const T* mh = split.hi.data() + n * d.c;
      const T* ml = split.lo.data() + n * d.c;
      const T* sc = scale_t.data() + n * d.c;
      const T* xr = x + r * d.c;
      T* yr = out + r * d.c;
      for (int64_t c = 0; c < d.c; ++c) yr[c] = centered(xr[c], mh[c], ml[c]) * sc[c] + beta[c];
      if (fuse_silu)
        for (int64_t c = 0; c < d.c; ++c) yr[c] = silu(yr[c]);
      if (args.dropout.p > 0) apply_dropout(yr, r * d.c, d.c, args.dropout);
    }
  });
}

void CpuBackend::group_norm_backward(const group_norm_bwd& args) {
  if (!args.grad_x.wanted() && !args.grad_gamma.wanted() && !args.grad_beta.wanted() &&
      !args.grad_sample_bias.wanted())
    return;
  cpu::dispatch_float(args.x.dtype(), "group_norm", [&](auto tag) {
    using T = decltype(tag);
    const GroupDims d = group_dims(args.x, args.groups);
    const T* x = args.x.data<T>();
    const T* grad_out = args.grad_out.data<T>();
    std::vector<T> dropped;  // with dropout: grad_out times the mask, the gradient at the normalized output
    if (args.dropout.p > 0) {
      dropped.assign(grad_out, grad_out + args.x.numel());
      const int64_t rows = d.n * d.s;
#pragma omp parallel for if (rows * d.c > kParallelGrain)
      for (int64_t r = 0; r < rows; ++r) apply_dropout(dropped.data() + r * d.c, r * d.c, d.c, args.dropout);
      grad_out = dropped.data();
    }
    const T* gamma_t = args.gamma.data<T>();
    const T* beta_t = args.beta.data<T>();
    const std::vector<double> gamma = widened(gamma_t, d.c);
    std::vector<double> channel_mean = per_channel(load_statistics(args.mean), d);  // [N, C]
    subtract_sample_bias<T>(channel_mean, args.sample_bias);
    const SplitMean<T> split(channel_mean);
    const bool bias_grad = args.grad_sample_bias.wanted();
    const std::vector<T> channel_rstd = narrowed<T>(per_channel(load_statistics(args.rstd), d));  // [N, C]
    const bool fuse_silu = args.fuse_silu;

    // dy [N, S, C]: the gradient at y = xhat * gamma + beta. Without the SiLU it is grad_out;
    // with it, pass 1 writes grad_out * silu'(y) into a scratch buffer that pass 2 reads back.
    std::vector<T> silu_dy(fuse_silu ? at(args.x.numel()) : 0);
    const T* dy = fuse_silu ? silu_dy.data() : grad_out;

    // Pass 1: per-channel sums over s of dy and of dy * xhat, [N, 2C] (dy in [0, C), dy * xhat in
    // [C, 2C)), and of xhat in [2C, 3C) for the sample bias's gradient. Summed over n they are
    // grad_beta and grad_gamma; summed over a group (weighted by gamma) they give the two means the
    // x gradient needs.
    const int64_t width = bias_grad ? 3 * d.c : 2 * d.c;
    auto sum_rows = [&](int64_t n, int64_t s0, int64_t s1, double* acc) {
      const T* mh = split.hi.data() + n * d.c;
      const T* ml = split.lo.data() + n * d.c;
      const T* rs = channel_rstd.data() + n * d.c;
      for (int64_t s = s0; s < s1; ++s) {
        const int64_t row = (n * d.s + s) * d.c;
        const T* xr = x + row;
        if (fuse_silu)
          for (int64_t c = 0; c < d.c; ++c) {
            const T y = centered(xr[c], mh[c], ml[c]) * rs[c] * gamma_t[c] + beta_t[c];
            silu_dy[at(row + c)] = grad_out[row + c] * silu_grad(y);
          }
        for (int64_t c = 0; c < d.c; ++c) {
          const T xhat = centered(xr[c], mh[c], ml[c]) * rs[c];
          acc[c] += static_cast<double>(dy[row + c]);
          acc[d.c + c] += static_cast<double>(dy[row + c] * xhat);
          if (bias_grad) acc[2 * d.c + c] += static_cast<double>(xhat);
        }
      }
    };
    const std::vector<double> sums = per_sample_sums(d, width, sum_rows);

    if (args.grad_gamma.wanted() || args.grad_beta.wanted()) {
      for (int64_t c = 0; c < d.c; ++c) {
        double dgamma = 0, dbeta = 0;
        for (int64_t n = 0; n < d.n; ++n) {
          dbeta += sums[at(n * width + c)];
          dgamma += sums[at(n * width + d.c + c)];
        }
        if (args.grad_gamma.wanted())
          put(args.grad_gamma.tensor.data<T>(), c, static_cast<T>(dgamma), args.grad_gamma.accumulate);
        if (args.grad_beta.wanted())
          put(args.grad_beta.tensor.data<T>(), c, static_cast<T>(dbeta), args.grad_beta.accumulate);
      }
    }
    if (!args.grad_x.wanted() && !bias_grad) return;

    // With h = dy * gamma (the gradient at xhat), per (sample, group):
    //   dx = rstd * (h - mean(h) - xhat * mean(h * xhat))
    const double inv_count = 1.0 / static_cast<double>(d.count());
    const std::vector<double> mean_h_d = per_channel(group_sums(sums, d, width, 0, inv_count, &gamma), d);
    const std::vector<double> mean_h_xhat_d = per_channel(group_sums(sums, d, width, d.c, inv_count, &gamma), d);
    if (bias_grad) {  // db [N, C] = sum_s dx = rstd (gamma sum dy - S mean(h) - mean(h xhat) sum xhat)
      const std::vector<double> rstd_d = per_channel(load_statistics(args.rstd), d);
      T* db = args.grad_sample_bias.tensor.data<T>();
      const double s = static_cast<double>(d.s);
      for (int64_t n = 0; n < d.n; ++n)
        for (int64_t c = 0; c < d.c; ++c) {
          const size_t i = at(n * d.c + c);
          const double* row = sums.data() + n * width;
          const double v = rstd_d[i] * (gamma[at(c)] * row[c] - s * mean_h_d[i] - mean_h_xhat_d[i] * row[2 * d.c + c]);
          put(db, n * d.c + c, static_cast<T>(v), args.grad_sample_bias.accumulate);
        }
    }
    if (!args.grad_x.wanted()) return;
    const std::vector<T> mean_h = narrowed<T>(mean_h_d);
    const std::vector<T> mean_h_xhat = narrowed<T>(mean_h_xhat_d);

    // Pass 2, over rows (n, s).
    T* grad_x = args.grad_x.tensor.data<T>();
    const bool accumulate = args.grad_x.accumulate;
    const int64_t rows = d.n * d.s;
#pragma omp parallel for if (rows * d.c > kParallelGrain)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t nc = (r / d.s) * d.c;  // first channel of this sample in the [N, C] tables
      const T* rs = channel_rstd.data() + nc;
      const T* m_hi = split.hi.data() + nc;
      const T* m_lo = split.lo.data() + nc;
      const T* mh = mean_h.data() + nc;
      const T* mhx = mean_h_xhat.data() + nc;
      const T* xr = x + r * d.c;
      const T* dyr = dy + r * d.c;
      T* gx = grad_x + r * d.c;
      if (accumulate)
        for (int64_t c = 0; c < d.c; ++c)
          gx[c] += rs[c] * (dyr[c] * gamma_t[c] - mh[c] - centered(xr[c], m_hi[c], m_lo[c]) * rs[c] * mhx[c]);
      else
        for (int64_t c = 0; c < d.c; ++c)
          gx[c] = rs[c] * (dyr[c] * gamma_t[c] - mh[c] - centered(xr[c], m_hi[c], m_lo[c]) * rs[c] * mhx[c]);
    }
  });
}

}  // namespace ddpm
