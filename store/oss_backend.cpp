#include "store/oss_backend.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include <sys/stat.h>

#include <httplib.h>

#include "store/codec.hpp"
#include "store/detail/sigv4.hpp"
#include "store/error.hpp"

namespace objstore {

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using headers_t = std::vector<std::pair<std::string, std::string>>;

constexpr std::string_view owner_header = "x-amz-meta-objstore-owner";
/// Error bodies kept for the message (S3 error documents are small).
constexpr size_t max_error_body = 64 * 1024;
/// Replies parsed as XML (listings, upload ids) are at most this large.
constexpr size_t max_xml_body = 16u << 20;

// -- small text helpers ------------------------------------------------------

std::string trim(std::string_view x) {
  auto b = x.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos)
    return {};
  auto e = x.find_last_not_of(" \t\r\n");
  return std::string{x.substr(b, e - b + 1)};
}

/// Undoes XML's character references (&amp; &lt; &#39; &#x27; ...).
std::string xml_unescape(std::string_view x) {
  std::string result;
  result.reserve(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i] != '&') {
      result += x[i];
      continue;
    }
    auto end = x.find(';', i);
    if (end == std::string_view::npos || end - i > 10) {
      result += x[i];
      continue;
    }
    auto ref = x.substr(i + 1, end - i - 1);
    static const std::map<std::string_view, char> named{
        {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
    if (auto j = named.find(ref); j != named.end()) {
      result += j->second;
    } else if (ref.size() > 1 && ref[0] == '#') {
      bool hex = ref[1] == 'x' || ref[1] == 'X';
      auto digits = std::string{ref.substr(hex ? 2 : 1)};
      char* stop = nullptr;
      auto code = std::strtoul(digits.c_str(), &stop, hex ? 16 : 10);
      if (digits.empty() || *stop != '\0' || code > 0x10FFFF) {
        result += x.substr(i, end - i + 1);
      } else if (code < 0x80) {
        result += static_cast<char>(code);
      } else if (code < 0x800) {
        result += static_cast<char>(0xC0 | (code >> 6));
        result += static_cast<char>(0x80 | (code & 0x3F));
      } else if (code < 0x10000) {
        result += static_cast<char>(0xE0 | (code >> 12));
        result += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
        result += static_cast<char>(0x80 | (code & 0x3F));
      } else {
        result += static_cast<char>(0xF0 | (code >> 18));
        result += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
        result += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
        result += static_cast<char>(0x80 | (code & 0x3F));
      }
    } else {
      result += x.substr(i, end - i + 1);
    }
    i = end;
  }
  return result;
}

/// The text of every `<tag>...</tag>` in `xml`, in order (no nesting of
/// the same tag; attributes on the opening tag are allowed).
std::vector<std::string_view> xml_all(std::string_view xml,
                                      std::string_view tag) {
  std::vector<std::string_view> result;
  auto open = "<" + std::string{tag};
  auto close = "</" + std::string{tag} + ">";
  size_t pos = 0;
  while ((pos = xml.find(open, pos)) != std::string_view::npos) {
    auto after = pos + open.size();
    if (after >= xml.size() || (xml[after] != '>' && xml[after] != ' ')) {
      pos = after;
      continue;
    }
    auto start = xml.find('>', after);
    if (start == std::string_view::npos)
      break;
    if (xml[start - 1] == '/') { // <tag/>
      result.emplace_back();
      pos = start + 1;
      continue;
    }
    auto end = xml.find(close, start + 1);
    if (end == std::string_view::npos)
      break;
    result.push_back(xml.substr(start + 1, end - start - 1));
    pos = end + close.size();
  }
  return result;
}

std::string xml_first(std::string_view xml, std::string_view tag) {
  auto all = xml_all(xml, tag);
  return all.empty() ? std::string{} : xml_unescape(trim(all.front()));
}

std::string percent_decode(std::string_view x) {
  std::string result;
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i] == '%' && i + 2 < x.size()) {
      auto hex = std::string{x.substr(i + 1, 2)};
      char* stop = nullptr;
      auto c = std::strtoul(hex.c_str(), &stop, 16);
      if (*stop == '\0') {
        result += static_cast<char>(c);
        i += 2;
        continue;
      }
    }
    result += x[i];
  }
  return result;
}

} // namespace

// Types of oss_backend::impl's members (not in the anonymous namespace).
namespace oss_detail {

/// "bucket" or "bucket/prefix" of the options.
struct place {
  std::string bucket;
  std::string prefix;
  bool read_only = false;

  bool holds(const std::string& b, const std::string& key) const {
    return b == bucket && key.compare(0, prefix.size(), prefix) == 0;
  }
};

// -- the HTTP exchange -------------------------------------------------------

/// One request: the path parts, query and extra headers to sign.
struct call {
  std::string method;
  std::string bucket;
  std::string key; // empty: a bucket request
  headers_t query;
  headers_t headers;
  std::span<const std::byte> body;
  /// GET: receives the body of a 2xx reply (offsets from 0 of this
  /// attempt); returning false cancels the request.
  std::function<bool(uint64_t offset, const char* data, size_t n)> sink;
};

struct reply {
  int status = 0;
  httplib::Headers headers;
  std::string body;

  std::string header(const std::string& name) const {
    auto i = headers.find(name);
    return i == headers.end() ? std::string{} : i->second;
  }
};

} // namespace oss_detail

namespace {

using oss_detail::call;
using oss_detail::place;
using oss_detail::reply;

/// 2xx.
bool ok(const reply& r) {
  return r.status >= 200 && r.status < 300;
}

bool retryable(const reply& r) {
  if (r.status >= 500 || r.status == 429)
    return true;
  auto code = xml_first(r.body, "Code");
  return code == "SlowDown" || code == "RequestTimeout"
         || code == "InternalError" || code == "ServiceUnavailable";
}

} // namespace

