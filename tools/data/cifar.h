// CIFAR-10 binary batches (https://www.cs.toronto.edu/~kriz/cifar.html, "binary version"):
// records of 1 label byte (0..9) + 3072 pixel bytes stored planar (1024 R, then G, then B, each
// 32x32 row-major). Loaded as NHWC [N, 32, 32, 3] in [-1, 1].
#pragma once
#include <string>
#include <vector>

#include "tools/data/dataset.h"

namespace ddpm {

// split "train": data_batch_1.bin .. data_batch_5.bin; split "test": test_batch.bin. `dir` may be
// the folder holding them or the one the tarball was unpacked in (with cifar-10-batches-bin/).
ImageSet load_cifar10(const std::string& dir, const std::string& split);

// The records of the given files, in order (gzipped files are inflated).
ImageSet read_cifar10_files(const std::vector<std::string>& paths);

}  // namespace ddpm
