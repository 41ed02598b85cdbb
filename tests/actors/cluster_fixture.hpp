#pragma once

// A GoogleTest fixture around a loopback `local_cluster` that ends every
// test with a leak check: once the test's drivers are gone, every live
// worker's store must drop back to zero mem:// objects.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <sys/wait.h>

#include "actors/testing/local_cluster.hpp"
#include "messages/graph.hpp"
#include "store/error.hpp"

namespace objstore::test {

using namespace std::chrono_literals;

/// Polls `done` every few milliseconds until it holds or `timeout` passes;
/// returns its last result. For effects that cross a real network.
inline bool poll_until(const std::function<bool()>& done,
                       std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (done())
      return true;
    if (std::chrono::steady_clock::now() >= deadline)
      return done();
    std::this_thread::sleep_for(5ms);
  }
}

/// Runs `cmd` with sh (stderr joined to stdout); returns its exit status
/// (-1 when it did not exit normally) and output.
inline std::pair<int, std::string> run_shell(const std::string& cmd) {
  std::string out;
  auto* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr)
    return {-1, "popen failed"};
  char buf[512];
  while (auto n = std::fread(buf, 1, sizeof buf, p))
    out.append(buf, n);
  auto status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

/// Milliseconds since `start`.
inline int64_t elapsed_ms(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now() - start)
      .count();
}

/// A host_var holding the parts of several single-party variables.
inline host_var combine(size_t world_size, const std::vector<host_var>& xs) {
  host_var result{world_size};
  for (auto& x : xs)
    for (auto r : x.parties())
      result.set(r, x.part(r));
  return result;
}

/// Every value of an int64 tensor, for ASSERT/EXPECT messages.
inline std::vector<int64_t> int64_values(const value_ptr& x) {
  auto xs = x->as_tensor().values<int64_t>();
  return {xs.begin(), xs.end()};
}

/// A 1-D int64 tensor of `xs`.
inline value_ptr small_tensor(std::vector<int64_t> xs) {
  auto n = static_cast<int64_t>(xs.size());
  return make_value(tensor::from<int64_t>({n}, xs));
}

/// One op applied to the graph's one input.
inline graph unary_graph(const char* opcode) {
  graph_builder b;
  auto x = b.input();
  b.output(b.add(opcode, {x}));
  return b.build();
}

/// Passes its input through after sleeping `ms` (cancellable).
inline graph sleep_graph(int64_t ms) {
  graph_builder b;
  auto x = b.input();
  b.output(b.add("sleep", {x}, {make_attr("ms", ms)}));
  return b.build();
}

/// Doubles its input and marks the result revealed (fetchable under the
/// revealed-only policy).
inline graph double_graph() {
  graph_builder b;
  auto x = b.input();
  b.output(b.add("reveal", {b.add("add", {x, x})}));
  return b.build();
}

/// A put, a run and a fetch on `rank` all succeed.
inline void expect_serving(driver& d, uint32_t rank) {
  SCOPED_TRACE("rank " + std::to_string(rank) + " serves");
  auto x = d.put(rank, small_tensor({int64_t{rank} + 1, 1}));
  ASSERT_TRUE(x) << describe(x.error());
  auto y = d.run(double_graph(), {*x}, {rank});
  ASSERT_TRUE(y) << describe(y.error());
  auto v = d.fetch(rank, (*y)[0]);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(int64_values(*v),
            (std::vector<int64_t>{2 * (int64_t{rank} + 1), 2}));
}

class cluster_fixture : public ::testing::Test {
protected:
  /// Starts the cluster; fails the test (fatally) on error.
  void start(local_cluster_options options = {}) {
    auto c = local_cluster::start(options);
    ASSERT_TRUE(c) << describe(c.error());
    cluster_ = std::move(*c);
  }

  /// Connects a new driver owned by the fixture (a new session).
  driver& connect(std::optional<driver_actor_options> options = {}) {
    auto d = options ? cluster_->connect(*options) : cluster_->connect();
    if (!d)
      throw std::runtime_error("connect failed: " + describe(d.error()));
    drivers_.push_back(std::move(*d));
    return *drivers_.back();
  }

  local_cluster& nodes() { return *cluster_; }

  /// mem:// objects in rank's store, read in-process.
  uint64_t mem_objects(uint32_t rank) const {
    return cluster_->store_stats_of(rank).of(scheme::mem).objects;
  }

  void TearDown() override {
    drivers_.clear(); // closes the sessions: their objects must go
    if (!cluster_)
      return;
    for (uint32_t r = 0; r < cluster_->size(); ++r) {
      if (!cluster_->alive(r))
        continue; // a killed node keeps what it had
      poll_until([&] { return mem_objects(r) == 0; });
      EXPECT_EQ(mem_objects(r), 0u) << "rank " << r << " leaks objects";
    }
    cluster_.reset();
  }

  std::unique_ptr<local_cluster> cluster_;
  std::vector<std::unique_ptr<driver>> drivers_;
};

/// Expects `x` to fail with `code`; returns the error's message.
template<class T>
std::string expect_error(const caf::expected<T>& x, errc code) {
  if (x) {
    ADD_FAILURE() << "expected " << to_string(code) << ", got a value";
    return {};
  }
  EXPECT_EQ(code_of(x.error()), code) << describe(x.error());
  return message_of(x.error());
}

} // namespace objstore::test