caf::expected<oss_credentials>
load_oss_credentials(const std::string& file, const std::string& profile) {
  oss_credentials result;
  if (file.empty()) {
    auto get = [](const char* name) {
      auto v = std::getenv(name);
      return v ? std::string{v} : std::string{};
    };
    result.access_key_id = get("AWS_ACCESS_KEY_ID");
    result.secret_access_key = get("AWS_SECRET_ACCESS_KEY");
    result.session_token = get("AWS_SESSION_TOKEN");
    if (result.access_key_id.empty() || result.secret_access_key.empty())
      return make_error(errc::invalid_argument,
                        "no oss:// credentials: set objstore.oss-credentials-"
                        "file or the environment variables AWS_ACCESS_KEY_ID "
                        "and AWS_SECRET_ACCESS_KEY");
    return result;
  }
  struct stat st;
  if (::stat(file.c_str(), &st) != 0)
    return make_error(errc::invalid_argument,
                      "oss:// credentials file '" + file
                          + "' cannot be read: " + std::strerror(errno));
  if ((st.st_mode & 077) != 0)
    return make_error(errc::invalid_argument,
                      "oss:// credentials file '" + file
                          + "' is readable by others (chmod 600 it)");
  std::ifstream in{file};
  if (!in)
    return make_error(errc::invalid_argument,
                      "oss:// credentials file '" + file + "' cannot be read");
  std::string line;
  std::string section;
  bool found = false;
  size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    auto text = trim(line);
    if (text.empty() || text[0] == '#' || text[0] == ';')
      continue;
    if (text.front() == '[') {
      if (text.back() != ']')
        return make_error(errc::invalid_argument,
                          "oss:// credentials file '" + file + "' line "
                              + std::to_string(number)
                              + ": malformed section header");
      section = trim(std::string_view{text}.substr(1, text.size() - 2));
      if (section.rfind("profile ", 0) == 0)
        section = trim(std::string_view{section}.substr(8));
      found = found || section == profile;
      continue;
    }
    auto eq = text.find('=');
    if (eq == std::string::npos)
      return make_error(errc::invalid_argument, "oss:// credentials file '"
                                                    + file + "' line "
                                                    + std::to_string(number)
                                                    + ": expected key = value");
    if (section != profile)
      continue;
    auto name = trim(std::string_view{text}.substr(0, eq));
    auto val = trim(std::string_view{text}.substr(eq + 1));
    if (name == "aws_access_key_id")
      result.access_key_id = val;
    else if (name == "aws_secret_access_key")
      result.secret_access_key = val;
    else if (name == "aws_session_token")
      result.session_token = val;
  }
  if (!found)
    return make_error(errc::invalid_argument, "oss:// credentials file '" + file
                                                  + "' has no profile '"
                                                  + profile + "'");
  if (result.access_key_id.empty() || result.secret_access_key.empty())
    return make_error(errc::invalid_argument,
                      "oss:// credentials file '" + file + "', profile '"
                          + profile
                          + "': needs aws_access_key_id and "
                            "aws_secret_access_key");
  return result;
}

struct oss_backend::impl {
  oss_backend_options options;
  detail::sigv4_credentials creds;
  std::string scheme_host_port; // "http://127.0.0.1:9000"
  std::string host;             // "127.0.0.1:9000": the Host header
  std::vector<place> places;

  /// Idle connections per host (virtual-hosted: one host per bucket).
  std::mutex pool_mtx;
  std::map<std::string, std::vector<std::unique_ptr<httplib::Client>>> pool;

  /// Serialises the put or erase of one key with its counter update
  /// (striped by key), so the counters match the store.
  std::array<std::mutex, 64> stripes;
  std::mutex counters_mtx;
  uint64_t objects = 0;
  uint64_t bytes = 0;
  std::atomic<uint64_t> multipart_uploads{0};
  std::atomic<uint64_t> multipart_aborts{0};
  std::atomic<uint64_t> retries{0};

  std::mutex& stripe(const std::string& bucket, const std::string& key) {
    return stripes[std::hash<std::string>{}(bucket + "/" + key)
                   % stripes.size()];
  }

  void count(int64_t objects_delta, int64_t bytes_delta) {
    std::lock_guard guard{counters_mtx};
    objects += static_cast<uint64_t>(objects_delta);
    bytes += static_cast<uint64_t>(bytes_delta);
  }

  // -- addressing --

  std::string host_of(const std::string& bucket) const {
    return options.virtual_hosted && !bucket.empty() ? bucket + "." + host
                                                     : host;
  }

  std::string path_of(const std::string& bucket, const std::string& key) const {
    std::string result = "/";
    if (!options.virtual_hosted && !bucket.empty()) {
      result += bucket;
      if (!key.empty())
        result += "/";
    }
    return result + detail::uri_encode(key, true);
  }

  std::unique_ptr<httplib::Client> acquire(const std::string& to) {
    {
      std::lock_guard guard{pool_mtx};
      auto& idle = pool[to];
      if (!idle.empty()) {
        auto result = std::move(idle.back());
        idle.pop_back();
        return result;
      }
    }
    auto scheme_end = scheme_host_port.find("://") + 3;
    auto base = scheme_host_port.substr(0, scheme_end) + to;
    auto result = std::make_unique<httplib::Client>(base);
    result->set_url_encode(false); // paths are SigV4-encoded already
    result->set_decompress(false);
    result->set_keep_alive(true);
    if (!options.ca_file.empty())
      result->set_ca_cert_path(options.ca_file);
    result->enable_server_certificate_verification(true);
    return result;
  }

