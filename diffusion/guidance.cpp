#include "diffusion/guidance.h"

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/storage.h"

namespace ddpm {

namespace {
void check_rows(const char* what, const Tensor& x, const std::vector<int>& labels) {
  DDPM_CHECK(x.dim(0) == static_cast<int64_t>(labels.size()), what, ": the model was called with ", x.dim(0),
             " rows but conditioned on ", labels.size(), " labels");
}

Tensor rows_copy(const Tensor& x, int64_t first, int64_t count) {
  Shape shape = x.shape();
  shape[0] = count;
  Tensor out = Tensor::empty(shape, x.dtype(), x.device());
  const size_t row_bytes = x.nbytes() / static_cast<size_t>(x.dim(0));
  copy_bytes(out.raw(), out.device(), static_cast<const char*>(x.raw()) + static_cast<size_t>(first) * row_bytes,
             x.device(), static_cast<size_t>(count) * row_bytes);
  return out;
}
}  // namespace

ModelFn condition_on(LabeledModelFn net, std::vector<int> labels) {
  return [net = std::move(net), labels = std::move(labels)](const Tensor& x_t, const Tensor& t) {
    check_rows("conditional model", x_t, labels);
    return net(x_t, t, labels);
  };
}

ModelFn classifier_free_guidance(LabeledModelFn net, std::vector<int> labels, int null_label, double w) {
  DDPM_CHECK(w >= 0, "guidance: the weight must be >= 0 (0 = the conditional model), got ", w);
  if (w == 0) return condition_on(std::move(net), std::move(labels));
  std::vector<int> both = labels;
  both.insert(both.end(), labels.size(), null_label);
  return [net = std::move(net), both = std::move(both), w](const Tensor& x_t, const Tensor& t) {
    DDPM_CHECK(!grad_enabled(), "guidance: the guided model runs without gradients (sampling, evaluation); "
               "use a NoGradGuard");
    const int64_t n = x_t.dim(0), channels = x_t.dim(-1);
    DDPM_CHECK(2 * n == static_cast<int64_t>(both.size()), "guided model: the model was called with ", n,
               " rows but conditioned on ", both.size() / 2, " labels");
    // out [2N, ..., C or 2C]: rows 0..N-1 conditional, N..2N-1 "no class".
    const auto [cond, uncond] = split_rows(net(concat_rows(x_t, x_t), concat_rows(t, t), both), n);
    if (cond.dim(-1) == channels) return sub(scale(cond, 1 + w), scale(uncond, w));
    DDPM_CHECK(cond.dim(-1) == 2 * channels, "guided model: the output has ", cond.dim(-1), " channels; expected ",
               channels, " or ", 2 * channels, " (learned-range variance)");
    const Tensor mean =
        sub(scale(channel_slice(cond, 0, channels), 1 + w), scale(channel_slice(uncond, 0, channels), w));
    return concat(mean, channel_slice(cond, channels, 2 * channels));
  };
}

Tensor concat_rows(const Tensor& a, const Tensor& b) {
  Shape tail_a(a.shape().begin() + 1, a.shape().end()), tail_b(b.shape().begin() + 1, b.shape().end());
  DDPM_CHECK(a.rank() >= 1 && tail_a == tail_b && a.dtype() == b.dtype() && a.device() == b.device(),
             "concat_rows: ", a.describe(), " and ", b.describe(), " differ beyond their first axis");
  Shape shape = a.shape();
  shape[0] = a.dim(0) + b.dim(0);
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  copy_bytes(out.raw(), out.device(), a.raw(), a.device(), a.nbytes());
  copy_bytes(static_cast<char*>(out.raw()) + a.nbytes(), out.device(), b.raw(), b.device(), b.nbytes());
  return out;
}

std::pair<Tensor, Tensor> split_rows(const Tensor& x, int64_t rows) {
  DDPM_CHECK(x.rank() >= 1 && rows >= 0 && rows <= x.dim(0), "split_rows: cannot split ", x.describe(), " after ",
             rows, " rows");
  return {rows_copy(x, 0, rows), rows_copy(x, rows, x.dim(0) - rows)};
}

}  // namespace ddpm
