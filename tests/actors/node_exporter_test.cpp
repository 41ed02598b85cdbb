// The worker's Prometheus endpoint (actors/metrics/node_exporter.hpp):
// scraped over HTTP, its values follow what drivers do, and its text
// passes Prometheus' own parser (promtool, Debian's `prometheus`).

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "actors/metrics/exposition.hpp"
#include "actors/metrics/histogram.hpp"
#include "actors/metrics/node_exporter.hpp"
#include "actors/testing/local_cluster.hpp"
#include "cluster_fixture.hpp"
#include "store/error.hpp"

namespace node_exporter_test_file {
namespace {

using namespace objstore;
using objstore::test::poll_until;

/// Sends one HTTP/1.0 request to 127.0.0.1:`port`; returns the whole
/// response (status line, headers, body) or nothing when it cannot
/// connect.
std::optional<std::string> http(uint16_t port, const std::string& method,
                                const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return std::nullopt;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return std::nullopt;
  }
  auto request = method + " " + path
                 + " HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n";
  if (::send(fd, request.data(), request.size(), 0)
      != static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return std::nullopt;
  }
  std::string response;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;)
    response.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return response;
}

/// The body of `GET /metrics` (empty on any failure).
std::string scrape(uint16_t port) {
  auto response = http(port, "GET", "/metrics");
  if (!response || !response->starts_with("HTTP/1.1 200"))
    return {};
  auto body = response->find("\r\n\r\n");
  return body == std::string::npos ? std::string{} : response->substr(body + 4);
}

/// The value of the sample spelled `series` (name and labels as
/// exposed), or -1 when the text has no such sample.
double sample(const std::string& text, const std::string& series) {
  auto at = text.find("\n" + series + " ");
  if (at == std::string::npos)
    return -1;
  return std::strtod(text.c_str() + at + series.size() + 2, nullptr);
}