  void release(const std::string& to, std::unique_ptr<httplib::Client> c) {
    std::lock_guard guard{pool_mtx};
    auto& idle = pool[to];
    if (idle.size() < 16)
      idle.push_back(std::move(c));
  }

  // -- one attempt and the retry loop --

  /// One attempt. Transport failures are errors; any HTTP status is a reply.
  caf::expected<reply> once(const call& c, const std::string& what,
                            std::chrono::milliseconds budget) {
    auto to = host_of(c.bucket);
    auto client = acquire(to);
    auto secs = std::max<int64_t>(1, (budget.count() + 999) / 1000);
    client->set_connection_timeout(std::chrono::milliseconds{budget});
    client->set_read_timeout(std::chrono::seconds{secs});
    client->set_write_timeout(std::chrono::seconds{secs});
    auto date = detail::amz_date_now();
    detail::sigv4_request sig;
    sig.method = c.method;
    sig.encoded_path = path_of(c.bucket, c.key);
    sig.query = c.query;
    sig.payload_hash = detail::sha256_hex(c.body);
    // Range stays unsigned (optional in SigV4, and some signers, aws4
    // among them, never sign it).
    for (auto& h : c.headers)
      if (h.first != "range")
        sig.headers.push_back(h);
    sig.headers.emplace_back("host", to);
    sig.headers.emplace_back("x-amz-date", date);
    sig.headers.emplace_back("x-amz-content-sha256", sig.payload_hash);
    if (!creds.session_token.empty())
      sig.headers.emplace_back("x-amz-security-token", creds.session_token);
    httplib::Headers hs;
    for (auto& [name, val] : sig.headers)
      hs.emplace(name, val);
    for (auto& h : c.headers)
      if (h.first == "range")
        hs.emplace(h.first, h.second);
    hs.emplace("Authorization", detail::sigv4_authorization(
                                    sig, creds, options.region, "s3", date));
    auto target = sig.encoded_path;
    if (!c.query.empty())
      target += "?" + detail::sigv4_canonical_query(c.query);
    reply result;
    uint64_t received = 0;
    bool overflow = false;
    auto on_reply = [&](const httplib::Response& r) {
      result.status = r.status;
      result.headers = r.headers;
      return true;
    };
    auto on_data = [&](const char* data, size_t n) {
      if (c.sink && result.status >= 200 && result.status < 300) {
        if (!c.sink(received, data, n))
          return false;
        received += n;
        return true;
      }
      auto cap = ok(result) ? max_xml_body : max_error_body;
      if (result.body.size() + n > cap) {
        overflow = true;
        return false;
      }
      result.body.append(data, n);
      return true;
    };
    auto body = reinterpret_cast<const char*>(c.body.data());
    static const std::string octets = "application/octet-stream";
    httplib::Result res{nullptr, httplib::Error::Unknown};
    if (c.method == "GET")
      res = client->Get(target, hs, on_reply, on_data);
    else if (c.method == "HEAD")
      res = client->Head(target, hs);
    else if (c.method == "DELETE")
      res = client->Delete(target, hs);
    else if (c.method == "PUT")
      res = client->Put(target, hs, body, c.body.size(), octets);
    else
      res = client->Post(target, hs, body, c.body.size(),
                         c.body.empty() ? std::string{} : octets);
    if (!res) {
      auto err = res.error();
      if (overflow)
        return make_error(errc::io_error,
                          what + ": the server's reply is too large");
      if (err == httplib::Error::Canceled)
        return make_error(errc::io_error, what + ": the read was cancelled");
      auto code = err == httplib::Error::ConnectionTimeout ? errc::timeout
                                                           : errc::io_error;
      return make_error(code, what + ": " + httplib::to_string(err) + " ("
                                  + options.endpoint + ")");
    }
    if (c.method != "GET") {
      result.status = res->status;
      result.headers = res->headers;
      result.body = res->body.substr(0, max_xml_body);
    }
    release(to, std::move(client));
    return result;
  }

