// Plain-loop float64 definitions of the ops, written independently of the backends: the op
// table's references (tests/op_cases.cpp) and the special-case tests that compare against them.
// Tensors are read as float64 CPU values; results are flat, row-major.
#pragma once
#include <vector>

#include "engine/pad2d.h"
#include "engine/tensor.h"

namespace ddpm::test::ref {

enum class Binary { Add, Sub, Mul };
// a (op) b, b broadcast to a's shape by explicit index arithmetic.
std::vector<double> binary(const Tensor& a, const Tensor& b, Binary op);

// x [..., in], w [out, in], b [out] or undefined -> [..., out]
std::vector<double> linear(const Tensor& x, const Tensor& w, const Tensor& b);
// x [N,H,W,Cin], w [Cout,KH,KW,Cin], b [Cout] or undefined, four-sided zero padding.
std::vector<double> conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, Pad2d pad);

struct GroupNormResult {
  std::vector<double> out, mean, rstd;  // out like x; mean, rstd [N, G]
};
GroupNormResult group_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups, double eps,
                           bool fuse_silu);

// q, k, v [N, T, C]: per (sample, head, query) the softmax over keys of q.k / sqrt(d), times v.
std::vector<double> attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads);

enum class Pool { Max, AvgIncludePad, AvgExcludePad };
// x [N,H,W,C], symmetric zero padding, floor mode.
std::vector<double> pool(const Tensor& x, int kernel, int stride, int pad, Pool kind);
// x [N,H,W,C] -> [N,oh,ow,C], PyTorch's align_corners=False, as two per-axis weight matrices.
std::vector<double> resize_bilinear(const Tensor& x, int64_t oh, int64_t ow);

}  // namespace ddpm::test::ref
