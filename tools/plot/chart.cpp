#include "tools/plot/chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace ddpm::plot {

namespace {
const Rgb kInk{30, 30, 30}, kGrid{228, 228, 228}, kWhite{255, 255, 255};

// A round step (1, 2 or 5 times a power of ten) near `raw`.
double nice_step(double raw) {
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / magnitude;
  return (norm < 1.5 ? 1.0 : norm < 3.0 ? 2.0 : norm < 7.0 ? 5.0 : 10.0) * magnitude;
}

// Multiples of a round step inside [lo, hi], computed as k * step so they print cleanly.
std::vector<double> linear_ticks(double lo, double hi) {
  const double step = nice_step((hi - lo) / 5.0);
  std::vector<double> ticks;
  for (double k = std::ceil(lo / step - 1e-9); k * step <= hi + 1e-9 * step && ticks.size() < 50;
       k += 1.0)
    ticks.push_back(k * step == 0.0 ? 0.0 : k * step);
  return ticks;
}

std::string format(const char* spec, double v) {
  char text[32];
  std::snprintf(text, sizeof(text), spec, v);
  return text;
}
}  // namespace

bool Axis::usable(double v) const { return std::isfinite(v) && (!log || v > 0.0); }

double Axis::fraction(double v) const { return ((log ? std::log10(v) : v) - lo) / (hi - lo); }

std::vector<double> Axis::ticks() const {
  if (!log) return linear_ticks(lo, hi);
  // Many decades: every decade (or every few); a few: 1, 2 and 5 times each power of ten; less
  // than a decade boundary in view: round linear values.
  const double decades = std::floor(hi) - std::ceil(lo);
  std::vector<double> ticks;
  if (decades >= 3.0) {
    const double stride = std::max(1.0, std::ceil((hi - lo) / 6.0));
    for (double k = std::ceil(lo); k <= hi; k += stride) ticks.push_back(std::pow(10.0, k));
  } else if (decades >= 0.0) {
    for (double k = std::floor(lo); k <= std::ceil(hi); k += 1.0)
      for (double m : {1.0, 2.0, 5.0}) {
        const double v = m * std::pow(10.0, k), p = std::log10(v);
        if (p >= lo && p <= hi) ticks.push_back(v);
      }
  } else {
    ticks = linear_ticks(std::pow(10.0, lo), std::pow(10.0, hi));
  }
  return ticks;
}

std::string Axis::tick_label(double v) const {
  const double a = std::fabs(v);
  if (a != 0.0 && (a >= 1e5 || a < 1e-3)) return format("%.3g", v);
  if (log) return format("%g", v);
  // Enough decimals to tell neighbouring ticks apart, no more.
  const std::vector<double> t = ticks();
  const double step = t.size() > 1 ? t[1] - t[0] : (hi - lo);
  const int decimals = std::clamp(static_cast<int>(-std::floor(std::log10(step) + 1e-9)), 0, 6);
  char text[32];
  std::snprintf(text, sizeof(text), "%.*f", decimals, v);
  return text;
}

Axis fit_axis(const std::vector<double>& values, bool log, double pad_fraction) {
  Axis axis;
  axis.log = log;
  double lo = INFINITY, hi = -INFINITY;
  for (double v : values) {
    if (!axis.usable(v)) continue;
    const double p = log ? std::log10(v) : v;
    lo = std::min(lo, p);
    hi = std::max(hi, p);
  }
  if (!(lo <= hi)) {  // nothing usable
    lo = 0.0;
    hi = 1.0;
  }
  if (hi - lo < 1e-12 * std::max(1.0, std::fabs(lo))) {  // a constant: give it some room
    const double half = log ? 0.5 : std::max(0.1 * std::fabs(lo), 0.5);
    lo -= half;
    hi += half;
  }
  const double pad = pad_fraction * (hi - lo);
  axis.lo = lo - pad;
  axis.hi = hi + pad;
  return axis;
}