  /// `once` with retries and exponential backoff within `options.timeout`.
  caf::expected<reply> perform(const call& c, const std::string& what) {
    auto deadline = clock_type::now() + options.timeout;
    caf::error last;
    thread_local std::minstd_rand jitter{std::random_device{}()};
    for (int attempt = 1;; ++attempt) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - clock_type::now());
      if (left <= 0ms)
        return make_error(
            errc::timeout,
            what + ": no answer within "
                + std::to_string(options.timeout.count()) + " ms ("
                + options.endpoint + ")"
                + (last ? "; last: " + message_of(last) : std::string{}));
      auto r = once(c, what, left);
      if (r && !retryable(*r))
        return r;
      last = r ? describe_reply(*r, what, c.bucket) : r.error();
      if (attempt >= options.max_attempts)
        return last;
      ++retries;
      auto delay = options.retry_delay * (1 << std::min(attempt - 1, 10));
      delay = std::min<std::chrono::milliseconds>(delay, 2s);
      delay = delay / 2
              + std::chrono::milliseconds{jitter() % (delay.count() / 2 + 1)};
      auto now = clock_type::now();
      if (now + delay >= deadline)
        delay = std::chrono::duration_cast<std::chrono::milliseconds>(deadline
                                                                      - now);
      std::this_thread::sleep_for(delay);
    }
  }

  /// The typed error of a failed reply.
  caf::error describe_reply(const reply& r, const std::string& what,
                            const std::string& bucket) const {
    auto code = xml_first(r.body, "Code");
    auto message = xml_first(r.body, "Message");
    auto detail = code.empty() ? "HTTP " + std::to_string(r.status)
                               : "HTTP " + std::to_string(r.status) + " " + code
                                     + (message.empty() ? std::string{}
                                                        : ": " + message);
    if (r.status == 404 || code == "NoSuchKey" || code == "NoSuchBucket") {
      if (code == "NoSuchBucket")
        return make_error(errc::not_found, what + ": no bucket '" + bucket
                                               + "' (" + detail + ")");
      return make_error(errc::not_found, what + ": no such object");
    }
    if (r.status == 401 || r.status == 403)
      return make_error(errc::permission_denied, what + ": access to bucket '"
                                                     + bucket + "' denied ("
                                                     + detail + ")");
    if (code == "InvalidBucketName" || code == "KeyTooLongError")
      return make_error(errc::invalid_uri, what + ": " + detail);
    return make_error(errc::io_error, what + ": the server answered " + detail
                                          + " (" + options.endpoint + ")");
  }

  /// `perform`, with every non-2xx reply turned into its error.
  caf::expected<reply> perform_ok(const call& c, const std::string& what) {
    auto r = perform(c, what);
    if (!r)
      return r;
    if (!ok(*r))
      return describe_reply(*r, what, c.bucket);
    return r;
  }

  // -- object requests --

  /// HEAD: the reply (404 is `not_found`).
  caf::expected<reply> head(const std::string& bucket, const std::string& key,
                            const std::string& what) {
    call c;
    c.method = "HEAD";
    c.bucket = bucket;
    c.key = key;
    return perform_ok(c, what);
  }

  /// Whether the place of `id` is known, and whether it is read-only.
  caf::expected<const place*> place_of(const std::string& bucket,
                                       const std::string& key,
                                       const uri& id) const {
    for (auto& p : places)
      if (p.holds(bucket, key))
        return &p;
    return make_error(errc::permission_denied,
                      "'" + id.str()
                          + "': outside the buckets this node serves "
                            "(objstore.oss-buckets)");
  }

  /// `id` split into bucket and key, with the place that holds it.
  struct located {
    std::string bucket;
    std::string key;
    const place* where = nullptr;
  };

  /// Splits `id` and finds its place; `for_write` refuses read-only ones.
  /// Errors: invalid_uri (another scheme), permission_denied.
  caf::expected<located> locate(const uri& id, bool for_write) const {
    auto parts = oss_backend::split(id);
    if (!parts)
      return parts.error();
    auto where = place_of(parts->first, parts->second, id);
    if (!where)
      return where.error();
    if (for_write && (*where)->read_only)
      return make_error(errc::permission_denied,
                        "'" + id.str() + "': in a read-only shared root");
    return located{std::move(parts->first), std::move(parts->second), *where};
  }

  caf::error put(const uri& id, const value_ptr& x, const std::string& owner);
  caf::expected<value_ptr> get(const uri& id);
  caf::error upload_multipart(const std::string& bucket, const std::string& key,
                              const headers_t& meta, const value& x,
                              const std::string& what);
  caf::expected<std::vector<object_info>> list_place(const place& p);

  /// Whether `bucket/key` holds `total` bytes ending with `trailer` (an
  /// encoding's XXH3 checksum: a different stored value ends otherwise).
  bool holds_encoding(const std::string& bucket, const std::string& key,
                      uint64_t total, const std::array<std::byte, 8>& trailer,
                      const std::string& what);
};

namespace {

/// Produces an encoding (head, blocks, checksum trailer) piece by piece,
/// hashing each byte as it is copied out.
class encoding_cursor {
public:
  explicit encoding_cursor(const value& x) : layout_(encode_layout(x)) {
    total_ = layout_.size();
  }

  uint64_t total() const noexcept { return total_; }
  bool done() const noexcept { return produced_ == total_; }

  /// The checksum trailer (the last 8 bytes); valid once `done`.
  const std::array<std::byte, 8>& trailer() const noexcept { return trailer_; }

  /// Copies the next bytes (at most `n`) to `dst`; returns how many.
  size_t fill(std::byte* dst, size_t n) {
    size_t written = 0;
    while (written < n && !done()) {
      auto piece = current();
      if (offset_ == piece.size()) {
        next_piece();
        continue;
      }
      auto k = std::min(n - written, piece.size() - offset_);
      std::memcpy(dst + written, piece.data() + offset_, k);
      if (index_ <= layout_.blocks.size())
        sum_.update(piece.subspan(offset_, k));
      offset_ += k;
      written += k;
      produced_ += k;
    }
    return written;
  }

private:
  std::span<const std::byte> current() {
    if (index_ == 0)
      return std::as_bytes(std::span{layout_.head.data(), layout_.head.size()});
    if (index_ <= layout_.blocks.size())
      return layout_.blocks[index_ - 1];
    if (!trailer_ready_) {
      auto digest = sum_.digest();
      for (int i = 0; i < 8; ++i)
        trailer_[i] = static_cast<std::byte>((digest >> (8 * i)) & 0xff);
      trailer_ready_ = true;
    }
    return {trailer_.data(), trailer_.size()};
  }

  void next_piece() {
    ++index_;
    offset_ = 0;
  }

  encoded_value layout_;
  checksum_stream sum_;
  uint64_t total_ = 0;
  uint64_t produced_ = 0;
  size_t index_ = 0; // 0: head, 1..n: blocks, n+1: trailer
  size_t offset_ = 0;
  std::array<std::byte, 8> trailer_{};
  bool trailer_ready_ = false;
};

/// The total size from `Content-Range: bytes a-b/total`.
std::optional<uint64_t> range_total(const std::string& header) {
  auto slash = header.rfind('/');
  if (slash == std::string::npos)
    return std::nullopt;
  auto text = header.substr(slash + 1);
  char* stop = nullptr;
  auto n = std::strtoull(text.c_str(), &stop, 10);
  if (text.empty() || *stop != '\0')
    return std::nullopt;
  return n;
}

} // namespace

