#include "tools/image_io.h"

#include <stb/stb_image_write.h>

#include <algorithm>
#include <cmath>

#include "engine/io/atomic_file.h"
#include "tools/plot/chart.h"

namespace ddpm {

namespace {
const plot::Rgb kWhite{255, 255, 255};

void write_canvas(const std::string& path, const plot::Canvas& canvas) {
  write_png(path, canvas.width(), canvas.height(), 3, canvas.pixels());
}

// A float32 CPU copy only when the tensor is not one already.
Tensor host_f32(const Tensor& t) {
  Tensor out = t.device() == Device::CPU ? t : t.to(Device::CPU);
  return out.dtype() == DType::F32 ? out : out.to(DType::F32);
}
}  // namespace

uint8_t byte_from_pixel(float v) {
  if (std::isnan(v)) return 0;
  const float clamped = std::clamp(v, -1.0f, 1.0f);
  return static_cast<uint8_t>(std::lround((clamped + 1.0f) * 127.5f));
}

void write_png(const std::string& path, int width, int height, int channels,
               const std::vector<uint8_t>& bytes) {
  DDPM_CHECK(width > 0 && height > 0 && channels >= 1 && channels <= 4, "write_png ", path,
             ": bad image size ", width, "x", height, "x", channels);
  DDPM_CHECK(bytes.size() == static_cast<size_t>(width) * height * channels, "write_png ", path,
             ": ", bytes.size(), " bytes given for a ", width, "x", height, "x", channels,
             " image");
  // Encoded in memory, then written atomically (engine/io/atomic_file.h).
  std::string png;
  auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<size_t>(size));
  };
  DDPM_CHECK(stbi_write_png_to_func(append, &png, width, height, channels, bytes.data(), width * channels),
             "write_png: cannot encode ", path, " (", width, "x", height, "x", channels, ")");
  write_file_atomically(path, png);
}

void write_png_grid(const std::string& path, const Tensor& images, int columns, int padding) {
  DDPM_CHECK(images.defined() && images.rank() == 4 && (images.dim(3) == 1 || images.dim(3) == 3) &&
                 images.dim(0) > 0,
             "write_png_grid ", path,
             ": images must be [N, H, W, C] with N > 0 and C = 1 or 3, got ",
             images.defined() ? images.describe() : std::string("no tensor"));
  DDPM_CHECK(padding >= 0, "write_png_grid ", path, ": padding must be >= 0, got ", padding);
  const Tensor host = host_f32(images);
  const int64_t n = host.dim(0), h = host.dim(1), w = host.dim(2), c = host.dim(3);
  const int64_t cols = columns > 0
                           ? std::min<int64_t>(columns, n)
                           : static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n))));
  const int64_t rows = (n + cols - 1) / cols;
  const int64_t grid_w = padding + cols * (w + padding), grid_h = padding + rows * (h + padding);
  DDPM_CHECK(grid_w <= 1 << 15 && grid_h <= 1 << 15, "write_png_grid ", path, ": a ", grid_w, "x",
             grid_h, " grid is too large; write fewer images or more columns");

  std::vector<uint8_t> bytes(static_cast<size_t>(grid_w * grid_h * c), 0);
  const float* src = host.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t x0 = padding + (i % cols) * (w + padding),
                  y0 = padding + (i / cols) * (h + padding);
    for (int64_t y = 0; y < h; ++y)
      for (int64_t k = 0; k < w * c; ++k)
        bytes[static_cast<size_t>(((y0 + y) * grid_w + x0) * c + k)] =
            byte_from_pixel(src[(i * h + y) * w * c + k]);
  }
  write_png(path, static_cast<int>(grid_w), static_cast<int>(grid_h), static_cast<int>(c), bytes);
}

std::array<uint8_t, 3> plot_series_color(size_t i) {
  const plot::Rgb c = plot::series_color(i);
  return {c.r, c.g, c.b};
}

