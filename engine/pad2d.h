// Zero padding of the four sides of an image (conv2d, pooling).
#pragma once

namespace ddpm {

// An int pads all four sides by that amount (what every square "same" convolution uses);
// TF-style "SAME" downsampling pads (top, bottom, left, right) = (0, 1, 0, 1).
struct Pad2d {
  int top = 0, bottom = 0, left = 0, right = 0;
  Pad2d() = default;
  Pad2d(int all) : top(all), bottom(all), left(all), right(all) {}  // NOLINT: implicit on purpose
  Pad2d(int top_, int bottom_, int left_, int right_) : top(top_), bottom(bottom_), left(left_), right(right_) {}
  bool symmetric() const { return top == bottom && left == right; }  // what cuDNN can express
  bool any_negative() const { return top < 0 || bottom < 0 || left < 0 || right < 0; }
};

}  // namespace ddpm
