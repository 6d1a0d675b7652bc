// Start-up tuning of the CPU runtime that can only happen before the libraries load.
#pragma once

namespace ddpm {

// OpenBLAS 0.3.21 does not recognize CPUs newer than it (Sapphire/Emerald Rapids, say) and falls
// back to its SSE3 "Prescott" kernels, a quarter or less of the GEMM speed. The kernel family is
// chosen when the library loads, from OPENBLAS_CORETYPE, so the only fix from inside a program is
// to set that variable and re-execute itself. Call first thing in main(); it returns normally
// when nothing needs fixing (or OPENBLAS_CORETYPE is already set: the user's choice wins).
void ensure_fast_blas(char** argv);

// The OpenBLAS kernel family in use ("SkylakeX", "Haswell", ...).
const char* blas_core_name();

}  // namespace ddpm
