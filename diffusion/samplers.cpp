#include "diffusion/samplers.h"

#include "engine/autograd.h"
#include "engine/backend.h"

namespace ddpm {

Tensor reverse_chain(const GaussianDiffusion& diffusion, const ModelFn& model, const Tensor& x_T,
                     reverse_step_args::Mode mode, double eta, const SampleOptions& options) {
  DDPM_CHECK(x_T.rank() >= 2, "sampling: expected x_T [N, ...], got ", shape_str(x_T.shape()));
  DDPM_CHECK(eta >= 0, "sampling: DDIM eta must be >= 0, got ", eta);
  NoGradGuard no_grad;
  const int steps = diffusion.steps();
  const std::vector<int> batch_steps(static_cast<size_t>(x_T.dim(0)), 0);
  Tensor x = x_T.clone();
  reverse_step_args args;
  args.coefs = diffusion.coefs(x.dtype(), x.device());
  args.mode = mode;
  args.prediction = diffusion.config().prediction;
  args.variance = diffusion.config().variance;
  args.clip = options.clip;
  args.eta = eta;
  args.seed = options.seed;
  for (int k = steps - 1; k >= 0; --k) {
    std::vector<int> t(batch_steps.size(), k);
    auto [mean_part, var_part] =
        diffusion.split_output(model(x, diffusion.model_timesteps(t, x.dtype(), x.device())), x);
    args.x_t = x;
    args.x_prev = x;  // elementwise, so the step can overwrite its input
    args.model_out = mean_part;
    args.var_out = var_part;
    args.step = k;
    args.stream = options.stream + 1 + static_cast<uint64_t>(k);
    backend_for(x.device()).reverse_step(args);
    if (options.progress) options.progress(steps - k, steps);
  }
  return x;
}

Tensor sample_ancestral(const GaussianDiffusion& diffusion, const ModelFn& model, const Shape& shape, DType dtype,
                        Device device, const SampleOptions& options) {
  const Tensor x_T = Tensor::normal(shape, options.seed, options.stream, 0.0, 1.0, dtype, device);
  return reverse_chain(diffusion, model, x_T, reverse_step_args::Mode::Ancestral, 0.0, options);
}

Tensor sample_ddim(const GaussianDiffusion& diffusion, const ModelFn& model, const Shape& shape, DType dtype,
                   Device device, double eta, const SampleOptions& options) {
  const Tensor x_T = Tensor::normal(shape, options.seed, options.stream, 0.0, 1.0, dtype, device);
  return reverse_chain(diffusion, model, x_T, reverse_step_args::Mode::Ddim, eta, options);
}

}  // namespace ddpm
