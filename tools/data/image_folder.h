// A folder of PNG/JPEG images as a data set: every *.png, *.jpg, *.jpeg (any case) directly in the
// folder, sorted by file name, decoded with libpng or libjpeg-turbo and converted to `channels` (1 = gray,
// 3 = RGB). All images must have the same width and height; nothing is resized.
// A folder with no images directly in it but subfolders of them is labelled: one class per
// immediate subfolder (hidden ones skipped), classes sorted by folder name (label k is the k-th,
// ImageSet::class_names holds the names), its images sorted by name; examples go class by class.
// A folder with images directly in it is unlabelled (its subfolders are ignored).
#pragma once
#include <string>

#include "tools/data/dataset.h"

namespace ddpm {

ImageSet load_image_folder(const std::string& dir, int channels);

}  // namespace ddpm
