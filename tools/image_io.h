// Image output for the `ddpm` program: sample grids and simple charts as PNG files.
//
// Every writer renders in memory, writes `path + ".tmp"` and renames it over `path`, so a reader
// (or a crash) never sees a half-written file. Errors are ddpm::Error naming the path.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace ddpm {

// Pixel value in [-1, 1] -> byte: clamped, then round((v + 1) * 127.5); NaN -> 0. Inverts
// pixel_from_byte (tools/data/dataset.h) exactly.
uint8_t byte_from_pixel(float v);

// Writes an 8-bit PNG (channels 1 = gray, 3 = RGB, 4 = RGBA) from row-major interleaved bytes.
void write_png(const std::string& path, int width, int height, int channels,
               const std::vector<uint8_t>& bytes);

// Tiles images [N, H, W, C] (C = 1 or 3, values in [-1, 1], any device/dtype) row by row into a
// grid with `columns` images per row (at most N; <= 0: ceil(sqrt(N))) and `padding` black pixels
// between and around them. Gray images give a 1-channel PNG. Image i sits at
//   x = padding + (i % columns) * (W + padding),  y = padding + (i / columns) * (H + padding).
void write_png_grid(const std::string& path, const Tensor& images, int columns, int padding = 2);

struct Series {
  std::vector<double> x, y;  // same length; non-finite points (and y <= 0 on a log axis) are gaps
  std::string label;         // legend text; empty = not in the legend
};

// Chart sizes in pixels.
constexpr int kLinePlotWidth = 800, kLinePlotHeight = 500;
constexpr int kPointsPlotSize = 640;

// The colour series i is drawn in (RGB), for both plot kinds.
std::array<uint8_t, 3> plot_series_color(size_t i);

// A line chart (kLinePlotWidth x kLinePlotHeight): axes with round-number ticks, the title, axis
// labels, one coloured line per series (with point markers when it has few points) and a legend.
// log_y plots log10(y) with decade ticks, log_x the same along x. Text uses a built-in 5x7 font (lower case shows as
// upper).
void write_line_plot(const std::string& path, const std::vector<Series>& series,
                     const std::string& title, const std::string& x_label,
                     const std::string& y_label, bool log_y = false, bool log_x = false);

// A square scatter plot (kPointsPlotSize^2) of 2-D point sets, each in its own colour, on equal x
// and y scales covering [-extent, extent]^2 (extent <= 0: fit the points).
void write_points_plot(const std::string& path, const std::vector<Series>& sets,
                       const std::string& title, double extent = 0.0);

// The points of a [N, 2] or [N, 1, 1, 2] tensor (e.g. a toy data set or samples) as a Series.
Series points_series(const Tensor& points, const std::string& label);

}  // namespace ddpm
