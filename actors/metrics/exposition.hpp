#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "messages/protocol.hpp"

namespace objstore {

/// Writes metrics in Prometheus' text exposition format (version 0.0.4):
/// each family once, its `# HELP` and `# TYPE` lines first, then its
/// samples. Label values are escaped; names are the caller's (constants).
class exposition {
public:
  using labels
      = std::initializer_list<std::pair<std::string_view, std::string>>;

  /// Starts a family: `type` is counter, gauge or histogram.
  void family(std::string_view name, std::string_view type,
              std::string_view help);

  /// One sample of the current family (`name` may carry a suffix such as
  /// `_bucket`).
  void sample(std::string_view name, labels ls, double value);

  /// A whole gauge or counter family with one unlabelled sample.
  void single(std::string_view name, std::string_view type,
              std::string_view help, double value);

  /// A whole histogram family: `_bucket` samples with cumulative counts
  /// and `le`, `_sum` and `_count`.
  void histogram(std::string_view name, std::string_view help,
                 const histogram_data& h);

  const std::string& text() const noexcept { return text_; }

private:
  std::string text_;
};

/// The content type of the text format.
inline constexpr std::string_view exposition_content_type
    = "text/plain; version=0.0.4; charset=utf-8";

} // namespace objstore
