// open_inception_network: pytorch-fid's Inception-v3 (models/inception_v3.h) behind the
// FeatureNetwork interface, loaded from the file scripts/convert_inception.py writes.
#include <memory>
#include <string>

#include "engine/io/safetensors.h"
#include "models/inception_v3.h"
#include "tools/feature_networks.h"

namespace ddpm {

namespace {
// "inception-v3-fid sha256:<hex of the .pth>", from the converter's metadata.
std::string feature_space_name(const NamedTensors& file, const std::string& path) {
  const auto it = file.metadata.find("source_sha256");
  DDPM_CHECK(it != file.metadata.end() && !it->second.empty(), "Inception-v3: ", path,
             " has no source_sha256 in its metadata, so the feature space cannot be named; write it with "
             "scripts/convert_inception.py from pytorch-fid's pt_inception-2015-12-05-6726825d.pth");
  return "inception-v3-fid sha256:" + it->second;
}

class InceptionFeatures final : public FeatureNetwork {
 public:
  InceptionFeatures(const NamedTensors& file, const std::string& path, Device device)
      : name_(feature_space_name(file, path)), net_(file, path, device, DType::F32) {}
  std::string name() const override { return name_; }
  int64_t feature_dim() const override { return InceptionV3::kFeatureDim; }
  bool has_logits() const override { return true; }
  // images [N, H, W, C] in [-1, 1] on any device -> features [N, 2048], logits [N, 1008] (CPU f32)
  FeatureBatch run(const Tensor& images) override {
    Tensor x = images.device() == net_.device() ? images : images.to(net_.device());
    if (x.dtype() != net_.dtype()) x = x.to(net_.dtype());
    const InceptionV3::Output out = net_.forward(x);
    return {out.features.to(Device::CPU).to(DType::F32), out.logits.to(Device::CPU).to(DType::F32)};
  }

 private:
  std::string name_;
  InceptionV3 net_;
};
}  // namespace

std::unique_ptr<FeatureNetwork> open_inception_network(const std::string& weights_file, Device device) {
  const NamedTensors file = load_safetensors(weights_file);
  return std::make_unique<InceptionFeatures>(file, weights_file, device);
}

}  // namespace ddpm
