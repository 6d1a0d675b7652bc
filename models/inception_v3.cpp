// pytorch-fid's Inception-v3 over the engine's ops (see the header for the FID differences).
// Layer names and shapes follow torchvision's Inception3 (BasicConv2d = conv + BN + ReLU).
#include "models/inception_v3.h"

#include <cmath>
#include <set>

#include "engine/autograd.h"
#include "engine/ops.h"

namespace ddpm {

namespace {
const char* const kConvertHint =
    "; convert pytorch-fid's pt_inception-2015-12-05-6726825d.pth with scripts/convert_inception.py "
    "(docs/usage.md)";

// A square k x k convolution with "same"-style padding p on all sides.
InceptionConvSpec sq(std::string name, int64_t cin, int64_t cout, int k, int stride = 1, int pad = 0) {
  return {std::move(name), cin, cout, k, k, stride, Pad2d(pad)};
}
// 1 x k (pad left/right) and k x 1 (pad top/bottom) factorized convolutions.
InceptionConvSpec row(std::string name, int64_t cin, int64_t cout, int k) {
  return {std::move(name), cin, cout, 1, k, 1, Pad2d(0, 0, k / 2, k / 2)};
}
InceptionConvSpec col(std::string name, int64_t cin, int64_t cout, int k) {
  return {std::move(name), cin, cout, k, 1, 1, Pad2d(k / 2, k / 2, 0, 0)};
}

void add_a(std::vector<InceptionConvSpec>& s, const std::string& m, int64_t cin, int64_t pool_features) {
  s.push_back(sq(m + ".branch1x1", cin, 64, 1));
  s.push_back(sq(m + ".branch5x5_1", cin, 48, 1));
  s.push_back(sq(m + ".branch5x5_2", 48, 64, 5, 1, 2));
  s.push_back(sq(m + ".branch3x3dbl_1", cin, 64, 1));
  s.push_back(sq(m + ".branch3x3dbl_2", 64, 96, 3, 1, 1));
  s.push_back(sq(m + ".branch3x3dbl_3", 96, 96, 3, 1, 1));
  s.push_back(sq(m + ".branch_pool", cin, pool_features, 1));
}
void add_b(std::vector<InceptionConvSpec>& s, const std::string& m, int64_t cin) {
  s.push_back(sq(m + ".branch3x3", cin, 384, 3, 2));
  s.push_back(sq(m + ".branch3x3dbl_1", cin, 64, 1));
  s.push_back(sq(m + ".branch3x3dbl_2", 64, 96, 3, 1, 1));
  s.push_back(sq(m + ".branch3x3dbl_3", 96, 96, 3, 2));
}
void add_c(std::vector<InceptionConvSpec>& s, const std::string& m, int64_t c7) {
  s.push_back(sq(m + ".branch1x1", 768, 192, 1));
  s.push_back(sq(m + ".branch7x7_1", 768, c7, 1));
  s.push_back(row(m + ".branch7x7_2", c7, c7, 7));
  s.push_back(col(m + ".branch7x7_3", c7, 192, 7));
  s.push_back(sq(m + ".branch7x7dbl_1", 768, c7, 1));
  s.push_back(col(m + ".branch7x7dbl_2", c7, c7, 7));
  s.push_back(row(m + ".branch7x7dbl_3", c7, c7, 7));
  s.push_back(col(m + ".branch7x7dbl_4", c7, c7, 7));
  s.push_back(row(m + ".branch7x7dbl_5", c7, 192, 7));
  s.push_back(sq(m + ".branch_pool", 768, 192, 1));
}
void add_d(std::vector<InceptionConvSpec>& s, const std::string& m) {
  s.push_back(sq(m + ".branch3x3_1", 768, 192, 1));
  s.push_back(sq(m + ".branch3x3_2", 192, 320, 3, 2));
  s.push_back(sq(m + ".branch7x7x3_1", 768, 192, 1));
  s.push_back(row(m + ".branch7x7x3_2", 192, 192, 7));
  s.push_back(col(m + ".branch7x7x3_3", 192, 192, 7));
  s.push_back(sq(m + ".branch7x7x3_4", 192, 192, 3, 2));
}
void add_e(std::vector<InceptionConvSpec>& s, const std::string& m, int64_t cin) {
  s.push_back(sq(m + ".branch1x1", cin, 320, 1));
  s.push_back(sq(m + ".branch3x3_1", cin, 384, 1));
  s.push_back(row(m + ".branch3x3_2a", 384, 384, 3));
  s.push_back(col(m + ".branch3x3_2b", 384, 384, 3));
  s.push_back(sq(m + ".branch3x3dbl_1", cin, 448, 1));
  s.push_back(sq(m + ".branch3x3dbl_2", 448, 384, 3, 1, 1));
  s.push_back(row(m + ".branch3x3dbl_3a", 384, 384, 3));
  s.push_back(col(m + ".branch3x3dbl_3b", 384, 384, 3));
  s.push_back(sq(m + ".branch_pool", cin, 192, 1));
}

std::vector<InceptionConvSpec> build_specs() {
  std::vector<InceptionConvSpec> s;
  s.push_back(sq("Conv2d_1a_3x3", 3, 32, 3, 2));
  s.push_back(sq("Conv2d_2a_3x3", 32, 32, 3));
  s.push_back(sq("Conv2d_2b_3x3", 32, 64, 3, 1, 1));
  s.push_back(sq("Conv2d_3b_1x1", 64, 80, 1));
  s.push_back(sq("Conv2d_4a_3x3", 80, 192, 3));
  add_a(s, "Mixed_5b", 192, 32);
  add_a(s, "Mixed_5c", 256, 64);
  add_a(s, "Mixed_5d", 288, 64);
  add_b(s, "Mixed_6a", 288);
  add_c(s, "Mixed_6b", 128);
  add_c(s, "Mixed_6c", 160);
  add_c(s, "Mixed_6d", 160);
  add_c(s, "Mixed_6e", 192);
  add_d(s, "Mixed_7a");
  add_e(s, "Mixed_7b", 1280);
  add_e(s, "Mixed_7c", 2048);
  return s;
}

// The file's tensor `name` as float64 values, after checking its shape and dtype.
std::vector<double> checked(const NamedTensors& file, const std::string& source, const std::string& name,
                            const Shape& shape) {
  const Tensor* found = nullptr;
  for (const auto& [key, t] : file.tensors)
    if (key == name) found = &t;
  DDPM_CHECK(found != nullptr, "Inception-v3: ", source, " has no tensor '", name, "' (expected float32 ",
             shape_str(shape), ")", kConvertHint);
  DDPM_CHECK(found->shape() == shape, "Inception-v3: tensor '", name, "' of ", source, " has shape ",
             shape_str(found->shape()), " but the architecture needs ", shape_str(shape), kConvertHint);
  DDPM_CHECK(found->dtype() == DType::F32, "Inception-v3: tensor '", name, "' of ", source, " is ",
             dtype_name(found->dtype()), " but the converter writes float32", kConvertHint);
  return found->to_vector();
}

// Concatenates along channels, left to right.
Tensor concat_all(std::initializer_list<Tensor> parts) {
  Tensor out;
  for (const Tensor& p : parts) out = out.defined() ? concat(out, p) : p;
  return out;
}
}  // namespace

const std::vector<InceptionConvSpec>& inception_conv_specs() {
  static const std::vector<InceptionConvSpec> specs = build_specs();
  return specs;
}

std::vector<std::pair<std::string, Shape>> inception_expected_tensors() {
  std::vector<std::pair<std::string, Shape>> out;
  for (const InceptionConvSpec& c : inception_conv_specs()) {
    out.push_back({c.name + ".conv.weight", {c.cout, c.kh, c.kw, c.cin}});
    for (const char* bn : {".bn.weight", ".bn.bias", ".bn.running_mean", ".bn.running_var"})
      out.push_back({c.name + bn, {c.cout}});
  }
  out.push_back({"fc.weight", {InceptionV3::kClasses, InceptionV3::kFeatureDim}});
  out.push_back({"fc.bias", {InceptionV3::kClasses}});
  return out;
}

InceptionV3::InceptionV3(const NamedTensors& file, const std::string& source, Device device, DType dtype)
    : device_(device), dtype_(dtype) {
  DDPM_CHECK(dtype != DType::F64 || device == Device::CPU, "Inception-v3: float64 runs on the CPU only");
  // Unknown names first: a file of some other network should not be half-read.
  std::set<std::string> expected;
  for (const auto& [name, shape] : inception_expected_tensors()) expected.insert(name);
  for (const auto& [name, t] : file.tensors)
    DDPM_CHECK(expected.count(name) > 0, "Inception-v3: ", source, " has a tensor '", name,
               "' that pytorch-fid's Inception-v3 does not have", kConvertHint);

  const auto upload = [&](const std::vector<double>& values, const Shape& shape) {
    return Tensor::from_vector(values, shape, dtype, device);
  };
  for (const InceptionConvSpec& c : inception_conv_specs()) {
    std::vector<double> w = checked(file, source, c.name + ".conv.weight", {c.cout, c.kh, c.kw, c.cin});
    const std::vector<double> gamma = checked(file, source, c.name + ".bn.weight", {c.cout});
    const std::vector<double> beta = checked(file, source, c.name + ".bn.bias", {c.cout});
    const std::vector<double> mean = checked(file, source, c.name + ".bn.running_mean", {c.cout});
    const std::vector<double> var = checked(file, source, c.name + ".bn.running_var", {c.cout});
    // BN(conv(x)) = scale * conv(x) + (beta - scale * mean), scale = gamma / sqrt(var + eps):
    // the scale goes into each output channel's filter, the rest becomes the bias.
    std::vector<double> bias(static_cast<size_t>(c.cout));
    const size_t taps = static_cast<size_t>(c.kh * c.kw * c.cin);
    for (size_t o = 0; o < static_cast<size_t>(c.cout); ++o) {
      const double scale = gamma[o] / std::sqrt(var[o] + kBatchNormEps);
      for (size_t i = 0; i < taps; ++i) w[o * taps + i] *= scale;
      bias[o] = beta[o] - scale * mean[o];
    }
    convs_[c.name] = {upload(w, {c.cout, c.kh, c.kw, c.cin}), upload(bias, {c.cout}), c.stride, c.pad};
  }
  fc_weight_ = upload(checked(file, source, "fc.weight", {kClasses, kFeatureDim}), {kClasses, kFeatureDim});
  fc_bias_ = upload(checked(file, source, "fc.bias", {kClasses}), {kClasses});
}

Tensor InceptionV3::conv(const std::string& name, const Tensor& x) const {
  const FoldedConv& c = convs_.at(name);
  return relu(conv2d(x, c.weight, c.bias, c.stride, c.pad));
}

// InceptionA (Mixed_5b..5d): 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg pool (in-bounds taps) -> 1x1.
Tensor InceptionV3::mixed_a(const std::string& m, const Tensor& x) const {
  const Tensor b1 = conv(m + ".branch1x1", x);
  const Tensor b5 = conv(m + ".branch5x5_2", conv(m + ".branch5x5_1", x));
  const Tensor b3 = conv(m + ".branch3x3dbl_3", conv(m + ".branch3x3dbl_2", conv(m + ".branch3x3dbl_1", x)));
  const Tensor bp = conv(m + ".branch_pool", avg_pool2d(x, 3, 1, 1, /*count_include_pad=*/false));
  return concat_all({b1, b5, b3, bp});
}

// InceptionB (Mixed_6a): stride-2 3x3 | 1x1 -> 3x3 -> stride-2 3x3 | 3x3 stride-2 max pool.
Tensor InceptionV3::mixed_b(const std::string& m, const Tensor& x) const {
  const Tensor b3 = conv(m + ".branch3x3", x);
  const Tensor bd = conv(m + ".branch3x3dbl_3", conv(m + ".branch3x3dbl_2", conv(m + ".branch3x3dbl_1", x)));
  return concat_all({b3, bd, max_pool2d(x, 3, 2, 0)});
}

// InceptionC (Mixed_6b..6e): 1x1 | 1x1 -> 1x7 -> 7x1 | 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7 | avg pool -> 1x1.
Tensor InceptionV3::mixed_c(const std::string& m, const Tensor& x) const {
  const Tensor b1 = conv(m + ".branch1x1", x);
  const Tensor b7 = conv(m + ".branch7x7_3", conv(m + ".branch7x7_2", conv(m + ".branch7x7_1", x)));
  Tensor bd = conv(m + ".branch7x7dbl_1", x);
  for (const char* step : {".branch7x7dbl_2", ".branch7x7dbl_3", ".branch7x7dbl_4", ".branch7x7dbl_5"})
    bd = conv(m + step, bd);
  const Tensor bp = conv(m + ".branch_pool", avg_pool2d(x, 3, 1, 1, /*count_include_pad=*/false));
  return concat_all({b1, b7, bd, bp});
}

// InceptionD (Mixed_7a): 1x1 -> stride-2 3x3 | 1x1 -> 1x7 -> 7x1 -> stride-2 3x3 | stride-2 max pool.
Tensor InceptionV3::mixed_d(const std::string& m, const Tensor& x) const {
  const Tensor b3 = conv(m + ".branch3x3_2", conv(m + ".branch3x3_1", x));
  Tensor b7 = conv(m + ".branch7x7x3_1", x);
  for (const char* step : {".branch7x7x3_2", ".branch7x7x3_3", ".branch7x7x3_4"}) b7 = conv(m + step, b7);
  return concat_all({b3, b7, max_pool2d(x, 3, 2, 0)});
}

// InceptionE (Mixed_7b, 7c): 1x1 | 1x1 -> [1x3, 3x1] | 1x1 -> 3x3 -> [1x3, 3x1] | pool -> 1x1; the
// pool is an average over in-bounds taps in 7b (FIDInceptionE_1) and a 3x3 max in 7c (E_2).
Tensor InceptionV3::mixed_e(const std::string& m, const Tensor& x, bool max_pool_branch) const {
  const Tensor b1 = conv(m + ".branch1x1", x);
  const Tensor s3 = conv(m + ".branch3x3_1", x);
  const Tensor b3 = concat(conv(m + ".branch3x3_2a", s3), conv(m + ".branch3x3_2b", s3));
  const Tensor sd = conv(m + ".branch3x3dbl_2", conv(m + ".branch3x3dbl_1", x));
  const Tensor bd = concat(conv(m + ".branch3x3dbl_3a", sd), conv(m + ".branch3x3dbl_3b", sd));
  const Tensor pooled = max_pool_branch ? max_pool2d(x, 3, 1, 1) : avg_pool2d(x, 3, 1, 1, false);
  return concat_all({b1, b3, bd, conv(m + ".branch_pool", pooled)});
}

InceptionV3::Output InceptionV3::forward(const Tensor& images) const {
  DDPM_CHECK(images.rank() == 4 && (images.dim(3) == 1 || images.dim(3) == 3),
             "Inception-v3: expected images [N, H, W, 1 or 3] in [-1, 1], got ", shape_str(images.shape()));
  DDPM_CHECK(images.device() == device_ && images.dtype() == dtype_, "Inception-v3: images are ",
             images.describe(), " but the network runs in ", dtype_name(dtype_), " on ", device_name(device_));
  NoGradGuard no_grad;
  // pytorch-fid resizes images in [0, 1] and then maps them to [-1, 1]; bilinear weights sum to 1,
  // so resizing the [-1, 1] images directly is the same map.
  Tensor x = images;
  if (x.dim(1) != kInputSize || x.dim(2) != kInputSize) x = resize_bilinear(x, kInputSize, kInputSize);
  if (x.dim(3) == 1) x = concat_all({x, x, x});  // grayscale as RGB
  // [N, 299, 299, 3] -> 149 -> 147 -> 147 -> pool 73 -> 73 -> 71 -> pool 35
  x = conv("Conv2d_2b_3x3", conv("Conv2d_2a_3x3", conv("Conv2d_1a_3x3", x)));
  x = max_pool2d(x, 3, 2, 0);
  x = conv("Conv2d_4a_3x3", conv("Conv2d_3b_1x1", x));
  x = max_pool2d(x, 3, 2, 0);
  // [N, 35, 35, 192] -> 256 -> 288 -> 288 -> [N, 17, 17, 768] x4 -> [N, 8, 8, 1280] -> 2048 -> 2048
  x = mixed_a("Mixed_5d", mixed_a("Mixed_5c", mixed_a("Mixed_5b", x)));
  x = mixed_b("Mixed_6a", x);
  for (const char* m : {"Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"}) x = mixed_c(m, x);
  x = mixed_d("Mixed_7a", x);
  x = mixed_e("Mixed_7c", mixed_e("Mixed_7b", x, false), true);
  // The adaptive average pool to 1x1: one window over the whole (square) map.
  const Tensor features = avg_pool2d(x, static_cast<int>(x.dim(1)), 1, 0, true).reshape({x.dim(0), kFeatureDim});
  return {features, linear(features, fc_weight_, fc_bias_)};
}

}  // namespace ddpm