void draw_frame(Canvas& canvas, const Frame& frame, const std::string& title,
                const std::string& x_label, const std::string& y_label) {
  const int tick = 5, gap = 4;
  const int th = Canvas::text_height();
  for (double v : frame.x.ticks()) {
    const int x = static_cast<int>(std::lround(frame.px(v)));
    canvas.line(x, frame.top, x, frame.bottom - 1, kGrid);
    canvas.line(x, frame.bottom, x, frame.bottom + tick, kInk);
    const std::string label = frame.x.tick_label(v);
    canvas.text(x - Canvas::text_width(label) / 2, frame.bottom + tick + gap, label, kInk);
  }
  for (double v : frame.y.ticks()) {
    const int y = static_cast<int>(std::lround(frame.py(v)));
    canvas.line(frame.left, y, frame.right - 1, y, kGrid);
    canvas.line(frame.left - tick, y, frame.left - 1, y, kInk);
    const std::string label = frame.y.tick_label(v);
    canvas.text(frame.left - tick - gap - Canvas::text_width(label), y - th / 2, label, kInk);
  }
  // The frame goes on top of the grid.
  canvas.line(frame.left - 1, frame.top - 1, frame.right, frame.top - 1, kInk);
  canvas.line(frame.left - 1, frame.bottom, frame.right, frame.bottom, kInk);
  canvas.line(frame.left - 1, frame.top - 1, frame.left - 1, frame.bottom, kInk);
  canvas.line(frame.right, frame.top - 1, frame.right, frame.bottom, kInk);

  const int title_scale = 2;
  canvas.text((canvas.width() - Canvas::text_width(title, title_scale)) / 2, 10, title, kInk,
              title_scale);
  const int center = (frame.left + frame.right) / 2;
  canvas.text(center - Canvas::text_width(x_label) / 2, frame.bottom + tick + 2 * gap + th + 6,
              x_label, kInk);
  canvas.text(std::max(4, frame.left - Canvas::text_width(y_label) / 2), frame.top - th - 8,
              y_label, kInk);
}

void draw_legend(Canvas& canvas, const Frame& frame, const std::vector<std::string>& labels,
                 const std::vector<Rgb>& colors) {
  const int swatch = 20, pad = 6, row = Canvas::text_height() + 6;
  int width = 0, rows = 0;
  for (const std::string& label : labels) {
    if (label.empty()) continue;
    width = std::max(width, Canvas::text_width(label));
    ++rows;
  }
  if (rows == 0) return;
  const int box_w = pad + swatch + pad + width + pad, box_h = pad + rows * row;
  const int x0 = frame.right - 8 - box_w, y0 = frame.top + 8;
  canvas.fill_rect(x0, y0, box_w, box_h, kWhite);
  canvas.line(x0, y0, x0 + box_w, y0, kInk);
  canvas.line(x0, y0 + box_h, x0 + box_w, y0 + box_h, kInk);
  canvas.line(x0, y0, x0, y0 + box_h, kInk);
  canvas.line(x0 + box_w, y0, x0 + box_w, y0 + box_h, kInk);
  int y = y0 + pad;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i].empty()) continue;
    const int mid = y + Canvas::text_height() / 2;
    canvas.fill_rect(x0 + pad, mid - 1, swatch, 3, colors[i]);
    canvas.text(x0 + pad + swatch + pad, y, labels[i], kInk);
    y += row;
  }
}

Rgb series_color(size_t index) {
  // The "tab10" palette: ten hues that stay distinguishable on white.
  static const Rgb palette[] = {{31, 119, 180},  {255, 127, 14}, {44, 160, 44},   {214, 39, 40},
                                {148, 103, 189}, {140, 86, 75},  {227, 119, 194}, {127, 127, 127},
                                {188, 189, 34},  {23, 190, 207}};
  return palette[index % 10];
}

}  // namespace ddpm::plot
