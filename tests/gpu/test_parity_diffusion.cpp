// The fused diffusion kernels: CUDA (float32) against the CPU reference (float64) from the same
// inputs and the same Philox addresses, outputs in guarded buffers.
#include <catch2/catch.hpp>
#include <cmath>

#include "diffusion/gaussian_diffusion.h"
#include "engine/backend.h"
#include "engine/ops.h"
#include "tests/gpu/parity.h"
#include "tests/support.h"

using namespace ddpm;
using namespace ddpm::test;

namespace {
// Bounds: float32 evaluation of the same closed forms (the Box-Muller draws are bit-identical:
// engine/philox.h), 1e-5. The DDIM step's coefficients come from table entries without the
// float32 cancellation of 1 - abar_prev near abar = 1 (kernels/diffusion_math.h).
constexpr double kBound = 1e-5;

const Shape kShapes[] = {{2, 32, 32, 3}, {3, 5, 7, 33}, {1, 4, 4, 100}};

GaussianDiffusion diffusion(Prediction p, VarianceType v) {
  DiffusionConfig c;
  c.prediction = p, c.variance = v, c.loss = v == VarianceType::LearnedRange ? LossType::Hybrid : LossType::Mse;
  return GaussianDiffusion(Schedule(BetaSchedule::Linear, 1000), c);
}

std::vector<int> steps_for(int64_t n) {
  std::vector<int> t;
  for (int64_t i = 0; i < n; ++i) t.push_back(static_cast<int>((i * 997 + 13) % 1000 * (i % 2)));  // includes 0
  return t;
}

Tensor reals(const std::vector<int>& t, DType dtype, Device device) {
  return Tensor::from_vector(std::vector<double>(t.begin(), t.end()), {static_cast<int64_t>(t.size())}, dtype, device);
}
}  // namespace

// Philox offset 6 (not a multiple of 4), as a data-parallel shard uses.
TEST_CASE("q_sample: CUDA equals the CPU, drawn and given noise", "[gpu][diffusion]") {
  GaussianDiffusion d = diffusion(Prediction::V, VarianceType::FixedSmall);
  for (const Shape& shape : kShapes) {
    Tensor x0 = Tensor::uniform(shape, 1, 2, -1, 1, DType::F64);
    const std::vector<int> t = steps_for(shape[0]);
    for (bool given : {false, true}) {
      Tensor noise_in = randn(shape, 3);
      // CPU reference in float64.
      Tensor x_t = Tensor::empty(shape, DType::F64), noise = given ? noise_in.clone() : Tensor::empty(shape, DType::F64);
      Tensor v = Tensor::empty(shape, DType::F64);
      cpu_backend().q_sample({x0, reals(t, DType::F64, Device::CPU), d.coefs(DType::F64, Device::CPU), x_t, noise, v, given, 7, 8, 6});
      // CUDA in float32, guarded outputs.
      Guarded gx = guarded_empty(shape, DType::F32), gv = guarded_empty(shape, DType::F32);
      Guarded gn = given ? guarded_copy(noise_in, DType::F32) : guarded_empty(shape, DType::F32);
      cuda_backend().q_sample({to_cuda(x0, DType::F32), reals(t, DType::F32, Device::CUDA),
                               d.coefs(DType::F32, Device::CUDA), gx.tensor, gn.tensor, gv.tensor, given, 7, 8, 6});
      const std::string what = "q_sample " + shape_str(shape) + (given ? " given noise" : " drawn noise");
      require_parity(gx, x_t, kBound, what + " x_t");
      require_parity(gn, noise, kBound, what + " noise");
      require_parity(gv, v, kBound, what + " v");
    }
  }
}

