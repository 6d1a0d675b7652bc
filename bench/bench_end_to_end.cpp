// End-to-end speed of the engine on a config's model: a training step, a sampling step and a whole
// ancestral sampling run, timed the way bench/pytorch_reference.py times PyTorch's. One JSON line
// per case on stdout.
//
//   bench_end_to_end --config FILE [--device cpu|cuda] [--batch N] [--cases train,sample,sample_run,largest_batch]
//                    [--iters K] [--warmup W] [--run-steps S] [--unfused] [--set section.key=value ...]
//
// train_step: what `ddpm train` does per step minus data loading: random x0 in [-1, 1], uniform
//   t, fused q_sample, the model, the configured loss, backward, gradient clipping, Adam with the
//   fused EMA update. In bfloat16 mixed precision when train.mixed_precision is true (GPU).
// sample_step: one ancestral step (the model without gradients, dropout off, then the fused
//   reverse-step kernel), measured as a 10-step respaced chain divided by 10.
// sample_run: a whole ancestral chain of --run-steps steps (default: every step of the diffusion)
//   for --batch images; reported per run and per step.
// largest_batch (CUDA): the largest batch whose training step fits on the device, found by trying
//   (bench/largest_batch.h: doubling from --batch, then bisecting to 1/32).
// Memory (CUDA): train_step also reports peak_bytes, the most device memory in use (weights, Adam
//   moments, EMA, bf16 copy, activations) during its warm-up and timed steps, as PyTorch's
//   torch.cuda.max_memory_allocated after reset_peak_memory_stats.
// Times: the median of K timed iterations after W warm-ups, each ended by a device synchronize.
// Launches: train_step and sample_step also report what one more step (after the timed ones) asks
// of the backend (engine/backend_call_counter.h): backend_calls_per_step on any device, and on CUDA
// cuda_kernels_per_step (our kernels) and cublas_calls_per_step. --unfused runs the UNet without its
// fused ops (UNetConfig::fused: q/k/v as three linear ops, the time-embedding add as its own op),
// the before of those fusions; every line says which ("fused").
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "bench/largest_batch.h"
#include "diffusion/samplers.h"
#include "diffusion/schedule.h"
#include "diffusion/timestep_sampler.h"
#include "engine/autograd.h"
#include "engine/backend_call_counter.h"
#include "engine/cpu_startup_env.h"
#include "engine/nn/parameters.h"
#include "engine/ops.h"
#include "engine/optim/adam.h"
#include "engine/optim/ema.h"
#include "models/unet.h"
#include "tools/factories.h"
#if DDPM_WITH_CUDA
#include "kernels/cuda/allocator_stats.h"
#endif

namespace {

using namespace ddpm;

struct Options {
  std::string config_file, device = "auto", cases = "train,sample";
  std::vector<std::string> overrides;
  int64_t batch = 0;  // 0: the config's train.batch_size
  int iters = 10, warmup = 3, run_steps = 0;
  bool unfused = false;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      DDPM_CHECK(i + 1 < argc, "bench_end_to_end: ", arg, " needs a value");
      return argv[++i];
    };
    if (arg == "--config") o.config_file = value();
    else if (arg == "--device") o.device = value();
    else if (arg == "--batch") o.batch = std::atoll(value().c_str());
    else if (arg == "--cases") o.cases = value();
    else if (arg == "--iters") o.iters = std::atoi(value().c_str());
    else if (arg == "--warmup") o.warmup = std::atoi(value().c_str());
    else if (arg == "--run-steps") o.run_steps = std::atoi(value().c_str());
    else if (arg == "--set") o.overrides.push_back(value());
    else if (arg == "--unfused") o.unfused = true;
    else detail::fail("bench_end_to_end: unknown option '", arg, "' (see the comment at the top of bench/bench_end_to_end.cpp)");
  }
  DDPM_CHECK(!o.config_file.empty(), "bench_end_to_end: --config FILE is required");
  DDPM_CHECK(o.iters >= 1 && o.warmup >= 0, "bench_end_to_end: need --iters >= 1 and --warmup >= 0");
  return o;
}

// Median and minimum milliseconds of fn over `iters` runs after `warmup` runs.
template <class Fn>
std::pair<double, double> time_ms(Device device, int warmup, int iters, Fn&& fn) {
  for (int i = 0; i < warmup; ++i) fn();
  synchronize(device);
  std::vector<double> ms;
  for (int i = 0; i < iters; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    synchronize(device);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms.front()};
}

