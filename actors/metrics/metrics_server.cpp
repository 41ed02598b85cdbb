#include "actors/metrics/metrics_server.hpp"

#include <thread>

#include <httplib.h>

#include "actors/metrics/exposition.hpp"
#include "store/error.hpp"

namespace objstore {

struct metrics_server::impl {
  httplib::Server server;
  std::thread thread;
};

metrics_server::metrics_server(std::unique_ptr<impl> x, uint16_t port)
    : impl_(std::move(x)), port_(port) {
  // nop
}

caf::expected<std::unique_ptr<metrics_server>>
metrics_server::start(const std::string& host, uint16_t port,
                      render_fn render) {
  auto x = std::make_unique<impl>();
  // Scrapes are rare and cheap: two threads, not one per core.
  x->server.new_task_queue = [] {
    return new httplib::ThreadPool(2);
  };
  x->server.Get(
      "/metrics", [render](const httplib::Request&, httplib::Response& res) {
        res.set_content(render(), std::string{exposition_content_type});
      });
  x->server.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("objstore metrics: GET /metrics\n", "text/plain");
  });
  int bound = port == 0 ? x->server.bind_to_any_port(host)
                        : (x->server.bind_to_port(host, port) ? port : -1);
  if (bound <= 0)
    return make_error(errc::io_error, "metrics endpoint: cannot listen on "
                                          + host + ":" + std::to_string(port));
  auto* server = &x->server;
  x->thread = std::thread{[server] {
    server->listen_after_bind();
  }};
  return std::unique_ptr<metrics_server>{
      new metrics_server(std::move(x), static_cast<uint16_t>(bound))};
}

metrics_server::~metrics_server() {
  stop();
}

void metrics_server::stop() {
  if (!impl_ || !impl_->thread.joinable())
    return;
  impl_->server.stop();
  impl_->thread.join();
}

} // namespace objstore
