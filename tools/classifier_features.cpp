// The feature network of a `ddpm classifier train` run: its pooled penultimate activations and its
// logits, with the weights classifier.use_ema picked when it was trained (or overridden).
#include "engine/io/sha256.h"
#include "tools/classifier_run.h"
#include "tools/feature_networks.h"

namespace ddpm {

namespace {
class ClassifierFeatures final : public FeatureNetwork {
 public:
  ClassifierFeatures(const std::string& run_dir, Device device)
      : run_(load_classifier_run(run_dir, {}, device)),
        name_("classifier sha256:" + sha256_file_hex(run_.weights_path)) {}

  std::string name() const override { return name_; }
  int64_t feature_dim() const override { return run_.model->feature_dim(); }
  bool has_logits() const override { return true; }
  FeatureBatch run(const Tensor& images) override {
    // classify() refuses images of another size or channel count than the classifier's, naming both.
    const ClassifierOutput out = classify(run_, images, run_.config.classifier.eval_batch_size);
    return {out.features, out.logits};
  }

 private:
  ClassifierRun run_;
  std::string name_;
};
}  // namespace

std::unique_ptr<FeatureNetwork> open_classifier_network(const std::string& run_dir, Device device) {
  return std::make_unique<ClassifierFeatures>(run_dir, device);
}

}  // namespace ddpm
