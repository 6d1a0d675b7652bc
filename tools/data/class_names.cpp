#include "tools/data/class_names.h"

namespace ddpm {

std::vector<std::string> builtin_class_names(const std::string& dataset) {
  // Label order as the data sets define it (Fashion-MNIST's README, CIFAR-10's batches.meta.txt).
  if (dataset == "fashion-mnist")
    return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
  if (dataset == "mnist") return {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
  if (dataset == "cifar10")
    return {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
  return {};
}

}  // namespace ddpm