caf::error oss_backend::impl::upload_multipart(const std::string& bucket,
                                               const std::string& key,
                                               const headers_t& meta,
                                               const value& x,
                                               const std::string& what) {
  call start;
  start.method = "POST";
  start.bucket = bucket;
  start.key = key;
  start.query = {{"uploads", ""}};
  start.headers = meta;
  auto started = perform_ok(start, what);
  if (!started)
    return started.error();
  auto upload_id = xml_first(started->body, "UploadId");
  if (upload_id.empty())
    return make_error(errc::io_error,
                      what
                          + ": the server started a multipart upload "
                            "without an UploadId");
  auto abort = [&] {
    call c;
    c.method = "DELETE";
    c.bucket = bucket;
    c.key = key;
    c.query = {{"uploadId", upload_id}};
    perform(c, what); // best effort: servers expire abandoned uploads too
    ++multipart_aborts;
  };
  encoding_cursor cursor{x};
  auto parts = (cursor.total() + options.part_size - 1) / options.part_size;
  if (parts > 10000) {
    abort();
    return make_error(errc::resource_exhausted,
                      what + ": " + std::to_string(cursor.total())
                          + " bytes need more than 10000 parts of "
                          + std::to_string(options.part_size)
                          + " bytes (raise objstore.oss-part-size)");
  }
  std::mutex mtx;
  uint64_t next_part = 1;
  std::vector<std::string> etags(parts);
  caf::error failed;
  auto work = [&] {
    std::vector<std::byte> buf(options.part_size);
    for (;;) {
      uint64_t number;
      size_t n;
      {
        std::lock_guard guard{mtx};
        if (failed || cursor.done())
          return;
        number = next_part++;
        n = cursor.fill(buf.data(), buf.size());
      }
      std::span<const std::byte> body{buf.data(), n};
      call c;
      c.method = "PUT";
      c.bucket = bucket;
      c.key = key;
      c.query
          = {{"partNumber", std::to_string(number)}, {"uploadId", upload_id}};
      c.headers = {{"content-md5", detail::md5_base64(body)}};
      c.body = body;
      auto r = perform_ok(c, what + " (part " + std::to_string(number) + ")");
      std::lock_guard guard{mtx};
      if (!r) {
        if (!failed)
          failed = std::move(r.error());
        return;
      }
      auto etag = r->header("ETag");
      if (etag.empty()) {
        failed = make_error(errc::io_error,
                            what + ": part " + std::to_string(number)
                                + " was stored without an ETag");
        return;
      }
      etags[number - 1] = etag;
    }
  };
  auto threads
      = std::min<uint64_t>(std::max<size_t>(options.parts_in_flight, 1), parts);
  std::vector<std::thread> workers;
  for (uint64_t i = 1; i < threads; ++i)
    workers.emplace_back(work);
  work();
  for (auto& t : workers)
    t.join();
  if (failed) {
    abort();
    return failed;
  }
  std::string doc = "<CompleteMultipartUpload>";
  for (size_t i = 0; i < etags.size(); ++i)
    doc += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>"
           + etags[i] + "</ETag></Part>";
  doc += "</CompleteMultipartUpload>";
  call done;
  done.method = "POST";
  done.bucket = bucket;
  done.key = key;
  done.query = {{"uploadId", upload_id}};
  done.body = std::as_bytes(std::span{doc.data(), doc.size()});
  // S3 may answer 200 and report a failure in the body, even after it
  // began streaming whitespace: that is an error too (retried if it says
  // so, like a 5xx).
  for (int attempt = 1;; ++attempt) {
    auto r = perform_ok(done, what + " (completing the upload)");
    if (!r) {
      // A completion whose reply was lost and that was sent again fails
      // (the upload is gone), yet the object is stored: it is ours if it
      // ends with our checksum trailer.
      if (holds_encoding(bucket, key, cursor.total(), cursor.trailer(), what))
        break;
      abort();
      return r.error();
    }
    if (xml_all(r->body, "Error").empty()
        && !xml_all(r->body, "CompleteMultipartUploadResult").empty())
      break;
    auto code = xml_first(r->body, "Code");
    if (attempt < options.max_attempts
        && (code == "InternalError" || code == "SlowDown"
            || code == "ServiceUnavailable")) {
      ++retries;
      std::this_thread::sleep_for(options.retry_delay * attempt);
      continue;
    }
    abort();
    return make_error(errc::io_error, what + ": completing the upload failed ("
                                          + (code.empty() ? "no result" : code)
                                          + ": " + xml_first(r->body, "Message")
                                          + ")");
  }
  ++multipart_uploads;
  return {};
}

bool oss_backend::impl::holds_encoding(const std::string& bucket,
                                       const std::string& key, uint64_t total,
                                       const std::array<std::byte, 8>& trailer,
                                       const std::string& what) {
  if (total < trailer.size())
    return false;
  call c;
  c.method = "GET";
  c.bucket = bucket;
  c.key = key;
  c.headers = {{"range", "bytes=" + std::to_string(total - trailer.size()) + "-"
                             + std::to_string(total - 1)}};
  std::string tail;
  c.sink = [&](uint64_t, const char* data, size_t n) {
    if (tail.size() + n > trailer.size())
      return false;
    tail.append(data, n);
    return true;
  };
  auto r = perform_ok(c, what);
  return r && range_total(r->header("Content-Range")) == total
         && tail.size() == trailer.size()
         && std::memcmp(tail.data(), trailer.data(), trailer.size()) == 0;
}