TEST_CASE("reverse_step: CUDA equals the CPU for every mode, parameterization and variance", "[gpu][diffusion]") {
  for (Prediction p : {Prediction::Epsilon, Prediction::X0, Prediction::V})
    for (VarianceType var : {VarianceType::FixedSmall, VarianceType::FixedLarge, VarianceType::LearnedRange})
      for (auto mode : {reverse_step_args::Mode::Ancestral, reverse_step_args::Mode::Ddim})
        for (int step : {0, 1, 500, 999}) {
          GaussianDiffusion d = diffusion(p, var);
          const Shape shape{2, 5, 7, 33};
          Tensor x_t = randn(shape, 1), out = randn(shape, 2);
          Tensor v_out = var == VarianceType::LearnedRange ? Tensor::uniform(shape, 4, 4, -1, 1, DType::F64) : Tensor();
          auto args = [&](Device dev) {
            reverse_step_args a;
            const DType dt = dev == Device::CPU ? DType::F64 : DType::F32;
            a.x_t = dev == Device::CPU ? x_t : to_cuda(x_t, dt);
            a.model_out = dev == Device::CPU ? out : to_cuda(out, dt);
            if (v_out.defined()) a.var_out = dev == Device::CPU ? v_out : to_cuda(v_out, dt);
            a.coefs = d.coefs(dt, dev);
            a.step = step, a.mode = mode, a.prediction = p, a.variance = var, a.clip = true, a.eta = 0.7;
            a.seed = 11, a.stream = 12;
            return a;
          };
          reverse_step_args cpu = args(Device::CPU);
          cpu.x_prev = Tensor::empty(shape, DType::F64), cpu.x0_pred = Tensor::empty(shape, DType::F64);
          cpu.mean = Tensor::empty(shape, DType::F64), cpu.log_var = Tensor::empty(shape, DType::F64);
          cpu_backend().reverse_step(cpu);
          reverse_step_args gpu = args(Device::CUDA);
          Guarded x_prev = guarded_empty(shape, DType::F32), x0 = guarded_empty(shape, DType::F32);
          Guarded mean = guarded_empty(shape, DType::F32), lv = guarded_empty(shape, DType::F32);
          gpu.x_prev = x_prev.tensor, gpu.x0_pred = x0.tensor, gpu.mean = mean.tensor, gpu.log_var = lv.tensor;
          cuda_backend().reverse_step(gpu);
          const std::string what = std::string("reverse_step ") + prediction_name(p) + " " + variance_name(var) +
                                   (mode == reverse_step_args::Mode::Ddim ? " ddim" : " ancestral") + " step " +
                                   std::to_string(step);
          require_parity(x_prev, cpu.x_prev, kBound, what + " x_prev");
          require_parity(x0, cpu.x0_pred, kBound, what + " x0");
          if (mode == reverse_step_args::Mode::Ancestral) {
            require_parity(mean, cpu.mean, kBound, what + " mean");
            require_parity(lv, cpu.log_var, kBound, what + " log_var");
          }
        }
}

TEST_CASE("vlb_term forward and backward: CUDA equals the CPU", "[gpu][diffusion]") {
  for (Prediction p : {Prediction::Epsilon, Prediction::V})
    for (VarianceType var : {VarianceType::FixedSmall, VarianceType::LearnedRange})
      for (bool accumulate : {false, true}) {
        GaussianDiffusion d = diffusion(p, var);
        const Shape shape{4, 8, 8, 3};
        std::vector<double> grid = Tensor::uniform(shape, 9, 1, 0, 256, DType::F64).to_vector();
        for (double& e : grid) e = -1 + 2 * std::floor(e) / 255;
        Tensor x0 = Tensor::from_vector(grid, shape, DType::F64);
        const std::vector<int> t{0, 3, 250, 999};
        auto noised = d.q_sample(x0, t, 5, 6);
        Tensor out = add(p == Prediction::Epsilon ? noised.noise : noised.v_target, randn(shape, 7, 0.1));
        Tensor v_out = var == VarianceType::LearnedRange ? Tensor::uniform(shape, 8, 8, -0.9, 0.9, DType::F64) : Tensor();
        Tensor g = randn({4}, 9);
        // Compare against the CPU on what the GPU sees (float32-rounded inputs).
        auto seen = [](const Tensor& x) { return x.defined() ? as_seen(x, DType::F32) : Tensor(); };
        auto gpu = [](const Tensor& x) { return x.defined() ? to_cuda(x, DType::F32) : Tensor(); };
        Tensor cpu_out = Tensor::empty({4}, DType::F64);
        cpu_backend().vlb_term_forward({seen(out), seen(v_out), seen(x0), seen(noised.x_t), reals(t, DType::F64, Device::CPU),
                                        d.coefs(DType::F64, Device::CPU), cpu_out, p, var, false});
        Guarded gpu_out = guarded_empty({4}, DType::F32);
        cuda_backend().vlb_term_forward({gpu(out), gpu(v_out), gpu(x0), gpu(noised.x_t), reals(t, DType::F32, Device::CUDA),
                                         d.coefs(DType::F32, Device::CUDA), gpu_out.tensor, p, var, false});
        const std::string what = std::string("vlb_term ") + prediction_name(p) + " " + variance_name(var);
        require_parity(gpu_out, cpu_out, 1e-4, what + " forward");  // float32 sums of 192 terms of mixed size

        Tensor prior = randn(shape, 10);  // what an accumulating slot already holds
        Tensor cpu_gout = accumulate ? prior.clone() : Tensor::empty(shape, DType::F64);
        Tensor cpu_gvar = var == VarianceType::LearnedRange ? (accumulate ? prior.clone() : Tensor::empty(shape, DType::F64)) : Tensor();
        cpu_backend().vlb_term_backward({g, seen(out), seen(v_out), seen(x0), seen(noised.x_t), reals(t, DType::F64, Device::CPU),
                                         d.coefs(DType::F64, Device::CPU), p, var, false, {cpu_gout, accumulate},
                                         {cpu_gvar, accumulate}});
        Guarded gg_out = accumulate ? guarded_copy(prior, DType::F32) : guarded_empty(shape, DType::F32);
        Guarded gg_var = accumulate ? guarded_copy(prior, DType::F32) : guarded_empty(shape, DType::F32);
        cuda_backend().vlb_term_backward({gpu(g), gpu(out), gpu(v_out), gpu(x0), gpu(noised.x_t),
                                          reals(t, DType::F32, Device::CUDA), d.coefs(DType::F32, Device::CUDA), p, var,
                                          false, {gg_out.tensor, accumulate},
                                          {var == VarianceType::LearnedRange ? gg_var.tensor : Tensor(), accumulate}});
        if (accumulate) {  // compare against the float32-rounded prior plus the gradient
          cpu_gout = add(sub(cpu_gout, prior), as_seen(prior, DType::F32));
          if (cpu_gvar.defined()) cpu_gvar = add(sub(cpu_gvar, prior), as_seen(prior, DType::F32));
        }
        require_parity(gg_out, cpu_gout, 1e-4, what + " grad model_out");
        if (cpu_gvar.defined()) require_parity(gg_var, cpu_gvar, 1e-4, what + " grad var_out");
      }
}

