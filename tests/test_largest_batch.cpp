// bench/largest_batch.h: against a known memory limit the search lands at or below it, within its
// stated resolution (1/32 of the answer, exact below 64), in a logarithmic number of tries, and
// stops at the limit it is given.
#include <catch2/catch.hpp>
#include <cmath>

#include "bench/largest_batch.h"

TEST_CASE("the largest-batch search brackets the true limit to 1/32 in few probes", "[bench]") {
  for (int64_t truth : {0, 1, 2, 7, 63, 128, 129, 1000, 4095, 4096, 50000}) {
    for (int64_t start : {1, 128, 256}) {
      INFO("truth " << truth << ", start " << start);
      int tried = 0;
      const ddpm::LargestBatch r = ddpm::largest_batch(start, 1 << 20, [&](int64_t b) {
        ++tried;
        return b <= truth;
      });
      CHECK(r.batch <= truth);
      CHECK(r.failed > truth);
      CHECK(truth - r.batch < std::max<int64_t>(1, r.batch / 32));
      if (truth < 64) CHECK(r.batch == truth);
      CHECK(r.probes == tried);
      CHECK(r.probes <= 2 * std::log2(static_cast<double>(std::max(truth, start) + 2)) + 3);
    }
  }
  const ddpm::LargestBatch capped = ddpm::largest_batch(100, 1000, [](int64_t) { return true; });
  CHECK(capped.batch == 1000);
  CHECK(capped.failed == 0);
}
