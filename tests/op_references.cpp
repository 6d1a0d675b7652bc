#include "tests/op_references.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace ddpm::test::ref {

namespace {
size_t at(int64_t i) { return static_cast<size_t>(i); }

// Element `flat` of a's shape read from b, whose axes are either 1 (broadcast) or a's.
double broadcast_at(const std::vector<double>& b, const Shape& bs, const Shape& as, int64_t flat) {
  Shape index(as.size());
  for (size_t i = as.size(); i-- > 0;) index[i] = flat % as[i], flat /= as[i];
  int64_t off = 0;
  const size_t lead = as.size() - bs.size();
  for (size_t i = 0; i < bs.size(); ++i) off = off * bs[i] + (bs[i] == 1 ? 0 : index[lead + i]);
  return b[at(off)];
}

// PyTorch's align_corners=False source index, written out per output: [out, in] weights of an axis.
std::vector<std::vector<double>> axis_matrix(int64_t in, int64_t out) {
  std::vector<std::vector<double>> m(at(out), std::vector<double>(at(in), 0.0));
  for (int64_t o = 0; o < out; ++o) {
    const double src = std::max(0.0, (o + 0.5) * static_cast<double>(in) / static_cast<double>(out) - 0.5);
    const int64_t i0 = std::min<int64_t>(static_cast<int64_t>(std::floor(src)), in - 1);
    const int64_t i1 = std::min<int64_t>(i0 + 1, in - 1);
    const double f = src - static_cast<double>(i0);
    m[at(o)][at(i0)] += 1 - f;
    m[at(o)][at(i1)] += f;
  }
  return m;
}
}  // namespace

std::vector<double> binary(const Tensor& a, const Tensor& b, Binary op) {
  const std::vector<double> av = a.to_vector(), bv = b.to_vector();
  std::vector<double> out;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double y = broadcast_at(bv, b.shape(), a.shape(), i);
    out.push_back(op == Binary::Add ? av[at(i)] + y : op == Binary::Sub ? av[at(i)] - y : av[at(i)] * y);
  }
  return out;
}

std::vector<double> linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  const std::vector<double> xv = x.to_vector(), wv = w.to_vector();
  const std::vector<double> bv = b.defined() ? b.to_vector() : std::vector<double>(at(w.dim(0)), 0.0);
  const int64_t in = w.dim(1), outs = w.dim(0), rows = x.numel() / in;
  std::vector<double> out;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < outs; ++o) {
      double s = bv[at(o)];
      for (int64_t i = 0; i < in; ++i) s += xv[at(r * in + i)] * wv[at(o * in + i)];
      out.push_back(s);
    }
  return out;
}

std::vector<double> conv2d(const Tensor& xt, const Tensor& wt, const Tensor& bt, int stride, Pad2d pad) {
  const std::vector<double> x = xt.to_vector(), w = wt.to_vector();
  const int64_t n = xt.dim(0), h = xt.dim(1), wd = xt.dim(2), cin = xt.dim(3);
  const int64_t cout = wt.dim(0), kh = wt.dim(1), kw = wt.dim(2);
  const std::vector<double> b = bt.defined() ? bt.to_vector() : std::vector<double>(at(cout), 0.0);
  const int64_t oh = (h + pad.top + pad.bottom - kh) / stride + 1, ow = (wd + pad.left + pad.right - kw) / stride + 1;
  std::vector<double> out(at(n * oh * ow * cout));
  for (int64_t s = 0; s < n; ++s)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox)
        for (int64_t co = 0; co < cout; ++co) {
          double acc = b[at(co)];
          for (int64_t ky = 0; ky < kh; ++ky)
            for (int64_t kx = 0; kx < kw; ++kx) {
              const int64_t iy = oy * stride - pad.top + ky, ix = ox * stride - pad.left + kx;
              if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
              for (int64_t ci = 0; ci < cin; ++ci)
                acc += x[at(((s * h + iy) * wd + ix) * cin + ci)] * w[at(((co * kh + ky) * kw + kx) * cin + ci)];
            }
          out[at(((s * oh + oy) * ow + ox) * cout + co)] = acc;
        }
  return out;
}

