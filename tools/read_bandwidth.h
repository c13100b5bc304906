// The machine's read bandwidth as the engine sees it: every worker of the pool streams its
// share of a buffer much larger than the last-level cache (the 480 MiB LLC reported here
// would flatter anything smaller), with the same allocation (huge pages) as the weights.
#pragma once

#include <cstddef>

namespace qwen3 {

class ThreadPool;

struct ReadBandwidth {
  size_t bytes = 0;  // per repetition
  double gbs_median = 0, gbs_min = 0, gbs_max = 0;
};

ReadBandwidth MeasureReadBandwidth(ThreadPool& pool, size_t bytes, int repetitions);

}  // namespace qwen3