caf::error oss_backend::impl::put(const uri& id, const value_ptr& x,
                                  const std::string& owner) {
  auto loc = locate(id, true);
  if (!loc)
    return loc.error();
  const std::string& bucket = loc->bucket;
  const std::string& key = loc->key;
  auto what = "'" + id.str() + "'";
  if (!x)
    return make_error(errc::invalid_argument, what + ": null value");
  headers_t meta;
  if (!owner.empty())
    meta.emplace_back(std::string{owner_header},
                      detail::uri_encode(owner, false));
  std::lock_guard guard{stripe(bucket, key)};
  // The old size, for the counters.
  auto old = head(bucket, key, what);
  if (!old && code_of(old.error()) != errc::not_found)
    return old.error();
  int64_t old_size = -1;
  if (old)
    old_size = std::strtoll(old->header("Content-Length").c_str(), nullptr, 10);
  encoding_cursor cursor{*x};
  auto total = cursor.total();
  if (total <= options.part_size) {
    std::vector<std::byte> buf(total);
    cursor.fill(buf.data(), buf.size());
    call c;
    c.method = "PUT";
    c.bucket = bucket;
    c.key = key;
    c.headers = meta;
    c.headers.emplace_back("content-md5", detail::md5_base64(buf));
    c.body = buf;
    if (auto r = perform_ok(c, what); !r)
      return r.error();
  } else if (auto err = upload_multipart(bucket, key, meta, *x, what)) {
    return err;
  }
  if (old_size < 0)
    count(1, static_cast<int64_t>(total));
  else
    count(0, static_cast<int64_t>(total) - old_size);
  return {};
}

namespace {

/// Reads an object by ranges: the first range's bytes from a buffer, then
/// ranges straight into the caller's memory, several at once.
class range_source : public byte_source {
public:
  using fetch_fn
      = std::function<caf::error(uint64_t offset, std::byte* dst, size_t n)>;

  range_source(std::vector<std::byte> first, uint64_t total, fetch_fn fetch,
               uint64_t part_size, size_t in_flight)
      : first_(std::move(first)), total_(total), fetch_(std::move(fetch)),
        part_size_(part_size), in_flight_(std::max<size_t>(in_flight, 1)) {
    // nop
  }

  size_t remaining() const override { return total_ - pos_; }

  bool read(std::byte* dst, size_t n) override {
    if (n > remaining())
      return false;
    // From the first range.
    if (pos_ < first_.size()) {
      auto k = std::min<uint64_t>(n, first_.size() - pos_);
      std::memcpy(dst, first_.data() + pos_, k);
      pos_ += k;
      dst += k;
      n -= k;
      if (pos_ == first_.size())
        std::vector<std::byte>{}.swap(first_);
    }
    // Small reads (headers, trailers) from a buffered range.
    while (n > 0 && n < part_size_ / 4) {
      if (pos_ < buf_start_ || pos_ >= buf_start_ + buf_.size()) {
        auto len = std::min<uint64_t>(part_size_, total_ - pos_);
        buf_.resize(len);
        buf_start_ = pos_;
        if (auto err = fetch_(pos_, buf_.data(), len)) {
          error_ = std::move(err);
          return false;
        }
      }
      auto k = std::min<uint64_t>(n, buf_start_ + buf_.size() - pos_);
      std::memcpy(dst, buf_.data() + (pos_ - buf_start_), k);
      pos_ += k;
      dst += k;
      n -= k;
    }
    if (n == 0)
      return true;
    // Large reads: ranges of part_size straight into dst, in parallel.
    auto ranges = (n + part_size_ - 1) / part_size_;
    std::atomic<uint64_t> next{0};
    std::mutex mtx;
    caf::error failed;
    auto start = pos_;
    auto work = [&] {
      for (;;) {
        auto i = next.fetch_add(1);
        if (i >= ranges)
          return;
        {
          std::lock_guard guard{mtx};
          if (failed)
            return;
        }
        auto off = i * part_size_;
        auto len = std::min<uint64_t>(part_size_, n - off);
        if (auto err = fetch_(start + off, dst + off, len)) {
          std::lock_guard guard{mtx};
          if (!failed)
            failed = std::move(err);
          return;
        }
      }
    };
    std::vector<std::thread> workers;
    auto threads = std::min<uint64_t>(in_flight_, ranges);
    for (uint64_t t = 1; t < threads; ++t)
      workers.emplace_back(work);
    work();
    for (auto& t : workers)
      t.join();
    if (failed) {
      error_ = std::move(failed);
      return false;
    }
    pos_ += n;
    return true;
  }

  /// Why the last read failed (empty: truncated or not fetched).
  const caf::error& error() const noexcept { return error_; }

private:
  std::vector<std::byte> first_;
  uint64_t total_;
  fetch_fn fetch_;
  uint64_t part_size_;
  size_t in_flight_;
  uint64_t pos_ = 0;
  std::vector<std::byte> buf_;
  uint64_t buf_start_ = 0;
  caf::error error_;
};

} // namespace

