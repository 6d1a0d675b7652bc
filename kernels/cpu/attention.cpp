// attention: q, k, v, out [N, T, C]; head j owns channels [j d, (j+1) d), d = C / heads. Per
// (sample, head) pair the head's [T, d] blocks are addressed in place (leading dimension C, no
// copies):
//   S = Q K^T / sqrt(d) [T, T], P = softmax_rows(S), O = P V [T, d]
// The backward does not keep P from the forward: it recomputes it.
//
// BLAS runs its own threads and is never called inside an OpenMP region. Pairs are processed in
// chunks whose [T, T] matrices fit a scratch budget: the chunk's GEMMs run back to back, then one
// OpenMP region does the chunk's elementwise work. (Switching between BLAS and OpenMP once per
// pair is slow for small T: idle OpenMP threads keep spinning on the cores BLAS wants.)
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/blas.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/fast_exp.h"

namespace ddpm {

namespace {
using cpu::kParallelGrain;

// Elements of one [chunk, T, T] scratch buffer (16 MiB of float32); at least one pair per chunk.
constexpr int64_t kScratchElements = 1 << 22;

struct AttentionDims {
  int64_t n = 0, t = 0, c = 0, heads = 0, d = 0;
  int64_t pairs() const { return n * heads; }
  int64_t offset(int64_t pair) const { return (pair / heads) * t * c + (pair % heads) * d; }  // [n, 0, h d]
  int64_t chunk() const {  // pairs per chunk
    return std::max<int64_t>(1, std::min(kScratchElements / std::max<int64_t>(1, t * t), pairs()));
  }
};

AttentionDims attention_dims(const Tensor& q, int heads) {
  AttentionDims a;
  a.n = q.dim(0);
  a.t = q.dim(1);
  a.c = q.dim(2);
  a.heads = heads;
  a.d = a.c / heads;
  return a;
}

// s [count, T, T] = Q K^T / sqrt(d) for pairs [first, first + count), then softmax over each row.
// Subtracting the row max keeps every exponent <= 0 (no overflow); row sums are in double.
template <class T>
void attention_probs(const T* q, const T* k, const AttentionDims& a, int64_t first, int64_t count, T* s) {
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(a.d)));
  for (int64_t i = 0; i < count; ++i) {
    const int64_t at = a.offset(first + i);
    cpu::gemm(false, true, a.t, a.t, a.d, scale, q + at, a.c, k + at, a.c, T(0), s + i * a.t * a.t, a.t);
  }
  const int64_t rows = count * a.t;
#pragma omp parallel for if (rows * a.t > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    T* row = s + r * a.t;
    const T row_max = *std::max_element(row, row + a.t);
    double total = 0;
    for (int64_t j = 0; j < a.t; ++j) {
      row[j] = cpu::exp_vectorizable(row[j] - row_max);
      total += static_cast<double>(row[j]);
    }
    const T inv = static_cast<T>(1.0 / total);
    for (int64_t j = 0; j < a.t; ++j) row[j] *= inv;
  }
}

}  // namespace

void CpuBackend::attention_forward(const attention_fwd& args) {
  cpu::dispatch_float(args.q.dtype(), "attention", [&](auto tag) {
    using T = decltype(tag);
    const AttentionDims a = attention_dims(args.q, args.heads);
    const T* q = args.q.data<T>();
    const T* k = args.k.data<T>();
    const T* v = args.v.data<T>();
    T* out = args.out.data<T>();
    const int64_t tt = a.t * a.t, chunk = a.chunk();
    std::vector<T> p(static_cast<size_t>(chunk * tt));  // P [chunk, T, T]
    for (int64_t first = 0; first < a.pairs(); first += chunk) {
      const int64_t count = std::min(chunk, a.pairs() - first);
      attention_probs(q, k, a, first, count, p.data());
      for (int64_t i = 0; i < count; ++i) {  // O [T, d] = P [T, T] V [T, d]
        const int64_t at = a.offset(first + i);
        cpu::gemm(false, false, a.t, a.d, a.t, T(1), p.data() + i * tt, a.t, v + at, a.c, T(0), out + at,
                  a.c);
      }
    }
  });
}