TEST_CASE("solver_step: CUDA equals the CPU for every parameterization, with history and noise", "[gpu][diffusion]") {
  for (Prediction p : {Prediction::Epsilon, Prediction::X0, Prediction::V})
    for (bool clip : {false, true})
      for (bool model_in : {false, true}) {
        const Shape shape{3, 5, 7, 33};
        Tensor x = randn(shape, 1), y = randn(shape, 2), out = randn(shape, 3), d1 = randn(shape, 4), d2 = randn(shape, 5);
        auto args = [&](Device dev) {
          const DType dt = dev == Device::CPU ? DType::F64 : DType::F32;
          auto on = [&](const Tensor& t) { return dev == Device::CPU ? as_seen(t, DType::F32) : to_cuda(t, dt); };
          solver_step_args a;
          a.x = on(x), a.model_out = on(out), a.d1 = on(d1), a.d2 = on(d2);
          if (model_in) a.model_in = on(y);
          a.prediction = p, a.clip = clip;
          a.in_alpha = 0.6, a.in_sigma = 0.8;
          a.c_x = 0.9, a.c_d0 = 0.3, a.c_d1 = -0.2, a.c_d2 = 0.05, a.c_z = 0.4;
          a.seed = 13, a.stream = 14;
          return a;
        };
        solver_step_args cpu = args(Device::CPU);
        cpu.x_next = Tensor::empty(shape, DType::F64), cpu.d0_out = Tensor::empty(shape, DType::F64);
        cpu_backend().solver_step(cpu);
        solver_step_args gpu = args(Device::CUDA);
        Guarded next = guarded_empty(shape, DType::F32), d0 = guarded_empty(shape, DType::F32);
        gpu.x_next = next.tensor, gpu.d0_out = d0.tensor;
        cuda_backend().solver_step(gpu);
        const std::string what = std::string("solver_step ") + prediction_name(p) + (clip ? " clip" : "") +
                                 (model_in ? " model_in" : "");
        require_parity(next, cpu.x_next, kBound, what + " x_next");
        require_parity(d0, cpu.d0_out, kBound, what + " d0");
      }
  // In place (x_next = x, d0_out = d2), as the samplers call it.
  const Shape shape{2, 9, 9, 3};
  Tensor x = randn(shape, 6), out = randn(shape, 7), d2 = randn(shape, 8);
  solver_step_args cpu;
  cpu.x = as_seen(x, DType::F32), cpu.model_out = as_seen(out, DType::F32), cpu.d2 = as_seen(d2, DType::F32);
  cpu.in_alpha = 0.3, cpu.in_sigma = std::sqrt(1 - 0.09), cpu.c_x = 1.1, cpu.c_d0 = -0.4, cpu.c_d2 = 0.2, cpu.c_z = 0.1;
  cpu.seed = 1, cpu.stream = 2;
  cpu.x_next = Tensor::empty(shape, DType::F64), cpu.d0_out = Tensor::empty(shape, DType::F64);
  cpu_backend().solver_step(cpu);
  solver_step_args gpu = cpu;
  Guarded gx = guarded_copy(x, DType::F32), gd = guarded_copy(d2, DType::F32);
  gpu.x = gx.tensor, gpu.model_out = to_cuda(out, DType::F32), gpu.d2 = gd.tensor, gpu.x_next = gx.tensor, gpu.d0_out = gd.tensor;
  cuda_backend().solver_step(gpu);
  require_parity(gx, cpu.x_next, kBound, "solver_step in place x_next");
  require_parity(gd, cpu.d0_out, kBound, "solver_step in place d0");
}