// What one call of fn asks of the backends: backend calls, and CUDA kernel launches and cuBLAS calls.
template <class Fn>
ddpm::Json launches_of(Fn&& fn) {
  const CudaLaunchCounts before = cuda_launch_counts();
  uint64_t calls = 0;
  {
    BackendCallCounter counter;
    fn();
    calls = counter.calls();
  }
  const CudaLaunchCounts after = cuda_launch_counts();
  return {{"backend_calls_per_step", calls},
          {"cuda_kernels_per_step", after.kernels - before.kernels},
          {"cublas_calls_per_step", after.library_calls - before.library_calls}};
}

#if DDPM_WITH_CUDA
void reset_peak_memory() { cuda_reset_peak_bytes(); }
double peak_memory_bytes() { return static_cast<double>(cuda_allocator_stats().peak_bytes_in_use); }
void release_cached_memory() { cuda_empty_cache(); }
#else
void reset_peak_memory() {}
double peak_memory_bytes() { return 0; }
void release_cached_memory() {}
#endif

// True for the errors of a full device (the caching allocator's failed cudaMalloc, a library's
// failed workspace allocation); any other error is not an answer to "does it fit" and goes on.
bool is_out_of_memory(const Error& e) {
  const std::string what = e.what();
  return what.find("cudaMalloc of") != std::string::npos || what.find("ALLOC_FAILED") != std::string::npos ||
         what.find("out of memory") != std::string::npos;
}

}  // namespace