GroupNormResult group_norm(const Tensor& xt, const Tensor& gamma_t, const Tensor& beta_t, int groups, double eps,
                           bool fuse_silu) {
  const std::vector<double> x = xt.to_vector(), gamma = gamma_t.to_vector(), beta = beta_t.to_vector();
  // Element i of x [N, ..., C] belongs to sample i / (numel / N) and channel i % C.
  const size_t n = at(xt.dim(0)), c = at(xt.dim(-1));
  const size_t g = static_cast<size_t>(groups), per_sample = x.size() / n, per_group = per_sample / g;
  auto group_of = [&](size_t i) { return (i / per_sample) * g + (i % c) / (c / g); };
  GroupNormResult r;
  r.mean.assign(n * g, 0.0);
  r.rstd.assign(n * g, 0.0);
  std::vector<double> var(n * g, 0.0);
  for (size_t i = 0; i < x.size(); ++i) r.mean[group_of(i)] += x[i] / static_cast<double>(per_group);
  for (size_t i = 0; i < x.size(); ++i) {
    const double dev = x[i] - r.mean[group_of(i)];
    var[group_of(i)] += dev * dev / static_cast<double>(per_group);
  }
  for (size_t k = 0; k < n * g; ++k) r.rstd[k] = 1.0 / std::sqrt(var[k] + eps);
  r.out.resize(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const size_t k = group_of(i);
    double y = (x[i] - r.mean[k]) * r.rstd[k] * gamma[i % c] + beta[i % c];
    if (fuse_silu) y = y / (1.0 + std::exp(-y));
    r.out[i] = y;
  }
  return r;
}

std::vector<double> attention(const Tensor& qt, const Tensor& kt, const Tensor& vt, int heads) {
  const std::vector<double> q = qt.to_vector(), k = kt.to_vector(), v = vt.to_vector();
  const int64_t n = qt.dim(0), t = qt.dim(1), c = qt.dim(2), d = c / heads;
  auto idx = [&](int64_t b, int64_t row, int64_t ch) { return at((b * t + row) * c + ch); };
  std::vector<double> out(q.size(), 0.0), w(at(t));
  for (int64_t b = 0; b < n; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < t; ++i) {
        double largest = -INFINITY;
        for (int64_t j = 0; j < t; ++j) {
          double s = 0;
          for (int64_t e = h * d; e < (h + 1) * d; ++e) s += q[idx(b, i, e)] * k[idx(b, j, e)];
          w[at(j)] = s / std::sqrt(static_cast<double>(d));
          largest = std::max(largest, w[at(j)]);
        }
        double total = 0;
        for (double& x : w) total += (x = std::exp(x - largest));
        for (int64_t j = 0; j < t; ++j)
          for (int64_t e = h * d; e < (h + 1) * d; ++e) out[idx(b, i, e)] += w[at(j)] / total * v[idx(b, j, e)];
      }
  return out;
}

std::vector<double> pool(const Tensor& xt, int kernel, int stride, int pad, Pool kind) {
  const std::vector<double> x = xt.to_vector();
  const int64_t n = xt.dim(0), h = xt.dim(1), w = xt.dim(2), ch = xt.dim(3);
  const int64_t oh = (h + 2 * pad - kernel) / stride + 1, ow = (w + 2 * pad - kernel) / stride + 1;
  std::vector<double> out;
  for (int64_t s = 0; s < n; ++s)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox)
        for (int64_t k = 0; k < ch; ++k) {
          double best = -std::numeric_limits<double>::infinity(), sum = 0;
          int64_t taps = 0;
          for (int64_t dy = 0; dy < kernel; ++dy)
            for (int64_t dx = 0; dx < kernel; ++dx) {
              const int64_t iy = oy * stride - pad + dy, ix = ox * stride - pad + dx;
              if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
              const double v = x[at(((s * h + iy) * w + ix) * ch + k)];
              best = std::max(best, v);
              sum += v;
              ++taps;
            }
          out.push_back(kind == Pool::Max             ? best
                        : kind == Pool::AvgIncludePad ? sum / (kernel * kernel)
                                                      : sum / static_cast<double>(taps));
        }
  return out;
}

std::vector<double> resize_bilinear(const Tensor& xt, int64_t oh, int64_t ow) {
  const std::vector<double> x = xt.to_vector();
  const int64_t n = xt.dim(0), h = xt.dim(1), w = xt.dim(2), ch = xt.dim(3);
  const auto ay = axis_matrix(h, oh), ax = axis_matrix(w, ow);
  std::vector<double> out(at(n * oh * ow * ch), 0.0);
  for (int64_t s = 0; s < n; ++s)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox)
        for (int64_t iy = 0; iy < h; ++iy)
          for (int64_t ix = 0; ix < w; ++ix) {
            const double wt = ay[at(oy)][at(iy)] * ax[at(ox)][at(ix)];
            if (wt == 0) continue;
            for (int64_t k = 0; k < ch; ++k)
              out[at(((s * oh + oy) * ow + ox) * ch + k)] += wt * x[at(((s * h + iy) * w + ix) * ch + k)];
          }
  return out;
}

}  // namespace ddpm::test::ref
