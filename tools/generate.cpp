#include "tools/generate.h"

#include <algorithm>
#include <map>
#include <memory>

#include "diffusion/guidance.h"
#include "diffusion/samplers.h"
#include "diffusion/timestep_spacing.h"
#include "engine/cuda_graph.h"
#include "engine/replay_counter.h"
#include "tools/image_io.h"
#include "tools/factories.h"

namespace ddpm {

namespace {
bool is_chain(SampleMethod method) { return method == SampleMethod::Ancestral || method == SampleMethod::Ddim; }

Solver solver_of(SampleMethod method) {
  switch (method) {
    case SampleMethod::DpmPP2M: return Solver::DpmPP2M;
    case SampleMethod::DpmPP3M: return Solver::DpmPP3M;
    case SampleMethod::Heun: return Solver::Heun;
    case SampleMethod::EulerAncestral: return Solver::EulerAncestral;
    case SampleMethod::Ancestral:
    case SampleMethod::Ddim: break;
  }
  detail::fail("generate: sample.method ", sample_method_name(method), " is a chain, not a noise-level solver");
}

// The solver's settings and noise levels (sample.method, steps, sigmas, rho and the churn keys).
std::pair<SolverConfig, NoiseLevels> solver_setup(const GaussianDiffusion& diffusion, const GenerateOptions& o) {
  DDPM_CHECK(o.steps > 0, "sample.method ", sample_method_name(o.method), " needs sample.steps > 0, the number of "
             "noise levels (e.g. 20; see docs/usage.md)");
  SolverConfig config = o.solver;
  config.method = solver_of(o.method);
  validate(config);
  const bool karras = o.sigmas != SigmaLevels::Discrete;  // auto: Karras levels (tests/test_samplers_convergence.cpp says why)
  DDPM_CHECK(karras || o.steps <= diffusion.steps(), "sample.steps ", o.steps, " exceeds the diffusion's ",
             diffusion.steps(), " steps with discrete levels; use fewer or sample.sigmas=karras");
  return {config, karras ? karras_levels(diffusion.schedule(), o.steps, o.rho)
                         : discrete_levels(diffusion.schedule(), o.steps)};
}

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

int generate_evaluations(const GaussianDiffusion& diffusion, const GenerateOptions& o) {
  if (is_chain(o.method)) return o.steps > 0 && o.steps < diffusion.steps() ? o.steps : diffusion.steps();
  const auto [config, levels] = solver_setup(diffusion, o);
  return solver_evaluations(config, levels);
}

GenerateOptions generate_options(const SampleSection& s) {
  GenerateOptions o;
  o.count = s.count;
  o.method = s.method;
  o.steps = s.steps;
  o.eta = s.eta;
  o.sigmas = s.sigmas;
  o.rho = s.rho;
  o.solver.s_churn = s.s_churn;
  o.solver.s_tmin = s.s_tmin;
  o.solver.s_tmax = s.s_tmax;
  o.solver.s_noise = s.s_noise;
  o.solver.eta = s.euler_eta;
  o.spacing = s.spacing;
  o.clip = s.clip;
  o.seed = seed_for(s.seed, Purpose::Sampling);
  o.cuda_graphs = s.cuda_graphs;
  return o;
}

Tensor generate(Denoiser& model, const GaussianDiffusion& diffusion, const Shape& image_shape, Device device,
                const GenerateOptions& o) {
  DDPM_CHECK(o.count >= 1, "sample.count must be at least 1, got ", o.count);
  const bool chain_method = is_chain(o.method);
  const bool respace = chain_method && o.steps > 0 && o.steps < diffusion.steps();
  const GaussianDiffusion chain = respace ? diffusion.respaced(sampling_steps(o.spacing, diffusion.steps(), o.steps)) : diffusion;
  const auto setup = chain_method ? std::pair<SolverConfig, NoiseLevels>() : solver_setup(diffusion, o);
  const int per_batch = generate_evaluations(diffusion, o);
  const bool was_training = model.training();
  model.train(false);
  const int64_t batches = (o.count + o.batch - 1) / o.batch, total = batches * per_batch;
  Tensor out = Tensor::empty({o.count, image_shape[0], image_shape[1], image_shape[2]});
  // Batch b's samples on the device (progress: report it step by step).
  auto sample_batch = [&](int64_t b, bool progress) {
    const int64_t first = b * o.batch, n = std::min(o.batch, o.count - first);
    SampleOptions options;
    options.clip = o.clip;
    options.seed = o.seed;
    options.stream = sample_batch_stream(o.first_batch, b);  // batch b's x_T and step noise
    if (o.progress && progress) options.progress = [&](int done, int) { o.progress(b * per_batch + done, total); };
    const Shape shape{n, image_shape[0], image_shape[1], image_shape[2]};
    const ModelFn fn = o.labels.empty() ? model_fn(model, {}) : guided_model_fn(model, o, first, n);
    return !chain_method ? solve(diffusion, fn, Tensor::normal(shape, o.seed, options.stream, 0.0, 1.0, DType::F32, device),
                                 setup.second, setup.first, options)
           : o.method == SampleMethod::Ddim ? sample_ddim(chain, fn, shape, DType::F32, device, o.eta, options)
                                            : sample_ancestral(chain, fn, shape, DType::F32, device, options);
  };
  // CUDA graphs, per batch size: the first batch of a size runs uncaptured (the warm-up), the
  // second is captured, it and every later one replay (engine/replay_counter.h: replay k draws
  // batch b0 + k's noise). Labels differ per batch and would be frozen into the graph: not with them.
  const bool graphs = o.cuda_graphs && o.labels.empty() && cuda_graphs_available(device);
  std::map<int64_t, std::unique_ptr<CudaGraph>> graph_of;  // batch size -> its graph
  std::map<int64_t, Tensor> graph_out;                     // batch size -> the tensor its replays write
  for (int64_t b = 0; b < batches; ++b) {
    const int64_t first = b * o.batch, n = std::min(o.batch, o.count - first);
    Tensor x;
    if (!graphs) {
      x = sample_batch(b, true);
    } else if (!graph_of[n]) {
      CudaGraph::Options g;
      g.strides = sample_batch_strides();
      g.constant_uploads = true;  // the timestep tables: the same for every batch
      g.what = "the sampling loop (batch of " + std::to_string(n) + ")";
      g.turn_off = "sample.cuda_graphs=false";
      graph_of[n] = std::make_unique<CudaGraph>(g);
      graph_of[n]->warm_up([&] { x = sample_batch(b, true); });
    } else {
      CudaGraph& graph = *graph_of[n];
      if (!graph.captured()) graph.capture([&] { graph_out[n] = sample_batch(b, false); }, b);
      graph.replay(b);
      x = graph_out[n];
      if (o.progress) o.progress((b + 1) * per_batch, total);
    }
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
