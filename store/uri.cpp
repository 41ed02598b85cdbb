#include "store/uri.hpp"

#include <random>

#include "store/error.hpp"

namespace objstore {

namespace {

constexpr size_t max_mem_id_size = 256;

bool is_id_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
         || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

bool is_control(char c) {
  auto u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7f;
}

caf::error bad(std::string_view text, std::string_view why) {
  std::string shown{text.substr(0, 200)};
  if (text.size() > 200)
    shown += "...";
  return make_error(errc::invalid_uri, "'" + shown + "': " + std::string{why});
}

caf::error check_mem(std::string_view text, std::string_view key) {
  if (key.empty())
    return bad(text, "empty mem:// id");
  if (key.size() > max_mem_id_size)
    return bad(text, "mem:// id longer than 256 characters");
  for (char c : key)
    if (!is_id_char(c))
      return bad(text, "mem:// id may only hold [A-Za-z0-9._-]");
  return {};
}

caf::error check_fs(std::string_view text, std::string_view key) {
  if (key.empty())
    return bad(text, "empty fs:// path");
  if (key.front() != '/')
    return bad(text, "fs:// path must be absolute (fs:///abs/path)");
  if (key.size() > 1 && key.back() == '/')
    return bad(text, "fs:// path names a directory");
  for (char c : key)
    if (c == '\0' || is_control(c))
      return bad(text, "fs:// path holds a control character");
  return {};
}

caf::error check_oss(std::string_view text, std::string_view key) {
  auto slash = key.find('/');
  if (slash == 0 || slash == std::string_view::npos || slash + 1 == key.size())
    return bad(text, "oss:// needs bucket/key");
  // S3's bucket naming rules (and Alibaba OSS's, a subset of them).
  auto bucket = key.substr(0, slash);
  if (bucket.size() < 3 || bucket.size() > 63)
    return bad(text, "oss:// bucket names have 3 to 63 characters");
  for (char c : bucket)
    if (!(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') && c != '-'
        && c != '.')
      return bad(text, "oss:// bucket names hold only [a-z0-9.-]");
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  };
  if (!alnum(bucket.front()) || !alnum(bucket.back())
      || bucket.find("..") != std::string_view::npos)
    return bad(text, "oss:// bucket names start and end with a letter or "
                     "digit and hold no '..'");
  auto object = key.substr(slash + 1);
  if (object.size() > 1024)
    return bad(text, "oss:// keys have at most 1024 bytes");
  if (object.back() == '/')
    return bad(text, "oss:// key names a folder (ends in '/')");
  for (char c : object)
    if (is_control(c))
      return bad(text, "oss:// key holds a control character");
  return {};
}

} // namespace

std::string_view to_string(scheme x) {
  switch (x) {
    case scheme::mem: return "mem";
    case scheme::fs: return "fs";
    case scheme::oss: return "oss";
  }
  return "?";
}

caf::expected<uri> uri::parse(std::string_view text) {
  if (text.empty())
    return bad(text, "empty URI");
  if (text.size() > max_uri_size)
    return bad(text, "URI longer than 4096 bytes");
  auto sep = text.find("://");
  if (sep == std::string_view::npos || sep == 0)
    return bad(text, "expected scheme://key");
  auto name = text.substr(0, sep);
  auto key = text.substr(sep + 3);
  uri result;
  caf::error err;
  if (name == "mem") {
    result.scheme_ = scheme::mem;
    err = check_mem(text, key);
  } else if (name == "fs") {
    result.scheme_ = scheme::fs;
    err = check_fs(text, key);
  } else if (name == "oss") {
    result.scheme_ = scheme::oss;
    err = check_oss(text, key);
  } else {
    for (char c : name)
      if (!(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') && c != '+')
        return bad(text, "malformed scheme");
    std::string shown{text.substr(0, 200)};
    return make_error(errc::unsupported_scheme,
                      "'" + shown + "': unknown scheme '" + std::string{name}
                          + "' (known: mem, fs, oss)");
  }
  if (err)
    return err;
  result.text_ = std::string{text};
  result.key_offset_ = static_cast<uint32_t>(sep + 3);
  return result;
}

uri uri::make_mem(std::string_view id) {
  uri result;
  result.scheme_ = scheme::mem;
  result.text_ = "mem://";
  result.text_ += id;
  result.key_offset_ = 6;
  return result;
}

mem_id_generator::mem_id_generator() {
  std::random_device rd;
  uint64_t bits = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  static constexpr char hex[] = "0123456789abcdef";
  for (int i = 60; i >= 0; i -= 4)
    prefix_ += hex[(bits >> i) & 0xF];
}

mem_id_generator::mem_id_generator(std::string prefix)
    : prefix_(std::move(prefix)) {
  // nop
}

uri mem_id_generator::next() {
  auto n = counter_.fetch_add(1, std::memory_order_relaxed);
  return uri::make_mem(prefix_ + "-" + std::to_string(n));
}

} // namespace objstore