/// Runs `promtool check metrics` on `text`; returns its exit status and
/// output.
std::pair<int, std::string> promtool_check(const std::string& text) {
  auto dir = std::filesystem::temp_directory_path()
             / ("objstore-promtool-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto in = dir / "metrics.txt";
  std::ofstream{in} << text;
  auto result
      = objstore::test::run_shell("promtool check metrics < " + in.string());
  std::filesystem::remove_all(dir);
  return result;
}

bool has_promtool() {
  return objstore::test::run_shell("command -v promtool").first == 0;
}

value_ptr ints(int64_t n) {
  std::vector<int64_t> xs(static_cast<size_t>(n), 7);
  return make_value(tensor::from<int64_t>({n}, xs));
}

/// `add` of the graph's two inputs.
graph add_graph() {
  graph_builder b;
  auto x = b.input();
  b.output(b.add("add", {x, b.input()}));
  return b.build();
}

class node_exporter_test : public objstore::test::cluster_fixture {
protected:
  void SetUp() override {
    local_cluster_options opts;
    opts.workers = 1;
    opts.policy = fetch_policy::allow;
    ASSERT_NO_FATAL_FAILURE(start(opts));
    drv = &connect();
    auto x = node_exporter::start(nodes().system_of(0), nodes().node(0),
                                  "127.0.0.1", 0);
    ASSERT_TRUE(x) << describe(x.error());
    exporter = std::move(*x);
    ASSERT_NE(exporter->port(), 0);
  }

  void TearDown() override {
    // It holds the node's handles: gone before the node's actor system.
    exporter.reset();
    cluster_fixture::TearDown();
  }

  double value(const std::string& series) {
    return sample(scrape(exporter->port()), series);
  }

  driver* drv = nullptr;
  std::unique_ptr<node_exporter> exporter;
};

const std::string held_objects
    = R"(objstore_objects{scheme="mem",state="held"})";
const std::string held_bytes
    = R"(objstore_object_bytes{scheme="mem",state="held"})";

TEST_F(node_exporter_test, put_raises_and_release_lowers_objects_and_bytes) {
  EXPECT_EQ(value(held_objects), 0);
  EXPECT_EQ(value(held_bytes), 0);
  EXPECT_EQ(value("objstore_sessions"), 1);
  auto x = drv->put(0, ints(1000));
  ASSERT_TRUE(x) << describe(x.error());
  auto y = drv->put(0, ints(10));
  ASSERT_TRUE(y) << describe(y.error());
  // The put's reply comes after the worker recorded the object: no wait.
  EXPECT_EQ(value(held_objects), 2);
  EXPECT_EQ(value(held_bytes), 8080);
  EXPECT_EQ(value(R"(objstore_client_bytes_total{direction="in"})"), 8080);
  x->reset();
  ASSERT_TRUE(drv->flush());
  EXPECT_TRUE(poll_until([&] { return value(held_objects) == 1; }));
  EXPECT_EQ(value(held_bytes), 80);
  EXPECT_EQ(value(R"(objstore_releases_total{kind="known"})"), 1);
  EXPECT_EQ(value(R"(objstore_releases_total{kind="unknown"})"), 0);
  auto v = drv->fetch(0, *y);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(value(R"(objstore_fetches_total{outcome="allowed"})"), 1);
  EXPECT_EQ(value(R"(objstore_client_bytes_total{direction="out"})"), 80);
  EXPECT_EQ(value("objstore_metrics_fresh"), 1);
}

TEST_F(node_exporter_test, a_failed_task_counts_once) {
  auto x = drv->put(0, ints(3));
  auto y = drv->put(0, make_value(tensor::from<double>({2}, {1.0, 2.0})));
  ASSERT_TRUE(x && y);
  auto failed = R"(objstore_tasks_total{outcome="failed"})";
  auto succeeded = R"(objstore_tasks_total{outcome="succeeded"})";
  EXPECT_EQ(value(failed), 0);
  auto bad = drv->run(add_graph(), {*x, *y});
  ASSERT_FALSE(bad);
  EXPECT_EQ(code_of(bad.error()), errc::op_failed);
  EXPECT_EQ(value(failed), 1);
  EXPECT_EQ(value(succeeded), 0);
  EXPECT_EQ(value("objstore_task_duration_seconds_count"), 1);
  auto good = drv->run(add_graph(), {*x, *x});
  ASSERT_TRUE(good) << describe(good.error());
  EXPECT_EQ(value(failed), 1);
  EXPECT_EQ(value(succeeded), 1);
  EXPECT_EQ(value("objstore_task_duration_seconds_count"), 2);
  EXPECT_EQ(value(R"(objstore_task_duration_seconds_bucket{le="+Inf"})"), 2);
  EXPECT_EQ(value(R"(objstore_tasks{state="running"})"), 0);
}

TEST_F(node_exporter_test, exposition_passes_promtool) {
  ASSERT_TRUE(has_promtool())
      << "promtool not found: install Debian's `prometheus` (.ci/dev does)";
  // Something in every family that has samples only after activity.
  auto x = drv->put(0, ints(5));
  ASSERT_TRUE(x);
  ASSERT_TRUE(drv->run(add_graph(), {*x, *x}));
  auto text = scrape(exporter->port());
  ASSERT_FALSE(text.empty());
  auto [status, out] = promtool_check(text);
  EXPECT_EQ(status, 0) << out << "\n" << text;
  // The check can fail: a sample without its family's TYPE first, and a
  // counter without _total, are reported.
  auto [bad_status, bad_out]
      = promtool_check("# TYPE objstore_x counter\nobjstore_x 1\n");
  EXPECT_NE(bad_status, 0) << bad_out;
}

TEST_F(node_exporter_test, endpoint_is_read_only) {
  auto post = http(exporter->port(), "POST", "/metrics");
  ASSERT_TRUE(post);
  EXPECT_FALSE(post->starts_with("HTTP/1.1 200")) << *post;
  auto other = http(exporter->port(), "GET", "/admin");
  ASSERT_TRUE(other);
  EXPECT_TRUE(other->starts_with("HTTP/1.1 404")) << *other;
}

TEST(exposition, histogram_buckets_are_cumulative) {
  auto h = seconds_histogram();
  observe(h, 0.0005);
  observe(h, 0.002);
  observe(h, 1000);
  exposition out;
  out.histogram("objstore_t_seconds", "help", h);
  auto text = "\n" + out.text();
  EXPECT_EQ(sample(text, R"(objstore_t_seconds_bucket{le="0.001"})"), 1);
  EXPECT_EQ(sample(text, R"(objstore_t_seconds_bucket{le="0.005"})"), 2);
  EXPECT_EQ(sample(text, R"(objstore_t_seconds_bucket{le="300"})"), 2);
  EXPECT_EQ(sample(text, R"(objstore_t_seconds_bucket{le="+Inf"})"), 3);
  EXPECT_EQ(sample(text, "objstore_t_seconds_count"), 3);
}

TEST(exposition, label_values_are_escaped) {
  exposition out;
  out.family("objstore_y", "gauge", "a\\b\nc");
  out.sample("objstore_y", {{"k", "q\"\\\n"}}, 2);
  EXPECT_EQ(out.text(), "# HELP objstore_y a\\\\b\\nc\n# TYPE objstore_y "
                        "gauge\nobjstore_y{k=\"q\\\"\\\\\\n\"} 2\n");
}

} // namespace
} // namespace node_exporter_test_file
