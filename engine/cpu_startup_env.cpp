#include "engine/cpu_startup_env.h"

#include <cblas.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace ddpm {

const char* blas_core_name() { return openblas_get_corename(); }

namespace {
// The kernel family OpenBLAS should use, or nullptr when its own choice is fine.
const char* better_blas_core() {
  const char* core = openblas_get_corename();
  const bool fallback = std::strcmp(core, "Prescott") == 0 || std::strcmp(core, "Core2") == 0 ||
                        std::strcmp(core, "Nehalem") == 0;
  if (!fallback) return nullptr;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) return "SkylakeX";
  if (__builtin_cpu_supports("avx2")) return "Haswell";
  return nullptr;
}
}  // namespace

void set_cpu_startup_env(char** argv) {
  bool changed = false;
  if (!std::getenv("OPENBLAS_CORETYPE"))
    if (const char* core = better_blas_core()) changed |= setenv("OPENBLAS_CORETYPE", core, 1) == 0;
  if (!std::getenv("GOMP_SPINCOUNT") && !std::getenv("OMP_WAIT_POLICY"))
    changed |= setenv("GOMP_SPINCOUNT", "10000", 1) == 0;
  if (!changed) return;
  execv("/proc/self/exe", argv);
  // Only reached when exec fails: go on with the libraries as they loaded.
  std::fprintf(stderr, "warning: could not re-execute to apply OPENBLAS_CORETYPE/GOMP_SPINCOUNT; running as is\n");
}

}  // namespace ddpm