caf::expected<value_ptr> oss_backend::impl::get(const uri& id) {
  auto loc = locate(id, false);
  if (!loc)
    return loc.error();
  // Named references: clang 14 (the fuzz build) cannot capture a
  // structured binding in a lambda.
  const std::string& bucket = loc->bucket;
  const std::string& key = loc->key;
  auto what = "'" + id.str() + "'";
  // An object replaced between two ranges fails the later one (If-Match);
  // then it is read again from the start, a few times.
  for (int attempt = 1;; ++attempt) {
    std::vector<std::byte> first;
    call c;
    c.method = "GET";
    c.bucket = bucket;
    c.key = key;
    c.headers = {{"range", "bytes=0-" + std::to_string(options.part_size - 1)}};
    bool too_long = false;
    c.sink = [&](uint64_t offset, const char* data, size_t n) {
      if (offset + n > options.part_size) {
        too_long = true; // the server ignored the range
        return false;
      }
      first.resize(offset + n);
      std::memcpy(first.data() + offset, data, n);
      return true;
    };
    auto r = perform(c, what);
    if (!r) {
      if (too_long)
        return make_error(errc::io_error,
                          what + ": the server ignored the Range header");
      return r.error();
    }
    uint64_t total = first.size();
    if (r->status == 416) {
      total = 0; // an empty object: no range is satisfiable
    } else if (!ok(*r)) {
      return describe_reply(*r, what, bucket);
    } else if (r->status == 206) {
      auto n = range_total(r->header("Content-Range"));
      if (!n)
        return make_error(errc::io_error,
                          what
                              + ": a ranged read without a valid "
                                "Content-Range");
      total = *n;
    }
    if (first.size() > total)
      return make_error(errc::corrupt_data, what + ": more bytes than stored");
    auto etag = r->header("ETag");
    bool changed = false;
    auto fetch
        = [&, etag](uint64_t offset, std::byte* dst, size_t n) -> caf::error {
      call rc;
      rc.method = "GET";
      rc.bucket = bucket;
      rc.key = key;
      rc.headers = {{"range", "bytes=" + std::to_string(offset) + "-"
                                  + std::to_string(offset + n - 1)}};
      if (!etag.empty())
        rc.headers.emplace_back("if-match", etag);
      uint64_t got = 0;
      rc.sink = [&](uint64_t at, const char* data, size_t k) {
        if (at + k > n)
          return false;
        std::memcpy(dst + at, data, k);
        got = at + k;
        return true;
      };
      auto rr = perform(rc, what);
      if (!rr)
        return std::move(rr.error());
      if (rr->status == 412) {
        changed = true;
        return make_error(errc::io_error, what + ": replaced while read");
      }
      if (!ok(*rr))
        return describe_reply(*rr, what, bucket);
      if (got != n)
        return make_error(errc::corrupt_data,
                          what + ": a range of " + std::to_string(n)
                              + " bytes came back with " + std::to_string(got));
      return {};
    };
    range_source src{std::move(first), total, fetch, options.part_size,
                     options.parts_in_flight};
    auto result = decode(src, id.str());
    if (result)
      return result;
    if (changed && attempt < 3)
      continue;
    if (src.error())
      return src.error();
    return result;
  }
}

caf::expected<std::vector<object_info>>
oss_backend::impl::list_place(const place& p) {
  std::vector<object_info> result;
  std::string token;
  for (;;) {
    call c;
    c.method = "GET";
    c.bucket = p.bucket;
    c.query = {{"list-type", "2"}};
    if (!p.prefix.empty())
      c.query.emplace_back("prefix", p.prefix);
    if (!token.empty())
      c.query.emplace_back("continuation-token", token);
    std::string body;
    c.sink = [&](uint64_t, const char* data, size_t n) {
      if (body.size() + n > max_xml_body)
        return false;
      body.append(data, n);
      return true;
    };
    auto what = "listing oss://" + p.bucket + "/" + p.prefix;
    auto r = perform_ok(c, what);
    if (!r)
      return r.error();
    for (auto entry : xml_all(body, "Contents")) {
      auto key = xml_first(entry, "Key");
      auto size = std::strtoull(xml_first(entry, "Size").c_str(), nullptr, 10);
      auto id = uri::parse("oss://" + p.bucket + "/" + key);
      if (!id)
        continue; // not nameable as a URI (e.g. a "dir/" marker)
      result.push_back(object_info{std::move(*id), size, false});
    }
    if (xml_first(body, "IsTruncated") != "true")
      break;
    token = xml_first(body, "NextContinuationToken");
    if (token.empty())
      break;
  }
  return result;
}

oss_backend::oss_backend(std::unique_ptr<impl> x) : impl_(std::move(x)) {
  // nop
}

oss_backend::~oss_backend() = default;

caf::expected<std::pair<std::string, std::string>>
oss_backend::split(const uri& id) {
  if (id.scheme() != scheme::oss)
    return make_error(errc::invalid_uri,
                      "'" + id.str() + "': not an oss:// URI");
  auto key = id.key();
  auto slash = key.find('/');
  return std::make_pair(std::string{key.substr(0, slash)},
                        std::string{key.substr(slash + 1)});
}

