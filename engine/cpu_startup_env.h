// Environment variables for OpenBLAS and libgomp that must be set before the libraries load:
// set_cpu_startup_env re-executes the program with them.
#pragma once

namespace ddpm {

// Two settings are read once, when OpenBLAS and libgomp load, so the only way to set them from
// inside a program is to put them in the environment and re-execute itself:
//  * OPENBLAS_CORETYPE: OpenBLAS 0.3.21 does not recognize CPUs newer than it (Sapphire/Emerald
//    Rapids, say) and falls back to its SSE3 "Prescott" kernels, a quarter or less of the GEMM
//    speed; we name the right family (SkylakeX with AVX-512, Haswell with AVX2).
//  * GOMP_SPINCOUNT: libgomp's idle threads spin for a long time before sleeping; on a busy
//    machine a spinning thread holds a core that another thread of ours needs at the next barrier.
//    10000 spins cost nothing on an idle machine and kept a loaded one at 74 instead of 58
//    images/s in training (docs/benchmarks.md).
// Call first thing in main(). Variables the user already set are left alone; when nothing needs
// setting it returns without re-executing.
void set_cpu_startup_env(char** argv);

// The OpenBLAS kernel family in use ("SkylakeX", "Haswell", ...).
const char* blas_core_name();

}  // namespace ddpm
