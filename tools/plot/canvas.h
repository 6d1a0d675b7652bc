// An RGB raster for the chart writers: clipped pixel writes, thick lines, rectangles and text in
// the built-in 5x7 font. Coordinates are pixels, (0, 0) top-left.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ddpm::plot {

struct Rgb {
  uint8_t r, g, b;
  bool operator==(const Rgb& o) const { return r == o.r && g == o.g && b == o.b; }
};

class Canvas {
 public:
  Canvas(int width, int height, Rgb background);

  int width() const { return width_; }
  int height() const { return height_; }
  const std::vector<uint8_t>& pixels() const { return pixels_; }  // row-major RGB

  // Drawing outside the clip rectangle (initially the whole canvas) is ignored.
  void set_clip(int x, int y, int w, int h);
  void reset_clip() { set_clip(0, 0, width_, height_); }

  void set(int x, int y, Rgb c);
  void fill_rect(int x, int y, int w, int h, Rgb c);
  // A line of the given thickness (a square brush centred on each Bresenham step).
  void line(double x0, double y0, double x1, double y1, Rgb c, int thickness = 1);
  // Text with its top-left corner at (x, y), each font pixel drawn as scale x scale.
  void text(int x, int y, const std::string& s, Rgb c, int scale = 1);
  static int text_width(const std::string& s, int scale = 1);
  static int text_height(int scale = 1);

 private:
  int width_, height_;
  int clip_x0_ = 0, clip_y0_ = 0, clip_x1_ = 0, clip_y1_ = 0;  // half-open
  std::vector<uint8_t> pixels_;
};

}  // namespace ddpm::plot