caf::expected<std::unique_ptr<oss_backend>>
oss_backend::make(oss_backend_options options) {
  auto bad = [](const std::string& option, const std::string& why) {
    return make_error(errc::invalid_argument,
                      "objstore.oss-" + option + ": " + why);
  };
  auto x = std::make_unique<impl>();
  auto& ep = options.endpoint;
  auto sep = ep.find("://");
  if (sep == std::string::npos
      || (ep.substr(0, sep) != "http" && ep.substr(0, sep) != "https"))
    return bad("endpoint", "'" + ep
                               + "' is not http://host[:port] or "
                                 "https://host[:port]");
  auto host = ep.substr(sep + 3);
  while (!host.empty() && host.back() == '/')
    host.pop_back();
  if (host.empty() || host.find_first_of("/?#@ ") != std::string::npos)
    return bad("endpoint", "'" + ep
                               + "' is not http://host[:port] or "
                                 "https://host[:port]");
  x->scheme_host_port = ep.substr(0, sep + 3) + host;
  x->host = host;
  if (options.region.empty())
    return bad("region", "must not be empty");
  if (options.part_size < (uint64_t{5} << 20)
      || options.part_size > (uint64_t{5} << 30))
    return bad("part-size", std::to_string(options.part_size)
                                + " is outside 5 MiB .. 5 GiB");
  if (options.parts_in_flight == 0 || options.parts_in_flight > 64)
    return bad("parts-in-flight", "must be 1 .. 64");
  if (options.max_attempts < 1)
    return bad("retries", "must be at least 1");
  if (options.timeout <= 0ms)
    return bad("timeout", "must be positive");
  if (options.credentials.access_key_id.empty()
      || options.credentials.secret_access_key.empty())
    return bad("credentials-file", "no access key id or secret key");
  auto add = [&](const std::string& text, bool read_only) -> caf::error {
    auto slash = text.find('/');
    place p;
    p.bucket = text.substr(0, slash);
    p.prefix
        = slash == std::string::npos ? std::string{} : text.substr(slash + 1);
    p.read_only = read_only;
    auto probe = uri::parse("oss://" + p.bucket + "/probe");
    if (!probe)
      return bad(read_only ? "shared-buckets" : "buckets",
                 "'" + text + "': " + message_of(probe.error()));
    x->places.push_back(std::move(p));
    return {};
  };
  for (auto& b : options.buckets)
    if (auto err = add(b, false))
      return err;
  for (auto& b : options.shared_buckets)
    if (auto err = add(b, true))
      return err;
  if (x->places.empty())
    return bad("buckets", "no bucket configured");
  // Read-only places first: a key in one is read-only even where a
  // writable place holds it too.
  std::stable_sort(x->places.begin(), x->places.end(),
                   [](const place& a, const place& b) {
                     return a.read_only && !b.read_only;
                   });
  x->creds.access_key_id = options.credentials.access_key_id;
  x->creds.secret_access_key = options.credentials.secret_access_key;
  x->creds.session_token = options.credentials.session_token;
  x->options = std::move(options);
  // Count what the places hold (and fail now on refused credentials, a
  // missing bucket or an unreachable server).
  std::set<uri> seen;
  for (auto& p : x->places) {
    auto xs = x->list_place(p);
    if (!xs)
      return make_error(code_of(xs.error()),
                        "objstore.oss-buckets: " + message_of(xs.error()));
    for (auto& info : *xs)
      if (seen.insert(info.id).second) {
        ++x->objects;
        x->bytes += info.size_bytes;
      }
  }
  return std::unique_ptr<oss_backend>{new oss_backend(std::move(x))};
}

caf::error oss_backend::put(const uri& id, const value_ptr& x) {
  return impl_->put(id, x, {});
}

caf::error oss_backend::put_owned(const uri& id, const value_ptr& x,
                                  const std::string& owner) {
  return impl_->put(id, x, owner);
}

caf::expected<std::string> oss_backend::owner(const uri& id) const {
  auto loc = impl_->locate(id, false);
  if (!loc)
    return loc.error();
  const std::string& bucket = loc->bucket;
  const std::string& key = loc->key;
  if (loc->where->read_only)
    return std::string{};
  auto r = impl_->head(bucket, key, "'" + id.str() + "'");
  if (!r)
    return r.error();
  auto who = r->header(std::string{owner_header});
  if (who.empty())
    return std::string{"operator"}; // placed by another tool
  return percent_decode(who);
}

bool oss_backend::read_only(const uri& id) const {
  auto loc = impl_->locate(id, false);
  return loc && loc->where->read_only;
}

caf::expected<value_ptr> oss_backend::get(const uri& id) {
  return impl_->get(id);
}

caf::error oss_backend::erase(const uri& id) {
  auto loc = impl_->locate(id, true);
  if (!loc)
    return loc.error();
  const std::string& bucket = loc->bucket;
  const std::string& key = loc->key;
  auto what = "'" + id.str() + "'";
  std::lock_guard guard{impl_->stripe(bucket, key)};
  // S3 deletes a missing key without complaint: look first.
  auto old = impl_->head(bucket, key, what);
  if (!old)
    return old.error();
  call c;
  c.method = "DELETE";
  c.bucket = bucket;
  c.key = key;
  if (auto r = impl_->perform_ok(c, what); !r)
    return r.error();
  auto size = std::strtoll(old->header("Content-Length").c_str(), nullptr, 10);
  impl_->count(-1, -size);
  return {};
}

caf::expected<bool> oss_backend::exists(const uri& id) {
  auto loc = impl_->locate(id, false);
  if (!loc)
    return loc.error();
  const std::string& bucket = loc->bucket;
  const std::string& key = loc->key;
  auto r = impl_->head(bucket, key, "'" + id.str() + "'");
  if (r)
    return true;
  if (code_of(r.error()) == errc::not_found)
    return false;
  return r.error();
}

caf::expected<std::vector<object_info>> oss_backend::list() {
  std::vector<object_info> result;
  std::set<uri> seen;
  for (auto& p : impl_->places) {
    auto xs = impl_->list_place(p);
    if (!xs)
      return xs.error();
    for (auto& info : *xs)
      if (seen.insert(info.id).second)
        result.push_back(std::move(info));
  }
  return result;
}

backend_stats oss_backend::stats() {
  std::lock_guard guard{impl_->counters_mtx};
  return {impl_->objects, impl_->bytes};
}

oss_backend::counters oss_backend::activity() const {
  return {impl_->multipart_uploads.load(), impl_->multipart_aborts.load(),
          impl_->retries.load()};
}

} // namespace objstore
