// A folder of PNG/JPEG images as a data set: every *.png, *.jpg, *.jpeg (any case) directly in the
// folder, sorted by file name, decoded with stb_image and converted to `channels` (1 = gray,
// 3 = RGB). All images must have the same width and height; nothing is resized.
#pragma once
#include <string>

#include "tools/data/dataset.h"

namespace ddpm {

ImageSet load_image_folder(const std::string& dir, int channels);

}  // namespace ddpm
