// The process log (actors/log.hpp): levels, the structured line, and a
// worker's unexpected message as one log line instead of CAF's print.

#include <gtest/gtest.h>

#include <sstream>

#include <caf/all.hpp>

#include "actors/log.hpp"
#include "actors/testing/local_cluster.hpp"
#include "store/error.hpp"

namespace log_test_file {
namespace {

using namespace objstore;
using namespace std::chrono_literals;

/// Lines of `text` containing `part`.
size_t lines_with(const std::string& text, const std::string& part) {
  size_t n = 0;
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);)
    if (line.find(part) != std::string::npos)
      ++n;
  return n;
}

class log_test : public ::testing::Test {
protected:
  void TearDown() override { log::init("objstore", log::level::info); }
};

TEST_F(log_test, levels_parse_and_filter) {
  ASSERT_TRUE(log::parse_level("debug"));
  EXPECT_EQ(*log::parse_level("debug"), log::level::debug);
  EXPECT_EQ(*log::parse_level("off"), log::level::off);
  EXPECT_EQ(code_of(log::parse_level("loud").error()), errc::invalid_argument);
  log::init("worker rank=4", log::level::warn);
  testing::internal::CaptureStderr();
  log::info("not shown");
  log::warn("shown", 7);
  log::write(log::level::error, "failed", 0, 12);
  auto text = testing::internal::GetCapturedStderr();
  EXPECT_EQ(lines_with(text, "not shown"), 0u) << text;
  EXPECT_EQ(lines_with(text, " warn  worker rank=4 session=7 req=- shown"), 1u)
      << text;
  EXPECT_EQ(lines_with(text, " error worker rank=4 session=- req=12 failed"),
            1u)
      << text;
  // Each line starts with a UTC time stamp: 2026-01-02T10:11:12.345Z.
  ASSERT_GE(text.size(), 24u);
  EXPECT_EQ(text[4], '-');
  EXPECT_EQ(text[10], 'T');
  EXPECT_EQ(text[23], 'Z') << text;
}

TEST_F(log_test, unexpected_message_to_a_worker_is_one_log_line) {
  local_cluster_options opts;
  opts.workers = 1;
  auto c = local_cluster::start(opts);
  ASSERT_TRUE(c) << describe(c.error());
  auto& cluster = **c;
  log::init("worker rank=0", log::level::info);
  testing::internal::CaptureStderr();
  caf::error err;
  {
    caf::scoped_actor self{cluster.system_of(0)};
    self->request(caf::actor_cast<caf::actor>(cluster.node(0).worker), 10s,
                  std::string{"no such request"}, int32_t{42})
        .receive([](caf::message&) { ADD_FAILURE() << "answered"; },
                 [&](caf::error& x) { err = std::move(x); });
  }
  auto text = testing::internal::GetCapturedStderr();
  EXPECT_EQ(err, caf::sec::unexpected_message);
  EXPECT_EQ(lines_with(text, "unexpected message"), 1u) << text;
  EXPECT_EQ(lines_with(text, " warn  worker rank=0 session=- req=- unexpected "
                             "message ("),
            1u)
      << text;
  EXPECT_EQ(lines_with(text, "to objstore.worker"), 1u) << text;
  EXPECT_EQ(lines_with(text, "***"), 0u) << "CAF's own print\n" << text;
}

} // namespace
} // namespace log_test_file
