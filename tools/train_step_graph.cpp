#include "tools/train_step_graph.h"

#include <cmath>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/replay_counter.h"
#include "tools/conditioning.h"
#include "tools/factories.h"

namespace ddpm {

namespace {
// Writes `values` into `dst` ([shape] of `dtype` on `device`), allocating it first when it is
// missing or its shape or dtype differ. Returns whether it allocated.
bool write_input(Tensor& dst, const Tensor& host_values, Device device) {
  const bool fresh = !dst.defined() || dst.shape() != host_values.shape() || dst.dtype() != host_values.dtype() ||
                     dst.device() != device;
  if (fresh) dst = Tensor::empty(host_values.shape(), host_values.dtype(), device);
  dst.copy_from(host_values);
  return fresh;
}
}  // namespace

bool upload_step_inputs(const StepHostInputs& host, const GaussianDiffusion& diffusion, int num_classes,
                        Device device, StepInputs& in) {
  const int64_t n = host.x0.dim(0);
  DDPM_CHECK(static_cast<int64_t>(host.t.size()) == n && static_cast<int64_t>(host.weights.size()) == n,
             "train step inputs: ", host.t.size(), " timesteps and ", host.weights.size(), " weights for a batch of ", n);
  DDPM_CHECK(num_classes == 0 ? host.labels.empty() : static_cast<int64_t>(host.labels.size()) == n,
             "train step inputs: ", host.labels.size(), " labels for a batch of ", n, " (", num_classes, " classes)");
  bool fresh = write_input(in.x0, host.x0, device);
  // The same tables the vector form of training_losses builds, built on the host and copied.
  const GaussianDiffusion::StepTensors steps = diffusion.step_tensors(host.t, host.x0.dtype(), Device::CPU);
  fresh |= write_input(in.steps.steps, steps.steps, device);
  fresh |= write_input(in.steps.model_t, steps.model_t, device);
  fresh |= write_input(in.weights, Tensor::from_vector(host.weights, {n}, DType::F32), device);
  if (num_classes > 0)
    fresh |= write_input(in.one_hot, Tensor::from_vector(one_hot_rows(host.labels, num_classes), {n, num_classes + 1},
                                                         DType::F32),
                         device);
  else
    in.one_hot = Tensor();
  fresh |= write_input(in.adam, Tensor::from_vector(host.adam, {static_cast<int64_t>(host.adam.size())}, DType::F64),
                       device);
  return fresh;
}

GraphedTrainStep::GraphedTrainStep(TrainRun& run, bool graphs) : graphs_(graphs) {
  grad_sum_squares_ = Tensor::zeros({1}, DType::F64, run.device);
}

GraphedTrainStep::~GraphedTrainStep() {
  out_ = StepOutputs();  // before the graph (and its memory) goes
  graph_.reset();
}

StepHostInputs GraphedTrainStep::prepare(TrainRun& run, BatchOrder& order, int64_t step) {
  const TrainSection& t = run.config.train;
  const int64_t batch = t.batch_size;
  DDPM_CHECK(run.shard.first == 0 && run.shard.size == batch, "train: the graph-ready step runs one rank only "
             "(internal error)");
  const uint64_t stream = train_step_stream(step);
  const std::vector<int64_t> rows = order.indices(step, batch);
  StepHostInputs h;
  h.x0 = gather_batch(run.data, rows, run.config.data.random_flip, seed_for(t.seed, Purpose::Flip), stream, 0);
  const TimestepDraw draw = run.timesteps->draw(static_cast<int>(batch), seed_for(t.seed, Purpose::Timesteps), stream);
  h.t = draw.t;
  h.weights = draw.weights;
  if (run.num_classes > 0)
    h.labels = training_labels(run.data, rows, t.label_dropout, run.num_classes, seed_for(t.seed, Purpose::Dropout),
                               stream, 0);
  h.lr = run.lr->lr_at(step);
  return h;
}

// Device work only: everything it reads per step comes from in_, everything it leaves is in out_.
void GraphedTrainStep::body(TrainRun& run, uint64_t stream) {
  const TrainSection& t = run.config.train;
  run.model->train(true);
  const DropoutKey dropout_key{seed_for(t.seed, Purpose::Dropout), stream, 0};
  Denoiser& model = *run.model;
  const Tensor one_hot = in_.one_hot;
  ModelFn network = [&model, dropout_key, one_hot](const Tensor& x_t, const Tensor& steps) {
    return model.forward(x_t, steps, dropout_key, one_hot.defined() ? ClassLabels::rows(one_hot) : ClassLabels());
  };
  if (t.mixed_precision) network = in_bfloat16(std::move(network));
  GaussianDiffusion::Losses losses =
      run.diffusion->training_losses(network, in_.x0, in_.steps, seed_for(t.seed, Purpose::Noise), stream, 0);
  const Tensor loss = mean(mul(losses.loss, in_.weights));
  run.params->zero_grad();
  backward(loss);
  run.params->fold_compute_grads();
  grad_sum_squares(*run.params, grad_sum_squares_);
  run.adam->step_on_device(in_.adam, grad_sum_squares_, t.grad_clip, run.ema.get());
  out_.loss = loss.detach();
  out_.losses.loss = losses.loss.detach();
  out_.losses.mse = losses.mse.detach();
  out_.losses.vb = losses.vb.defined() ? losses.vb.detach() : Tensor();
  out_.grad_sum_squares = grad_sum_squares_;
}

StepResult GraphedTrainStep::step(TrainRun& run, BatchOrder& order, bool interrupted) {
  const int64_t step = ++run.step;
  const uint64_t stream = train_step_stream(step);
  StepHostInputs host = prepare(run, order, step);
  run.adam->count_step();  // the update's bias-correction count, as Adam::step would advance it
  host.adam = run.adam->step_scalars(host.lr, run.adam->steps());
  const bool reshaped = upload_step_inputs(host, *run.diffusion, run.num_classes, run.device, in_);
  if (reshaped && graph_) {
    // A graph reads the old tensors' addresses: rebuild it for the new shapes (batches are always
    // full, tools/data/batch_order.h, so this does not happen in `ddpm train` today).
    out_ = StepOutputs();
    graph_.reset();
  }
  if (!graphs_) {
    body(run, stream);
    ++counts_.direct;
  } else if (!graph_) {
    CudaGraph::Options o;
    o.strides = train_step_strides();
    o.constant_uploads = false;  // every per-step value is an input uploaded before the replay
    o.what = "the training step";
    o.turn_off = "train.cuda_graphs=false";
    graph_ = std::make_unique<CudaGraph>(o);
    graph_->warm_up([&] { body(run, stream); });
    ++counts_.warm_ups;
  } else {
    if (!graph_->captured()) {
      out_ = StepOutputs();  // the warm-up's outputs go back to the graph's pool before the capture
      graph_->capture([&] { body(run, stream); }, step);
      ++counts_.captures;
    }
    graph_->replay(step);
    ++counts_.replays;
  }

  // Read-backs, after the device work.
  StepResult r;
  r.loss = out_.loss.item();
  r.grad_norm = std::sqrt(out_.grad_sum_squares.item());  // grad_norm's formula
  r.lr = host.lr;
  r.stop_requested = interrupted;
  r.losses = out_.losses;
  DDPM_CHECK(std::isfinite(r.loss), "train: the loss is ", r.loss, " at step ", step,
             "; training stopped. The last good checkpoint (step ", run.last_checkpoint, ") is kept in ", run.run_dir,
             ". Lower train.lr or set train.grad_clip, then resume with --resume ", run.run_dir);
  DDPM_CHECK(std::isfinite(r.grad_norm), "train: the gradient norm is ", r.grad_norm, " at step ", step,
             "; training stopped. The last good checkpoint (step ", run.last_checkpoint, ") is kept in ", run.run_dir);
  run.timesteps->update(host.t, out_.losses.loss.to_vector());
  return r;
}

std::string why_no_train_graphs(const TrainRun& run, int ranks) {
  if (ranks > 1)
    return std::to_string(ranks) + " ranks: the gradient all-reduce and the loss sum go through the host (MPI)";
  const ModelSection& m = run.config.model;
  if (m.type == ModelType::Unet && (m.flip_sin_to_cos || m.freq_shift != 1))  // UNet::forward's condition
    return "the model's diffusers-style timestep embedding (model.flip_sin_to_cos / model.freq_shift) is computed "
           "on the host";
  if (!cuda_graphs_available(run.device)) return "the device is not CUDA";
  return "";
}

}  // namespace ddpm
