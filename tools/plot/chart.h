// Chart scaffolding shared by the line and scatter plot writers: fitting an axis to data (linear or
// log10), choosing round tick values, and drawing the frame, grid, tick labels, title and legend.
#pragma once
#include <string>
#include <vector>

#include "tools/plot/canvas.h"

namespace ddpm::plot {

// One axis; lo and hi are in plotted space (log10 of the value when `log`).
struct Axis {
  double lo = 0, hi = 1;
  bool log = false;

  bool usable(double v) const;        // finite (and > 0 on a log axis)
  double fraction(double v) const;    // 0 at lo, 1 at hi
  std::vector<double> ticks() const;  // values (not logs), about five, at round numbers
  std::string tick_label(double v) const;
};

// The range of the usable values, widened by pad_fraction of its span on each side; [0, 1]
// (1..10 on a log axis) when no value is usable, and a unit-ish span around a constant.
Axis fit_axis(const std::vector<double>& values, bool log, double pad_fraction);

struct Frame {
  int left, top, right, bottom;  // the plot area in pixels (right/bottom exclusive)
  Axis x, y;
  double px(double v) const { return left + x.fraction(v) * (right - 1 - left); }
  double py(double v) const { return bottom - 1 - y.fraction(v) * (bottom - 1 - top); }
};

// Grid lines and ticks at the axes' tick values, tick labels, the frame, the title centred above,
// the x label centred below and the y label above the y axis.
void draw_frame(Canvas& canvas, const Frame& frame, const std::string& title,
                const std::string& x_label, const std::string& y_label);

// A boxed legend in the plot area's top-right corner; entries with empty labels are left out.
void draw_legend(Canvas& canvas, const Frame& frame, const std::vector<std::string>& labels,
                 const std::vector<Rgb>& colors);

Rgb series_color(size_t index);  // distinct colours, cycling after ten

}  // namespace ddpm::plot
