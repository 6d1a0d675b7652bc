#include "engine/cpu_runtime.h"

#include <cblas.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace ddpm {

const char* blas_core_name() { return openblas_get_corename(); }

void ensure_fast_blas(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE")) return;
  const char* core = openblas_get_corename();
  const bool fallback = std::strcmp(core, "Prescott") == 0 || std::strcmp(core, "Core2") == 0 ||
                        std::strcmp(core, "Nehalem") == 0;
  if (!fallback) return;
  const char* better = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") ? "SkylakeX"
                       : __builtin_cpu_supports("avx2")                                       ? "Haswell"
                                                                                              : nullptr;
  if (!better) return;
  setenv("OPENBLAS_CORETYPE", better, 1);
  execv("/proc/self/exe", argv);
  // Only reached when exec fails: keep going on the slow kernels and say so.
  std::fprintf(stderr, "warning: OpenBLAS runs its %s kernels; set OPENBLAS_CORETYPE=%s for faster GEMMs\n", core,
               better);
}

}  // namespace ddpm
