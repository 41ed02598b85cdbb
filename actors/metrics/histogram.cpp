#include "actors/metrics/histogram.hpp"

#include <algorithm>

namespace objstore {

histogram_data seconds_histogram() {
  histogram_data h;
  h.bounds = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 300};
  h.counts.assign(h.bounds.size() + 1, 0);
  return h;
}

void observe(histogram_data& h, double x) {
  if (h.counts.size() != h.bounds.size() + 1)
    h.counts.assign(h.bounds.size() + 1, 0);
  auto i = std::lower_bound(h.bounds.begin(), h.bounds.end(), x);
  ++h.counts[static_cast<size_t>(i - h.bounds.begin())];
  h.sum += x;
  ++h.count;
}

} // namespace objstore