void write_line_plot(const std::string& path, const std::vector<Series>& series,
                     const std::string& title, const std::string& x_label,
                     const std::string& y_label, bool log_y, bool log_x) {
  DDPM_CHECK(!series.empty(), "write_line_plot ", path, ": no series to plot");
  std::vector<double> xs, ys;
  for (const Series& s : series) {
    DDPM_CHECK(s.x.size() == s.y.size(), "write_line_plot ", path, ": series '", s.label, "' has ",
               s.x.size(), " x values but ", s.y.size(), " y values");
    xs.insert(xs.end(), s.x.begin(), s.x.end());
    ys.insert(ys.end(), s.y.begin(), s.y.end());
  }
  plot::Canvas canvas(kLinePlotWidth, kLinePlotHeight, kWhite);
  plot::Frame frame{84,
                    56,
                    kLinePlotWidth - 24,
                    kLinePlotHeight - 56,
                    plot::fit_axis(xs, log_x, log_x ? 0.03 : 0.0),
                    plot::fit_axis(ys, log_y, 0.05)};
  plot::draw_frame(canvas, frame, title, x_label, y_label);

  canvas.set_clip(frame.left, frame.top, frame.right - frame.left, frame.bottom - frame.top);
  std::vector<std::string> labels;
  std::vector<plot::Rgb> colors;
  for (size_t k = 0; k < series.size(); ++k) {
    const Series& s = series[k];
    const plot::Rgb color = plot::series_color(k);
    const bool markers = s.x.size() <= 40;  // few points: show where they are
    bool have_previous = false;
    double px = 0, py = 0;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!frame.x.usable(s.x[i]) || !frame.y.usable(s.y[i])) {
        have_previous = false;  // a gap
        continue;
      }
      const double x = frame.px(s.x[i]), y = frame.py(s.y[i]);
      if (have_previous) canvas.line(px, py, x, y, color, 2);
      if (markers)
        canvas.fill_rect(static_cast<int>(std::lround(x)) - 2, static_cast<int>(std::lround(y)) - 2,
                         5, 5, color);
      px = x;
      py = y;
      have_previous = true;
    }
    labels.push_back(s.label);
    colors.push_back(color);
  }
  canvas.reset_clip();
  plot::draw_legend(canvas, frame, labels, colors);
  write_canvas(path, canvas);
}

Series points_series(const Tensor& points, const std::string& label) {
  DDPM_CHECK(
      points.defined() && points.numel() > 0 && points.dim(-1) == 2 &&
          (points.rank() == 2 || (points.rank() == 4 && points.dim(1) == 1 && points.dim(2) == 1)),
      "points_series: points must be [N, 2] or [N, 1, 1, 2], got ",
      points.defined() ? points.describe() : std::string("no tensor"));
  const std::vector<double> values = points.to_vector();
  Series s;
  s.label = label;
  for (size_t i = 0; i + 1 < values.size(); i += 2) {
    s.x.push_back(values[i]);
    s.y.push_back(values[i + 1]);
  }
  return s;
}

void write_points_plot(const std::string& path, const std::vector<Series>& sets,
                       const std::string& title, double extent) {
  DDPM_CHECK(!sets.empty(), "write_points_plot ", path, ": no point sets to plot");
  double reach = extent;
  if (!(reach > 0.0)) {  // fit: the largest finite |coordinate|, with a margin
    reach = 0.0;
    for (const Series& s : sets) {
      DDPM_CHECK(s.x.size() == s.y.size(), "write_points_plot ", path, ": set '", s.label, "' has ",
                 s.x.size(), " x values but ", s.y.size(), " y values");
      for (double v : s.x)
        if (std::isfinite(v)) reach = std::max(reach, std::fabs(v));
      for (double v : s.y)
        if (std::isfinite(v)) reach = std::max(reach, std::fabs(v));
    }
    reach = reach > 0.0 ? reach * 1.05 : 1.0;
  }
  plot::Canvas canvas(kPointsPlotSize, kPointsPlotSize, kWhite);
  // A square plot area and the same range on both axes keep circles round.
  const int left = 64, top = 48, side = kPointsPlotSize - left - 40;
  const plot::Axis axis{-reach, reach, false};
  const plot::Frame frame{left, top, left + side, top + side, axis, axis};
  plot::draw_frame(canvas, frame, title, "", "");

  canvas.set_clip(frame.left, frame.top, side, side);
  std::vector<std::string> labels;
  std::vector<plot::Rgb> colors;
  for (size_t k = 0; k < sets.size(); ++k) {
    const Series& s = sets[k];
    DDPM_CHECK(s.x.size() == s.y.size(), "write_points_plot ", path, ": set '", s.label, "' has ",
               s.x.size(), " x values but ", s.y.size(), " y values");
    const plot::Rgb color = plot::series_color(k);
    const int dot = s.x.size() < 5000 ? 3 : 2;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      canvas.fill_rect(static_cast<int>(std::lround(frame.px(s.x[i]))) - dot / 2,
                       static_cast<int>(std::lround(frame.py(s.y[i]))) - dot / 2, dot, dot, color);
    }
    labels.push_back(s.label);
    colors.push_back(color);
  }
  canvas.reset_clip();
  plot::draw_legend(canvas, frame, labels, colors);
  write_canvas(path, canvas);
}

}  // namespace ddpm
