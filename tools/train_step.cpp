#include "tools/train_step.h"

#include <cmath>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/replay_counter.h"
#include "tools/conditioning.h"
#include "tools/factories.h"

namespace ddpm {

namespace {
// The n entries of v from `first` on.
template <class T>
std::vector<T> slice(const std::vector<T>& v, int64_t first, int64_t n) {
  return {v.begin() + first, v.begin() + first + n};
}

// Feeds the timestep sampler every rank's (t, loss) pairs in global batch order, so that its
// history, and with it the next draws, is the same on every rank and in a one-process run.
void update_timestep_sampler(TimestepSampler& sampler, Communicator& comm, const std::vector<int>& t,
                             const std::vector<double>& losses) {
  if (comm.size() == 1) return sampler.update(t, losses);
  std::vector<double> mine(t.begin(), t.end());
  mine.insert(mine.end(), losses.begin(), losses.end());
  const std::vector<double> all = comm.all_gather(mine);  // per rank: its t, then its losses
  const size_t n = t.size();
  std::vector<int> all_t;
  std::vector<double> all_losses;
  for (size_t r = 0; r < all.size(); r += 2 * n)
    for (size_t i = 0; i < n; ++i) {
      all_t.push_back(static_cast<int>(all[r + i]));
      all_losses.push_back(all[r + n + i]);
    }
  sampler.update(all_t, all_losses);
}
}  // namespace

StepResult train_step(TrainRun& run, BatchOrder& order, Communicator& comm, bool interrupted) {
  const TrainSection& t = run.config.train;
  const int64_t batch = t.batch_size, step = ++run.step;
  const Shard& shard = run.shard;
  // Every random draw is addressed by the step and by the example's place in the global batch,
  // so a shard draws exactly what its rows would draw in a one-process run.
  const uint64_t stream = train_step_stream(step), first = static_cast<uint64_t>(shard.first);
  const std::vector<int64_t> rows = slice(order.indices(step, batch), shard.first, shard.size);
  const Tensor x0 = gather_batch(run.data, rows, run.config.data.random_flip, seed_for(t.seed, Purpose::Flip), stream,
                                 first)
                        .to(run.device);
  const TimestepDraw whole = run.timesteps->draw(static_cast<int>(batch), seed_for(t.seed, Purpose::Timesteps), stream);
  const TimestepDraw draw{slice(whole.t, shard.first, shard.size), slice(whole.weights, shard.first, shard.size)};
  run.model->train(true);
  const DropoutKey dropout_key{seed_for(t.seed, Purpose::Dropout), stream, first};
  ModelFn network = run.num_classes == 0
                        ? model_fn(*run.model, dropout_key)
                        : condition_on(labeled_model_fn(*run.model, dropout_key),
                                       training_labels(run.data, rows, t.label_dropout, run.num_classes,
                                                       dropout_key.seed, stream, first));
  if (t.mixed_precision) network = in_bfloat16(std::move(network));
  StepResult out;
  out.losses = run.diffusion->training_losses(network, x0, draw.t, seed_for(t.seed, Purpose::Noise), stream, first);
  Tensor loss = mean(mul(out.losses.loss, Tensor::from_vector(draw.weights, {shard.size}, DType::F32, run.device)));
  if (comm.size() > 1) loss = scale(loss, run.share);
  // One collective for the loss of the global batch and the stop flag, so every rank takes the
  // same decision at the same step.
  std::vector<double> shared{loss.item(), interrupted ? 1.0 : 0.0};
  comm.sum(shared);
  out.loss = shared[0];
  out.stop_requested = shared[1] > 0;
  DDPM_CHECK(std::isfinite(out.loss), "train: the loss is ", out.loss, " at step ", step,
             "; training stopped. The last good checkpoint (step ", run.last_checkpoint, ") is kept in ", run.run_dir,
             ". Lower train.lr or set train.grad_clip, then resume with --resume ", run.run_dir);
  run.params->zero_grad();
  backward(loss);
  run.params->fold_compute_grads();  // mixed precision: the layers' bfloat16 gradients, in one pass
  comm.sum(run.params->grads());  // the gradient of the global batch's mean loss, on every rank
  out.grad_norm = t.grad_clip > 0 ? clip_grad_norm(*run.params, t.grad_clip) : grad_norm(*run.params);
  DDPM_CHECK(std::isfinite(out.grad_norm), "train: the gradient norm is ", out.grad_norm, " at step ", step,
             "; training stopped. The last good checkpoint (step ", run.last_checkpoint, ") is kept in ", run.run_dir);
  out.lr = run.lr->lr_at(step);
  run.adam->step(out.lr, 1.0, run.ema.get());
  update_timestep_sampler(*run.timesteps, comm, draw.t, out.losses.loss.to_vector());
  return out;
}

}  // namespace ddpm
