#include "tools/runtime.h"

#include "engine/ops.h"
#include "models/mlp.h"
#include "models/unet.h"
#include "tools/data/cifar.h"
#include "tools/data/class_names.h"
#include "tools/data/idx.h"
#include "tools/data/image_folder.h"
#include "tools/data/toy2d.h"

#if DDPM_WITH_CUDA
#include "kernels/cuda/conv2d_impl.h"
#endif

namespace ddpm {

Device choose_device(const std::string& setting) {
  if (setting == "cpu") return Device::CPU;
  if (setting == "cuda") {
    DDPM_CHECK(cuda_available(), "train.device is \"cuda\" but no usable GPU was found; use \"auto\" or \"cpu\"");
    return Device::CUDA;
  }
  DDPM_CHECK(setting == "auto", "train.device must be \"auto\", \"cpu\" or \"cuda\", got \"", setting, "\"");
  return cuda_available() ? Device::CUDA : Device::CPU;
}

ImageSet load_dataset(const Json& config, const std::string& split) {
  const Json& d = config.at("data");
  const std::string name = d.at("dataset"), path = d.at("path");
  ImageSet set;
  if (name == "fashion-mnist") {
    try {
      set = load_idx_dataset(path.empty() ? kDefaultIdxDir : path, split);
    } catch (const Error& e) {
      detail::fail(e.what(), "\n(Fashion-MNIST comes from the Debian package dataset-fashion-mnist: "
                   "apt-get install dataset-fashion-mnist puts it in ", kDefaultIdxDir, ")");
    }
  } else if (name == "mnist") {
    DDPM_CHECK(!path.empty(), "data.path: MNIST has no Debian package; download its four IDX files "
               "(train-images-idx3-ubyte.gz ...) into a folder and set data.path to it");
    set = load_idx_dataset(path, split);
  } else if (name == "cifar10") {
    DDPM_CHECK(!path.empty(), "data.path: give the folder holding CIFAR-10's binary batches (data_batch_1.bin ...)");
    set = load_cifar10(path, split);
  } else if (name == "folder") {
    DDPM_CHECK(!path.empty(), "data.path: give the folder of PNG/JPEG images");
    set = load_image_folder(path, d.at("channels").get<int>());
  } else if (name == "toy") {
    // The test split is an independent draw.
    set = make_toy2d(d.at("toy"), d.at("toy_size").get<int64_t>(), split == "train" ? 0 : 1);
  } else {
    detail::fail("data.dataset: unknown dataset \"", name, "\"; valid: fashion-mnist, mnist, cifar10, folder, toy");
  }
  if (!set.labels.empty() && set.class_names.empty()) set.class_names = builtin_class_names(name);
  const int64_t limit = d.at("limit").get<int64_t>();
  if (limit > 0 && limit < set.size()) {
    const Shape s = set.images.shape();
    Tensor head = Tensor::empty({limit, s[1], s[2], s[3]});
    std::copy_n(set.images.data<float>(), head.numel(), head.data<float>());
    set.images = head;
    if (!set.labels.empty()) set.labels.resize(static_cast<size_t>(limit));
  }
  return set;
}

GaussianDiffusion build_diffusion(const Json& config) {
  const Json& d = config.at("diffusion");
  DiffusionConfig c;
  c.prediction = parse_prediction(d.at("prediction"));
  c.variance = parse_variance(d.at("variance"));
  c.loss = parse_loss(d.at("loss"));
  c.hybrid_lambda = d.at("hybrid_lambda");
  return GaussianDiffusion(Schedule(parse_beta_schedule(d.at("schedule")), d.at("steps").get<int>(), d.at("scale_to_1000")), c);
}

Shape image_shape_of(const Json& config) {
  const std::string name = config.at("data").at("dataset");
  if (name == "fashion-mnist" || name == "mnist") return {28, 28, 1};
  if (name == "cifar10") return {32, 32, 3};
  if (name == "toy") return {1, 1, 2};
  const ImageSet set = load_dataset(config, "train");
  return {set.height(), set.width(), set.channels()};
}

std::unique_ptr<Denoiser> build_model(const Json& config, const Shape& image_shape) {
  const Json& m = config.at("model");
  const bool learned = parse_variance(config.at("diffusion").at("variance")) == VarianceType::LearnedRange;
  const int channels = static_cast<int>(image_shape.at(2));
  const int out = learned ? 2 * channels : channels;
  const std::string type = m.at("type");
  if (type == "mlp") {
    DDPM_CHECK(image_shape[0] == 1 && image_shape[1] == 1, "model.type \"mlp\" is for 2-D points (data.dataset \"toy\"); "
               "these images are ", image_shape[0], "x", image_shape[1], ": use model.type \"unet\"");
    MlpConfig c;
    c.in_channels = channels, c.out_channels = out;
    c.hidden = m.at("mlp_hidden"), c.blocks = m.at("mlp_blocks");
    c.num_classes = m.value("num_classes", 0);  // absent in runs from before conditioning
    return std::make_unique<MlpDenoiser>(c);
  }
  DDPM_CHECK(type == "unet", "model.type must be \"unet\" or \"mlp\", got \"", type, "\"");
  DDPM_CHECK(image_shape[0] == image_shape[1], "UNet: images must be square, got ", image_shape[0], "x", image_shape[1]);
  UNetConfig c;
  c.resolution = static_cast<int>(image_shape[0]);
  c.in_channels = channels, c.out_channels = out;
  c.base_channels = m.at("base_channels");
  c.channel_mult = m.at("channel_mult").get<std::vector<int>>();
  c.num_res_blocks = m.at("num_res_blocks");
  c.attention_resolutions = m.at("attention_resolutions").get<std::vector<int>>();
  c.heads = m.at("heads");
  c.dropout = m.at("dropout");
  c.groups = m.at("groups");
  // Keys added after runs were first written: a run's stored config may lack them.
  c.norm_eps = m.value("norm_eps", c.norm_eps);
  c.head_channels = m.value("head_channels", c.head_channels);
  c.flip_sin_to_cos = m.value("flip_sin_to_cos", c.flip_sin_to_cos);
  c.freq_shift = m.value("freq_shift", c.freq_shift);
  c.downsample_padding = m.value("downsample_padding", c.downsample_padding);
  c.num_classes = m.value("num_classes", 0);  // absent in runs from before conditioning
  return std::make_unique<UNet>(c);
}

ModelFn model_fn(Denoiser& model, DropoutKey key) {
  return [&model, key](const Tensor& x_t, const Tensor& t) { return model.forward(x_t, t, key); };
}

ModelFn in_bfloat16(ModelFn model) {
  return [model = std::move(model)](const Tensor& x_t, const Tensor& t) {
    return convert(model(convert(x_t, DType::BF16), t), DType::F32);
  };
}

void apply_conv_impl(const Json& config) {
  const std::string impl = config.at("train").at("conv_impl");
  DDPM_CHECK(impl == "custom" || impl == "cudnn", "train.conv_impl must be \"custom\" or \"cudnn\", got \"", impl, "\"");
#if DDPM_WITH_CUDA
  cuda::set_conv2d_impl(impl == "cudnn" ? cuda::ConvImpl::Cudnn : cuda::ConvImpl::Custom);
#endif
}

uint64_t seed_for(uint64_t seed, Purpose purpose) {
  // Distinct Philox keys per purpose: (seed, purpose) through a 64-bit mix.
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(purpose);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace ddpm
