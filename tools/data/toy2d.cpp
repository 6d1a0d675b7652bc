#include "tools/data/toy2d.h"

#include <algorithm>
#include <cmath>

#include "engine/philox.h"

namespace ddpm {

namespace {
constexpr double kPi = 3.14159265358979323846;
// Stream 0 holds uniforms, stream 1 normals; point i reads elements 4i..4i+3 of each.
constexpr uint64_t kUniformStream = 0, kNormalStream = 1;

struct Draws {
  uint64_t seed;
  int64_t point;
  double u(int k) const { return philox::uniform(seed, kUniformStream, 4 * point + k); }
  double z(int k) const { return philox::normal(seed, kNormalStream, 4 * point + k); }
};

int swiss_roll(const Draws& d, float* xy) {
  const double t = 1.5 * kPi * (1.0 + 2.0 * d.u(0));
  xy[0] = static_cast<float>(t * std::cos(t) / 15.0 + 0.02 * d.z(0));
  xy[1] = static_cast<float>(t * std::sin(t) / 15.0 + 0.02 * d.z(1));
  return -1;
}

int eight_gaussians(const Draws& d, float* xy) {
  const int mode = std::min(7, static_cast<int>(d.u(0) * 8.0));
  const double angle = mode * kPi / 4.0;
  xy[0] = static_cast<float>(0.8 * std::cos(angle) + 0.04 * d.z(0));
  xy[1] = static_cast<float>(0.8 * std::sin(angle) + 0.04 * d.z(1));
  return mode;
}

int checkerboard(const Draws& d, float* xy) {
  // Column 0..3, then one of the two rows of that column whose parity matches it.
  const int column = std::min(3, static_cast<int>(d.u(0) * 4.0));
  const int pick = std::min(1, static_cast<int>(d.u(1) * 2.0));
  const int row = 2 * pick + (column % 2);
  xy[0] = static_cast<float>(-1.0 + 0.5 * (column + d.u(2)));
  xy[1] = static_cast<float>(-1.0 + 0.5 * (row + d.u(3)));
  return 2 * column + pick;
}
}  // namespace

const std::vector<std::string>& toy2d_names() {
  static const std::vector<std::string> names = {"swissroll", "8gaussians", "checkerboard"};
  return names;
}

ImageSet make_toy2d(const std::string& name, int64_t n, uint64_t seed) {
  int (*draw)(const Draws&, float*) = nullptr;
  if (name == "swissroll") draw = swiss_roll;
  if (name == "8gaussians") draw = eight_gaussians;
  if (name == "checkerboard") draw = checkerboard;
  if (!draw) {
    std::string valid;
    for (const std::string& v : toy2d_names()) valid += (valid.empty() ? "" : ", ") + v;
    ddpm::detail::fail("toy 2-D data: unknown distribution '", name, "'; valid names are ", valid);
  }
  DDPM_CHECK(n > 0, "toy 2-D data ", name, ": the number of points must be positive, got ", n);

  ImageSet set;
  set.images = Tensor::empty({n, 1, 1, 2});
  float* xy = set.images.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    const int label = draw(Draws{seed, i}, xy + 2 * i);
    if (label >= 0) set.labels.push_back(label);
  }
  set.description =
      "toy 2-D " + name + ": " + std::to_string(n) + " points, seed " + std::to_string(seed);
  return set;
}

}  // namespace ddpm