int main(int argc, char** argv) {
  set_cpu_startup_env(argv);
  try {
    const Options o = parse(argc, argv);
    std::vector<std::string> sets = o.overrides;
    sets.push_back("train.device=" + o.device);
    const Config config = load_config(o.config_file, sets);
    const Device device = choose_device(config.train.device);
    apply_conv_impl(config.train.conv_impl, config.train.deterministic);
    const TrainSection& t = config.train;
    const int64_t batch = o.batch > 0 ? o.batch : t.batch_size;
    const bool mixed = t.mixed_precision;
    DDPM_CHECK(!mixed || device == Device::CUDA, "bench_end_to_end: train.mixed_precision needs the GPU");

    const Shape image_shape = image_shape_of(config.data);
    Shape batch_shape{batch};
    batch_shape.insert(batch_shape.end(), image_shape.begin(), image_shape.end());
    std::unique_ptr<Denoiser> model = build_model(config, image_shape);
    if (auto* unet = dynamic_cast<UNet*>(model.get())) unet->set_fused(!o.unfused);
    ParameterSet params(*model, 1, device);
    const double lr = t.lr;
    Adam adam(params, {0.9, 0.999, 1e-8, t.weight_decay, t.adamw});
    Ema ema(params, t.ema_decay);
    if (mixed) params.keep_compute_copy(DType::BF16);  // as tools/train_setup.cpp
    const GaussianDiffusion diffusion = build_diffusion(config.diffusion);
    const double clip = t.grad_clip;

    const std::string config_name = std::filesystem::path(o.config_file).stem().string();
    // bf16_mixed or fp32, then _cudnn for cuDNN convolutions and _nondeterministic where atomics
    // are allowed (train.deterministic=false), so that compare_table.py keeps them apart.
    const std::string variant = std::string(mixed ? "bf16_mixed" : "fp32") +
                                (t.conv_impl == ConvImplChoice::Cudnn ? "_cudnn" : "") +
                                (t.deterministic ? "" : "_nondeterministic");
    auto report = [&](const char* bench, int64_t images, std::pair<double, double> ms, Json extra = Json::object()) {
      Json line{{"side", "ddpm"},
                {"bench", bench},
                {"config", config_name},
                {"device", device_name(device)},
                {"batch", batch},
                {"variant", variant},
                {"ms", ms.first},
                {"ms_min", ms.second},
                {"iters", o.iters},
                {"images_per_s", 1000.0 * static_cast<double>(images) / ms.first},
                {"params", params.count()}};
      line.update(extra);
      std::printf("%s\n", line.dump().c_str());
      std::fflush(stdout);
    };
    std::set<std::string> cases;
    for (std::stringstream list(o.cases); list.good();) {
      std::string c;
      std::getline(list, c, ',');
      DDPM_CHECK(c == "train" || c == "sample" || c == "sample_run" || c == "largest_batch",
                 "bench_end_to_end: unknown case '", c, "' (train, sample, sample_run, largest_batch)");
      cases.insert(c);
    }

    uint64_t step = 0;
    const UniformTimestepSampler timesteps(diffusion.steps());
    // One training step at `shape` [B, H, W, C]: what `ddpm train` does per step minus the data.
    auto train_step_at = [&](const Shape& shape) {
      return [&, shape] {
        ++step;
        const Tensor x0 = Tensor::uniform(shape, 2, step, -1, 1, DType::F32, device);
        const std::vector<int> ts = timesteps.draw(static_cast<int>(shape[0]), 7, step).t;
        model->train(true);
        ModelFn network = model_fn(*model, {3, step});
        if (mixed) network = in_bfloat16(std::move(network));
        const Tensor loss = mean(diffusion.training_losses(network, x0, ts, 4, step).loss);
        params.zero_grad();
        backward(loss);
        params.fold_compute_grads();
        if (clip > 0) clip_grad_norm(params, clip);
        adam.step(lr, 1.0, &ema);
      };
    };
    if (cases.count("train")) {
      const auto train_step = train_step_at(batch_shape);
      reset_peak_memory();
      const auto ms = time_ms(device, o.warmup, o.iters, train_step);
      Json extra = launches_of(train_step);
      extra["fused"] = !o.unfused;
      if (device == Device::CUDA) extra["peak_bytes"] = peak_memory_bytes();
      report("train_step", batch, ms, extra);
    }
    if (cases.count("largest_batch")) {
      DDPM_CHECK(device == Device::CUDA, "bench_end_to_end: the largest_batch case needs --device cuda");
      auto fits = [&](int64_t b) {
        Shape shape = batch_shape;
        shape[0] = b;
        try {
          const auto train_step = train_step_at(shape);
          train_step();
          train_step();  // the second step holds the first one's Adam state and caches
          synchronize(device);
        } catch (const Error& e) {
          if (!is_out_of_memory(e)) throw;
          release_cached_memory();
          return false;
        }
        release_cached_memory();
        return true;
      };
      const auto start = std::chrono::steady_clock::now();
      const LargestBatch found = largest_batch(batch, int64_t{1} << 20, fits);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf("%s\n", Json{{"side", "ddpm"}, {"bench", "largest_batch"}, {"config", config_name},
                               {"device", device_name(device)}, {"variant", variant},
                               {"largest_batch", found.batch}, {"first_failed", found.failed},
                               {"probes", found.probes}, {"search_s", seconds}, {"params", params.count()}}
                               .dump().c_str());
      std::fflush(stdout);
    }
    model->train(false);
    NoGradGuard no_grad;
    ModelFn network = model_fn(*model, {3, 0});
    if (mixed) network = in_bfloat16(std::move(network));
    const DType dtype = DType::F32;
    if (cases.count("sample")) {
      constexpr int kChain = 10;
      const GaussianDiffusion chain = diffusion.respaced(spaced_steps(diffusion.steps(), kChain));
      auto run = [&] {
        SampleOptions so;
        so.seed = 5;
        so.stream = ++step;
        (void)sample_ancestral(chain, network, batch_shape, dtype, device, so);
      };
      auto ms = time_ms(device, o.warmup, o.iters, run);
      Json extra{{"measured_as", "10-step chain / 10"}, {"fused", !o.unfused}};
      const Json launches = launches_of(run);  // of the 10-step chain
      for (const auto& [key, count] : launches.items()) extra[key] = count.get<double>() / kChain;
      report("sample_step", batch, {ms.first / kChain, ms.second / kChain}, extra);
    }
    if (cases.count("sample_run")) {
      const int steps = o.run_steps > 0 ? o.run_steps : diffusion.steps();
      const GaussianDiffusion chain = steps == diffusion.steps() ? diffusion : diffusion.respaced(spaced_steps(diffusion.steps(), steps));
      auto run = [&] {
        SampleOptions so;
        so.seed = 6;
        so.stream = ++step;
        (void)sample_ancestral(chain, network, batch_shape, dtype, device, so);
      };
      const auto ms = time_ms(device, 0, 1, run);
      report("sample_run", batch, ms, {{"steps", steps}, {"ms_per_step", ms.first / steps}});
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_end_to_end: error: %s\n", e.what());
    return 1;
  }
}
