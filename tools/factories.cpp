#include "tools/factories.h"

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

Device choose_device(DeviceChoice choice) {
  if (choice == DeviceChoice::Cpu) return Device::CPU;
  if (choice == DeviceChoice::Cuda) {
    DDPM_CHECK(cuda_available(), "train.device is \"cuda\" but no usable GPU was found; use \"auto\" or \"cpu\"");
    return Device::CUDA;
  }
  return cuda_available() ? Device::CUDA : Device::CPU;
}

ImageSet load_dataset(const DataSection& d, const std::string& split) {
  const std::string& path = d.path;
  ImageSet set;
  switch (d.dataset) {
  case Dataset::FashionMnist:
    try {
      set = load_idx_dataset(path.empty() ? kDefaultIdxDir : path, split);
    } catch (const Error& e) {
      detail::fail(e.what(), "\n(Fashion-MNIST comes from the Debian package dataset-fashion-mnist: "
                   "apt-get install dataset-fashion-mnist puts it in ", kDefaultIdxDir, ")");
    }
    break;
  case Dataset::Mnist:
    DDPM_CHECK(!path.empty(), "data.path: MNIST has no Debian package; download its four IDX files "
               "(train-images-idx3-ubyte.gz ...) into a folder and set data.path to it");
    set = load_idx_dataset(path, split);
    break;
  case Dataset::Cifar10:
    DDPM_CHECK(!path.empty(), "data.path: give the folder holding CIFAR-10's binary batches (data_batch_1.bin ...)");
    set = load_cifar10(path, split);
    break;
  case Dataset::Folder:
    DDPM_CHECK(!path.empty(), "data.path: give the folder of PNG/JPEG images");
    set = load_image_folder(path, d.channels);
    break;
  case Dataset::Toy:
    // The test split is an independent draw.
    set = make_toy2d(d.toy, d.toy_size, split == "train" ? 0 : 1);
    break;
  }
  if (!set.labels.empty() && set.class_names.empty()) set.class_names = builtin_class_names(dataset_name(d.dataset));
  const int64_t limit = d.limit;
  if (limit > 0 && limit < set.size()) {
    const Shape s = set.images.shape();
    Tensor head = Tensor::empty({limit, s[1], s[2], s[3]});
    std::copy_n(set.images.data<float>(), head.numel(), head.data<float>());
    set.images = head;
    if (!set.labels.empty()) set.labels.resize(static_cast<size_t>(limit));
  }
  return set;
}

GaussianDiffusion build_diffusion(const DiffusionSection& d) {
  DiffusionConfig c;
  c.prediction = d.prediction;
  c.variance = d.variance;
  c.loss = d.loss;
  c.hybrid_lambda = d.hybrid_lambda;
  return GaussianDiffusion(Schedule(d.schedule, d.steps, d.scale_to_1000), c);
}

Shape image_shape_of(const DataSection& data) {
  if (data.dataset == Dataset::FashionMnist || data.dataset == Dataset::Mnist) return {28, 28, 1};
  if (data.dataset == Dataset::Cifar10) return {32, 32, 3};
  if (data.dataset == Dataset::Toy) return {1, 1, 2};
  const ImageSet set = load_dataset(data, "train");
  return {set.height(), set.width(), set.channels()};
}

std::unique_ptr<Denoiser> build_model(const Config& config, const Shape& image_shape) {
  const ModelSection& m = config.model;
  const bool learned = config.diffusion.variance == VarianceType::LearnedRange;
  const int channels = static_cast<int>(image_shape.at(2));
  const int out = learned ? 2 * channels : channels;
  if (m.type == ModelType::Mlp) {
    DDPM_CHECK(image_shape[0] == 1 && image_shape[1] == 1, "model.type \"mlp\" is for 2-D points (data.dataset \"toy\"); "
               "these images are ", image_shape[0], "x", image_shape[1], ": use model.type \"unet\"");
    MlpConfig c;
    c.in_channels = channels, c.out_channels = out;
    c.hidden = m.mlp_hidden, c.blocks = m.mlp_blocks;
    c.num_classes = m.num_classes;
    return std::make_unique<MlpDenoiser>(c);
  }
  DDPM_CHECK(image_shape[0] == image_shape[1], "UNet: images must be square, got ", image_shape[0], "x", image_shape[1]);
  UNetConfig c;
  c.resolution = static_cast<int>(image_shape[0]);
  c.in_channels = channels, c.out_channels = out;
  c.base_channels = m.base_channels;
  c.channel_mult = m.channel_mult;
  c.num_res_blocks = m.num_res_blocks;
  c.attention_resolutions = m.attention_resolutions;
  c.heads = m.heads;
  c.dropout = m.dropout;
  c.groups = m.groups;
  c.norm_eps = m.norm_eps;
  c.head_channels = m.head_channels;
  c.flip_sin_to_cos = m.flip_sin_to_cos;
  c.freq_shift = m.freq_shift;
  c.downsample_padding = m.downsample_padding;
  c.num_classes = m.num_classes;
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

void apply_conv_impl(ConvImplChoice impl, bool deterministic) {
#if DDPM_WITH_CUDA
  cuda::set_conv2d_impl(impl == ConvImplChoice::Cudnn ? cuda::ConvImpl::Cudnn : cuda::ConvImpl::Custom);
  cuda::set_conv2d_deterministic(deterministic);
#else
  (void)impl;
  (void)deterministic;
#endif
}

}  // namespace ddpm
