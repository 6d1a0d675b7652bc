// The CPU's float32 3x3 stride-1 convolution methods side by side at the quick-start UNet's shapes:
// the direct kernels (kernels/cpu/conv2d_direct.h) against Winograd F(2x2, 3x3)
// (kernels/cpu/conv2d_winograd.h), forward, dx and dW, called directly (no backend, no autograd).
// One JSON line per shape and part on stdout.
//
//   bench_cpu_conv_methods [batch=32] [repeats=15] [rounds=2]
//
// Each figure is the fastest of `repeats` calls, the two methods alternating `rounds` times and the
// fastest round kept: on a machine shared with other jobs the fastest call is the one they
// disturbed least (run with OMP_NUM_THREADS=1 to take the OpenMP team's barriers out as well).
// The rule of DDPM_CPU_CONV=auto (kernels/cpu/conv2d.cpp) comes from these figures.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include <omp.h>

#include "engine/cpu_startup_env.h"
#include "kernels/cpu/conv2d_direct.h"
#include "kernels/cpu/conv2d_winograd.h"

namespace {

double fastest_ms(int repeats, const std::function<void()>& call) {
  double best = 1e300;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    call();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  ddpm::set_cpu_startup_env(argv);
  const int64_t n = argc > 1 ? std::atoll(argv[1]) : 32;
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 15, rounds = argc > 3 ? std::atoi(argv[3]) : 2;
  struct Shape {
    int64_t size, cin, cout;
  };
  // The quick-start UNet's 3x3 stride-1 convolutions (configs/quickstart.json), a few with 16
  // channels for the rule's lower bound.
  const Shape shapes[] = {{28, 32, 32}, {28, 64, 32},  {28, 96, 32}, {14, 32, 64}, {14, 64, 64},
                          {14, 128, 64}, {7, 64, 64},  {7, 128, 64}, {7, 128, 128}, {14, 16, 16},
                          {28, 16, 32}};
  for (const Shape& sh : shapes) {
    const ddpm::cpu::DirectConvShape s{n, sh.size, sh.size, sh.cin, sh.cout, 3, 3, sh.size, sh.size, 1, 1, 1};
    std::vector<float> x(static_cast<size_t>(n * sh.size * sh.size * sh.cin)), w(static_cast<size_t>(sh.cout * 9 * sh.cin));
    std::vector<float> b(static_cast<size_t>(sh.cout), 0.1f), out(static_cast<size_t>(n * sh.size * sh.size * sh.cout));
    std::vector<float> dx(x.size()), dw(w.size());
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 7) * 0.1f;
    for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i % 5) * 0.02f;
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(i % 3) * 0.1f;
    const char* parts[] = {"fwd", "dx", "dw"};
    for (int part = 0; part < 3; ++part) {
      auto call = [&](bool winograd) {
        if (part == 0)
          winograd ? ddpm::cpu::winograd_conv2d_forward(s, x.data(), w.data(), b.data(), out.data())
                   : ddpm::cpu::direct_conv2d_forward(s, x.data(), w.data(), b.data(), out.data());
        else if (part == 1)
          winograd ? ddpm::cpu::winograd_conv2d_backward_x(s, out.data(), w.data(), dx.data(), false)
                   : ddpm::cpu::direct_conv2d_backward_x(s, out.data(), w.data(), dx.data(), false);
        else
          winograd ? ddpm::cpu::winograd_conv2d_backward_w(s, x.data(), out.data(), dw.data(), false)
                   : ddpm::cpu::direct_conv2d_backward_w(s, x.data(), out.data(), dw.data(), false);
      };
      double direct = 1e300, winograd = 1e300;
      for (int r = 0; r < rounds; ++r) {
        direct = std::min(direct, fastest_ms(repeats, [&] { call(false); }));
        winograd = std::min(winograd, fastest_ms(repeats, [&] { call(true); }));
      }
      std::printf("{\"bench\":\"conv3x3_%s\",\"batch\":%lld,\"size\":%lld,\"cin\":%lld,\"cout\":%lld,\"direct_ms\":%.3f,"
                  "\"winograd_ms\":%.3f,\"speedup\":%.3f,\"isa\":\"%s\",\"omp_threads\":%d}\n",
                  parts[part], static_cast<long long>(n), static_cast<long long>(sh.size),
                  static_cast<long long>(sh.cin), static_cast<long long>(sh.cout), direct, winograd, direct / winograd,
                  ddpm::cpu::isa_name(ddpm::cpu::best_cpu_isa()), omp_get_max_threads());
      std::fflush(stdout);
    }
  }
}
