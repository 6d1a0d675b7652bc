#include "tools/plot/canvas.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "tools/plot/font5x7.h"

namespace ddpm::plot {

Canvas::Canvas(int width, int height, Rgb background)
    : width_(width), height_(height), pixels_(static_cast<size_t>(width) * height * 3) {
  reset_clip();
  fill_rect(0, 0, width, height, background);
}

void Canvas::set_clip(int x, int y, int w, int h) {
  clip_x0_ = std::max(0, x);
  clip_y0_ = std::max(0, y);
  clip_x1_ = std::min(width_, x + w);
  clip_y1_ = std::min(height_, y + h);
}

void Canvas::set(int x, int y, Rgb c) {
  if (x < clip_x0_ || y < clip_y0_ || x >= clip_x1_ || y >= clip_y1_) return;
  uint8_t* p = &pixels_[(static_cast<size_t>(y) * width_ + x) * 3];
  p[0] = c.r;
  p[1] = c.g;
  p[2] = c.b;
}

void Canvas::fill_rect(int x, int y, int w, int h, Rgb c) {
  for (int yy = std::max(clip_y0_, y); yy < std::min(clip_y1_, y + h); ++yy)
    for (int xx = std::max(clip_x0_, x); xx < std::min(clip_x1_, x + w); ++xx) set(xx, yy, c);
}

void Canvas::line(double x0, double y0, double x1, double y1, Rgb c, int thickness) {
  // Clamp far-off endpoints so a wild value cannot make the walk below take forever.
  auto clamp = [](double v, int extent) {
    return static_cast<int>(std::lround(std::clamp(v, -2.0 * extent, 3.0 * extent)));
  };
  int xa = clamp(x0, width_), ya = clamp(y0, height_);
  const int xb = clamp(x1, width_), yb = clamp(y1, height_);
  const int dx = std::abs(xb - xa), dy = -std::abs(yb - ya);
  const int sx = xa < xb ? 1 : -1, sy = ya < yb ? 1 : -1;
  const int lo = -(thickness - 1) / 2;
  int err = dx + dy;
  for (;;) {
    fill_rect(xa + lo, ya + lo, thickness, thickness, c);
    if (xa == xb && ya == yb) break;
    const int e2 = 2 * err;
    if (e2 >= dy) {
      err += dy;
      xa += sx;
    }
    if (e2 <= dx) {
      err += dx;
      ya += sy;
    }
  }
}

void Canvas::text(int x, int y, const std::string& s, Rgb c, int scale) {
  for (size_t i = 0; i < s.size(); ++i) {
    const char* const* rows = glyph_rows(s[i]);
    const int left = x + static_cast<int>(i) * kGlyphAdvance * scale;
    for (int r = 0; r < kGlyphHeight; ++r)
      for (int col = 0; col < kGlyphWidth; ++col)
        if (rows[r][col] == '#') fill_rect(left + col * scale, y + r * scale, scale, scale, c);
  }
}

int Canvas::text_width(const std::string& s, int scale) {
  return s.empty() ? 0 : (static_cast<int>(s.size()) * kGlyphAdvance - 1) * scale;
}

int Canvas::text_height(int scale) { return kGlyphHeight * scale; }

}  // namespace ddpm::plot
