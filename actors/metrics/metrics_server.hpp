#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <caf/expected.hpp>

namespace objstore {

/// A read-only HTTP endpoint serving `GET /metrics` (cpp-httplib) on its
/// own threads, never on CAF's. Each scrape calls `render` on one of the
/// server's threads; `render` must be thread-safe.
///
/// Thread-safety: `port` may be called from any thread; `stop` (and the
/// destructor) from one.
class metrics_server {
public:
  using render_fn = std::function<std::string()>;

  /// Listens on `host:port` (port 0 picks a free one) and starts serving.
  /// Errors: io_error (cannot bind or listen), with the address.
  static caf::expected<std::unique_ptr<metrics_server>>
  start(const std::string& host, uint16_t port, render_fn render);

  ~metrics_server();

  metrics_server(const metrics_server&) = delete;
  metrics_server& operator=(const metrics_server&) = delete;

  /// The bound port.
  uint16_t port() const noexcept { return port_; }

  /// Stops listening and waits for the running scrapes. Idempotent.
  void stop();

private:
  struct impl;
  explicit metrics_server(std::unique_ptr<impl> x, uint16_t port);

  std::unique_ptr<impl> impl_;
  uint16_t port_ = 0;
};

} // namespace objstore
