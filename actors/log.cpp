#include "actors/log.hpp"

#include <mutex>

#include <caf/actor_system.hpp>
#include <caf/message_view.hpp>
#include <caf/scheduled_actor.hpp>
#include <caf/sec.hpp>
#include <caf/uniform_type_info_map.hpp>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "store/error.hpp"

namespace objstore::log {

namespace {

constexpr std::string_view level_names[]
    = {"trace", "debug", "info", "warn", "error", "off"};

struct process_log {
  std::mutex mtx;
  std::string node = "objstore";
  std::shared_ptr<spdlog::logger> logger;

  process_log() {
    logger = std::make_shared<spdlog::logger>(
        "objstore", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    // UTC ISO-8601 with milliseconds, the level, then the caller's fields.
    logger->set_formatter(std::make_unique<spdlog::pattern_formatter>(
        "%Y-%m-%dT%H:%M:%S.%eZ %v", spdlog::pattern_time_type::utc));
    logger->set_level(spdlog::level::info);
    logger->flush_on(spdlog::level::trace);
  }
};

process_log& the_log() {
  static process_log x;
  return x;
}

spdlog::level::level_enum to_spdlog(level x) {
  switch (x) {
    case level::trace: return spdlog::level::trace;
    case level::debug: return spdlog::level::debug;
    case level::info: return spdlog::level::info;
    case level::warn: return spdlog::level::warn;
    case level::error: return spdlog::level::err;
    case level::off: return spdlog::level::off;
  }
  return spdlog::level::info;
}

std::string field(uint64_t x) {
  return x == 0 ? std::string{"-"} : std::to_string(x);
}

} // namespace

caf::expected<level> parse_level(std::string_view text) {
  for (size_t i = 0; i < std::size(level_names); ++i)
    if (level_names[i] == text)
      return static_cast<level>(i);
  return make_error(errc::invalid_argument,
                    "unknown log level '" + std::string{text}
                        + "' (trace, debug, info, warn, error, off)");
}

void init(std::string node, level least) {
  auto& x = the_log();
  std::lock_guard<std::mutex> guard{x.mtx};
  x.node = std::move(node);
  x.logger->set_level(to_spdlog(least));
}

void write(level lvl, std::string_view message, uint64_t session,
           uint64_t request) {
  auto& x = the_log();
  auto l = to_spdlog(lvl);
  if (!x.logger->should_log(l))
    return;
  std::string node;
  {
    std::lock_guard<std::mutex> guard{x.mtx};
    node = x.node;
  }
  // The level as the config spells it ("warn", where spdlog says
  // "warning").
  x.logger->log(l, "{:<5} {} session={} req={} {}",
                level_names[static_cast<size_t>(lvl)], node, field(session),
                field(request), message);
}

void log_unexpected_messages(caf::scheduled_actor* self) {
  self->set_default_handler(
      [](caf::scheduled_actor* self,
         caf::message_view& x) -> caf::result<caf::message> {
        auto& xs = x.content();
        std::string types;
        for (size_t i = 0; i < xs.size(); ++i) {
          if (!types.empty())
            types += ", ";
          auto rtti = xs.type(i);
          if (rtti.first == caf::type_nr<caf::atom_value>::value)
            types += xs.stringify(i); // the atom itself names the message
          else if (auto& name = self->system().types().portable_name(rtti);
                   !name.empty())
            types += name;
          else
            types += "?";
        }
        auto sender = self->current_sender();
        write(level::warn,
              std::string{"unexpected message ("} + types + ") from "
                  + (sender ? caf::to_string(sender->address())
                            : std::string{"an anonymous sender"})
                  + " to " + self->name() + "; answered unexpected_message");
        return caf::sec::unexpected_message;
      });
}

} // namespace objstore::log
