// 2-D toy distributions for quick diffusion experiments, drawn from Philox so that a (name, n,
// seed) triple always gives the same points, and the first n points of a larger draw equal a
// draw of n (point i uses only Philox elements addressed by i).
//
// Points are returned as 1x1 "images" with 2 channels, [N, 1, 1, 2] (channel 0 = x, 1 = y), so the
// NHWC batching code handles them unchanged; reshape to [N, 2] for an MLP. All sets lie roughly in
// [-1, 1]^2:
//   swissroll     sklearn-style roll t (cos t, sin t), t in [1.5pi, 4.5pi], scaled by 1/15,
//                 plus N(0, 0.02^2) noise; no labels.
//   8gaussians    8 modes on a circle of radius 0.8 (angles k pi/4), std 0.04; label = mode.
//   checkerboard  uniform on the 8 dark cells of a 4x4 board over [-1, 1]^2; label = cell (0..7).
#pragma once
#include <string>
#include <vector>

#include "tools/data/dataset.h"

namespace ddpm {

const std::vector<std::string>& toy2d_names();  // the valid `name`s, in the order above

ImageSet make_toy2d(const std::string& name, int64_t n, uint64_t seed);

}  // namespace ddpm
