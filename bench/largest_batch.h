// The largest batch a step fits in memory with, found by trying: doubling from a start until a
// batch fails, then bisecting between the last that fit and the first that failed, to within
// 1/32 of the answer (or one image). Used by bench_end_to_end's largest_batch case; the PyTorch
// side (bench/pytorch_reference.py) searches the same way, so both answers have the same
// resolution.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>

namespace ddpm {

struct LargestBatch {
  int64_t batch = 0;        // the largest batch that fit (0: not even one image)
  int64_t failed = 0;       // the smallest batch seen to fail (0: none failed up to the limit)
  int probes = 0;           // how many batches were tried
};

inline LargestBatch largest_batch(int64_t start, int64_t limit, const std::function<bool(int64_t)>& fits) {
  LargestBatch r;
  int64_t b = std::max<int64_t>(1, std::min(start, limit));
  for (;;) {  // doubling
    ++r.probes;
    if (!fits(b)) {
      r.failed = b;
      break;
    }
    r.batch = b;
    if (b == limit) return r;
    b = std::min(limit, 2 * b);
  }
  while (r.failed - r.batch > std::max<int64_t>(1, r.batch / 32)) {  // bisection
    const int64_t mid = r.batch + (r.failed - r.batch) / 2;
    ++r.probes;
    if (fits(mid))
      r.batch = mid;
    else
      r.failed = mid;
  }
  return r;
}

}  // namespace ddpm