void CpuBackend::attention_backward(const attention_bwd& args) {
  const bool want_q = args.grad_q.wanted(), want_k = args.grad_k.wanted(), want_v = args.grad_v.wanted();
  if (!want_q && !want_k && !want_v) return;
  cpu::dispatch_float(args.q.dtype(), "attention", [&](auto tag) {
    using T = decltype(tag);
    const AttentionDims a = attention_dims(args.q, args.heads);
    const T* q = args.q.data<T>();
    const T* k = args.k.data<T>();
    const T* v = args.v.data<T>();
    const T* o = args.out.data<T>();
    const T* dout = args.grad_out.data<T>();
    const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(a.d)));
    // GEMM beta: 1 adds into an accumulating slot; 0 overwrites (BLAS then never reads the slot).
    auto gemm_beta = [](const GradSlot& slot) { return T(slot.accumulate ? 1 : 0); };

    const bool want_ds = want_q || want_k;
    const int64_t tt = a.t * a.t, chunk = a.chunk();
    std::vector<T> p(static_cast<size_t>(chunk * tt));                 // P [chunk, T, T]
    std::vector<T> ds(want_ds ? static_cast<size_t>(chunk * tt) : 0);  // dP, then dS [chunk, T, T]
    for (int64_t first = 0; first < a.pairs(); first += chunk) {
      const int64_t count = std::min(chunk, a.pairs() - first);
      attention_probs(q, k, a, first, count, p.data());
      for (int64_t i = 0; i < count; ++i) {
        const int64_t at = a.offset(first + i);
        if (want_v)  // dV [T, d] = P^T [T, T] dO [T, d]
          cpu::gemm(true, false, a.t, a.d, a.t, T(1), p.data() + i * tt, a.t, dout + at, a.c,
                    gemm_beta(args.grad_v), args.grad_v.tensor.data<T>() + at, a.c);
        if (want_ds)  // dP [T, T] = dO [T, d] V^T [d, T]
          cpu::gemm(false, true, a.t, a.t, a.d, T(1), dout + at, a.c, v + at, a.c, T(0), ds.data() + i * tt,
                    a.t);
      }
      if (!want_ds) continue;

      // Softmax backward, row by row: dS_ij = P_ij (dP_ij - sum_l P_il dP_il), where
      // sum_l P_il dP_il = sum_c dO_ic O_ic because O = P V: a d-long dot instead of a T-long one.
      const int64_t rows = count * a.t;
      T* ds_all = ds.data();
      const T* p_all = p.data();
#pragma omp parallel for if (rows * a.t > kParallelGrain)
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t row_at = a.offset(first + r / a.t) + (r % a.t) * a.c;  // [n, i, h d]
        double dot = 0;
        for (int64_t c = 0; c < a.d; ++c)
          dot += static_cast<double>(dout[row_at + c]) * static_cast<double>(o[row_at + c]);
        const T row_dot = static_cast<T>(dot);
        T* ds_row = ds_all + r * a.t;
        const T* p_row = p_all + r * a.t;
        for (int64_t j = 0; j < a.t; ++j) ds_row[j] = p_row[j] * (ds_row[j] - row_dot);
      }

      for (int64_t i = 0; i < count; ++i) {
        const int64_t at = a.offset(first + i);
        if (want_q)  // dQ [T, d] = dS [T, T] K [T, d] / sqrt(d)
          cpu::gemm(false, false, a.t, a.d, a.t, scale, ds.data() + i * tt, a.t, k + at, a.c,
                    gemm_beta(args.grad_q), args.grad_q.tensor.data<T>() + at, a.c);
        if (want_k)  // dK [T, d] = dS^T [T, T] Q [T, d] / sqrt(d)
          cpu::gemm(true, false, a.t, a.d, a.t, scale, ds.data() + i * tt, a.t, q + at, a.c,
                    gemm_beta(args.grad_k), args.grad_k.tensor.data<T>() + at, a.c);
      }
    }
  });
}

}  // namespace ddpm
