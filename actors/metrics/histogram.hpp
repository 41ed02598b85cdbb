#pragma once

#include <chrono>

#include "messages/protocol.hpp"

namespace objstore {

/// An empty histogram of durations in seconds with buckets from 1 ms to
/// 5 min (tasks and transfers span that range).
histogram_data seconds_histogram();

/// Counts one observation of `x` in `h`. Not thread-safe: one owner (the
/// worker actor) observes, readers get copies.
void observe(histogram_data& h, double x);

/// `to - from` in seconds.
inline double seconds_since(std::chrono::steady_clock::time_point from,
                            std::chrono::steady_clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

} // namespace objstore
