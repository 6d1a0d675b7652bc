// MNIST / Fashion-MNIST IDX files (http://yann.lecun.com/exdb/mnist/): a big-endian header
// (magic 0x00000803 + N, rows, cols for images; 0x00000801 + N for labels) followed by one
// unsigned byte per pixel or label. Files may be gzipped or not; either is detected by content.
#pragma once
#include <string>

#include "tools/data/dataset.h"

namespace ddpm {

// Where Debian's dataset-fashion-mnist package puts the files.
inline const char* const kDefaultIdxDir = "/usr/share/datasets/fashion-mnist";

// Loads split "train" (train-images-idx3-ubyte, train-labels-idx1-ubyte) or "test"
// (t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte) from `dir`, each with or without ".gz".
// Returns images [N, rows, cols, 1] in [-1, 1] and N labels. Errors name the path and what to do
// (for the default directory: install the Debian package dataset-fashion-mnist).
ImageSet load_idx_dataset(const std::string& dir, const std::string& split);

// What to do when `dir` or a file in it is missing: install the Debian package when `dir` is
// kDefaultIdxDir, otherwise the list of file names the directory must hold. Part of the errors.
std::string idx_missing_help(const std::string& dir);

// The same from two explicit files.
ImageSet read_idx_pair(const std::string& images_path, const std::string& labels_path);

}  // namespace ddpm
