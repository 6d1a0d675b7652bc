#include "tools/generate.h"

#include <algorithm>

#include "diffusion/guidance.h"
#include "diffusion/samplers.h"
#include "tools/image_io.h"
#include "tools/runtime.h"

namespace ddpm {

namespace {
// The model for samples first..first+n-1 of a class-conditional draw.
ModelFn guided_model_fn(Denoiser& model, const GenerateOptions& o, int64_t first, int64_t n) {
  DDPM_CHECK(static_cast<int64_t>(o.labels.size()) == o.count, "generate: ", o.labels.size(), " labels for ", o.count,
             " samples");
  LabeledModelFn net = [&model](const Tensor& x, const Tensor& t, const std::vector<int>& labels) {
    return model.forward(x, t, {}, labels);
  };
  return classifier_free_guidance(std::move(net), {o.labels.begin() + first, o.labels.begin() + first + n},
                                  model.num_classes(), o.guidance);
}
}  // namespace

Tensor generate(Denoiser& model, const GaussianDiffusion& diffusion, const Shape& image_shape, Device device,
                const GenerateOptions& o) {
  DDPM_CHECK(o.method == "ancestral" || o.method == "ddim", "sample.method must be \"ancestral\" or \"ddim\", got \"",
             o.method, "\"");
  DDPM_CHECK(o.count >= 1, "sample.count must be at least 1, got ", o.count);
  const bool respace = o.steps > 0 && o.steps < diffusion.steps();
  const GaussianDiffusion chain = respace ? diffusion.respaced(spaced_steps(diffusion.steps(), o.steps)) : diffusion;
  const bool was_training = model.training();
  model.train(false);
  const int64_t batches = (o.count + o.batch - 1) / o.batch, total = batches * chain.steps();
  Tensor out = Tensor::empty({o.count, image_shape[0], image_shape[1], image_shape[2]});
  for (int64_t b = 0; b < batches; ++b) {
    const int64_t first = b * o.batch, n = std::min(o.batch, o.count - first);
    SampleOptions options;
    options.clip = o.clip;
    options.seed = o.seed;
    options.stream = static_cast<uint64_t>(b) << 32;  // batch b's x_T and step noise
    if (o.progress) options.progress = [&](int done, int) { o.progress(b * chain.steps() + done, total); };
    const Shape shape{n, image_shape[0], image_shape[1], image_shape[2]};
    const ModelFn fn = o.labels.empty() ? model_fn(model, {}) : guided_model_fn(model, o, first, n);
    Tensor x = o.method == "ddim" ? sample_ddim(chain, fn, shape, DType::F32, device, o.eta, options)
                                  : sample_ancestral(chain, fn, shape, DType::F32, device, options);
    const Tensor host = x.to(Device::CPU);
    std::copy_n(host.data<float>(), host.numel(), out.data<float>() + first * host.numel() / n);
  }
  model.train(was_training);
  return out;
}

void save_samples(const Tensor& samples, const std::string& path, int columns) {
  if (samples.dim(1) == 1 && samples.dim(2) == 1 && samples.dim(3) == 2)
    write_points_plot(path, {points_series(samples, "samples")}, "samples");
  else
    write_png_grid(path, samples, columns);
}

}  // namespace ddpm
