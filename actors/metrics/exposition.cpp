#include "actors/metrics/exposition.hpp"

#include <charconv>
#include <cmath>

namespace objstore {

namespace {

void append_value(std::string& out, double x) {
  if (std::isinf(x)) {
    out += x > 0 ? "+Inf" : "-Inf";
    return;
  }
  // Counts are integral: printed without exponent or fraction.
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, x);
  out.append(buf, ec == std::errc{} ? end : buf);
}

void append_escaped(std::string& out, std::string_view x) {
  for (char c : x) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

} // namespace

void exposition::family(std::string_view name, std::string_view type,
                        std::string_view help) {
  text_ += "# HELP ";
  text_ += name;
  text_ += ' ';
  for (char c : help) {
    if (c == '\\' || c == '\n')
      text_ += c == '\\' ? "\\\\" : "\\n";
    else
      text_ += c;
  }
  text_ += "\n# TYPE ";
  text_ += name;
  text_ += ' ';
  text_ += type;
  text_ += '\n';
}

void exposition::sample(std::string_view name, labels ls, double value) {
  text_ += name;
  if (ls.size() > 0) {
    text_ += '{';
    bool first = true;
    for (auto& [key, val] : ls) {
      if (!first)
        text_ += ',';
      first = false;
      text_ += key;
      text_ += "=\"";
      append_escaped(text_, val);
      text_ += '"';
    }
    text_ += '}';
  }
  text_ += ' ';
  append_value(text_, value);
  text_ += '\n';
}

void exposition::single(std::string_view name, std::string_view type,
                        std::string_view help, double value) {
  family(name, type, help);
  sample(name, {}, value);
}

void exposition::histogram(std::string_view name, std::string_view help,
                           const histogram_data& h) {
  family(name, "histogram", help);
  std::string bucket{name};
  bucket += "_bucket";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.bounds.size(); ++i) {
    if (i < h.counts.size())
      cumulative += h.counts[i];
    std::string le;
    append_value(le, h.bounds[i]);
    sample(bucket, {{"le", le}}, static_cast<double>(cumulative));
  }
  sample(bucket, {{"le", "+Inf"}}, static_cast<double>(h.count));
  sample(std::string{name} + "_sum", {}, h.sum);
  sample(std::string{name} + "_count", {}, static_cast<double>(h.count));
}

} // namespace objstore
