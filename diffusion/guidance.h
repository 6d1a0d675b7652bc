// Class-conditional model callbacks and classifier-free guidance (Ho and Salimans 2022) as ModelFn
// wrappers, so every sampler and the bits/dim loop take a conditional or guided model unchanged.
#pragma once
#include <functional>
#include <utility>
#include <vector>

#include "diffusion/gaussian_diffusion.h"

namespace ddpm {

// net(x_t [N, ..., C], t [N], labels: N class indices) -> the ModelFn output for those rows.
using LabeledModelFn = std::function<Tensor(const Tensor& x_t, const Tensor& t, const std::vector<int>& labels)>;

// model(x_t, t) = net(x_t, t, labels): every call must have labels.size() rows.
ModelFn condition_on(LabeledModelFn net, std::vector<int> labels);

// Classifier-free guidance with weight w >= 0:
//   out = (1 + w) net(x_t, t, labels) - w net(x_t, t, null_label)
// with both halves from ONE forward over the batch [x_t; x_t] (labels, then null_label N times),
// split after. For epsilon prediction this is eps = (1 + w) eps(x, c) - w eps(x, none). For x0 and
// v prediction the same combination is applied to the model's mean output: for fixed x_t both are
// affine in eps (x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar), v = (eps - sqrt(1 - abar) x_t) /
// sqrt(abar)) and the weights (1 + w, -w) sum to 1, so combining x0 or v equals combining eps.
// With a learned-range variance (output [.., 2C]) the variance channels are the conditional
// half's, unmixed. w = 0 is condition_on(net, labels): one forward, the conditional model exactly.
// Runs without gradients (sampling, evaluation): the row split copies.
ModelFn classifier_free_guidance(LabeledModelFn net, std::vector<int> labels, int null_label, double w);

// The rows of a then of b (equal trailing shapes, dtypes and devices), and the split of x after
// `rows` rows. Plain copies, no graph: for use without gradients.
Tensor concat_rows(const Tensor& a, const Tensor& b);
std::pair<Tensor, Tensor> split_rows(const Tensor& x, int64_t rows);

}  // namespace ddpm
