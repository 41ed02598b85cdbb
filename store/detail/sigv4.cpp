#include "store/detail/sigv4.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <ctime>

#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace objstore::detail {

namespace {

std::string to_hex(const unsigned char* bytes, size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string result(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    result[2 * i] = digits[bytes[i] >> 4];
    result[2 * i + 1] = digits[bytes[i] & 0xf];
  }
  return result;
}

using digest = std::array<unsigned char, 32>;

digest hmac(std::string_view key, std::string_view data) {
  digest result{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(),
       result.data(), &len);
  return result;
}

std::string_view as_view(const digest& x) {
  return {reinterpret_cast<const char*>(x.data()), x.size()};
}

std::string lower(std::string_view x) {
  std::string result{x};
  for (auto& c : result)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return result;
}

/// Trims the value and folds inner runs of spaces into one (SigV4).
std::string trim_value(std::string_view x) {
  std::string result;
  bool space = false;
  for (char c : x) {
    if (c == ' ' || c == '\t') {
      space = !result.empty();
      continue;
    }
    if (space)
      result += ' ';
    space = false;
    result += c;
  }
  return result;
}

/// Lower-case names with trimmed values, sorted by name.
std::vector<std::pair<std::string, std::string>>
canonical_headers(const sigv4_request& req) {
  std::vector<std::pair<std::string, std::string>> result;
  for (auto& [name, val] : req.headers)
    result.emplace_back(lower(name), trim_value(val));
  std::stable_sort(result.begin(), result.end(),
                   [](auto& x, auto& y) { return x.first < y.first; });
  return result;
}

std::string scope_of(std::string_view amz_date, std::string_view region,
                     std::string_view service) {
  return std::string{amz_date.substr(0, 8)} + "/" + std::string{region} + "/"
         + std::string{service} + "/aws4_request";
}

} // namespace

std::string uri_encode(std::string_view text, bool keep_slash) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string result;
  result.reserve(text.size());
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~'
        || (keep_slash && c == '/')) {
      result += ch;
    } else {
      result += '%';
      result += digits[c >> 4];
      result += digits[c & 0xf];
    }
  }
  return result;
}

std::string sha256_hex(std::span<const std::byte> bytes) {
  digest out{};
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), out.data(), &len, EVP_sha256(),
             nullptr);
  return to_hex(out.data(), out.size());
}

std::string sha256_hex(std::string_view text) {
  return sha256_hex(std::as_bytes(std::span{text.data(), text.size()}));
}

std::string md5_base64(std::span<const std::byte> bytes) {
  std::array<unsigned char, 16> out{};
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), out.data(), &len, EVP_md5(), nullptr);
  std::array<unsigned char, 32> b64{};
  auto n = EVP_EncodeBlock(b64.data(), out.data(), 16);
  return std::string{reinterpret_cast<const char*>(b64.data()),
                     static_cast<size_t>(n)};
}

std::string sigv4_canonical_query(
    const std::vector<std::pair<std::string, std::string>>& query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  for (auto& [name, val] : query)
    encoded.emplace_back(uri_encode(name, false), uri_encode(val, false));
  std::sort(encoded.begin(), encoded.end());
  std::string result;
  for (auto& [name, val] : encoded) {
    if (!result.empty())
      result += '&';
    result += name;
    result += '=';
    result += val;
  }
  return result;
}

std::string sigv4_signed_headers(const sigv4_request& req) {
  std::string result;
  for (auto& [name, val] : canonical_headers(req)) {
    if (!result.empty())
      result += ';';
    result += name;
  }
  return result;
}

std::string sigv4_canonical_request(const sigv4_request& req) {
  std::string result = req.method + "\n" + req.encoded_path + "\n"
                       + sigv4_canonical_query(req.query) + "\n";
  for (auto& [name, val] : canonical_headers(req))
    result += name + ":" + val + "\n";
  result += "\n" + sigv4_signed_headers(req) + "\n" + req.payload_hash;
  return result;
}

std::string sigv4_signature(const sigv4_request& req,
                            const sigv4_credentials& creds,
                            std::string_view region, std::string_view service,
                            std::string_view amz_date) {
  auto to_sign = "AWS4-HMAC-SHA256\n" + std::string{amz_date} + "\n"
                 + scope_of(amz_date, region, service) + "\n"
                 + sha256_hex(sigv4_canonical_request(req));
  auto key = hmac("AWS4" + creds.secret_access_key, amz_date.substr(0, 8));
  key = hmac(as_view(key), region);
  key = hmac(as_view(key), service);
  key = hmac(as_view(key), "aws4_request");
  auto sig = hmac(as_view(key), to_sign);
  return to_hex(sig.data(), sig.size());
}

std::string sigv4_authorization(const sigv4_request& req,
                                const sigv4_credentials& creds,
                                std::string_view region,
                                std::string_view service,
                                std::string_view amz_date) {
  return "AWS4-HMAC-SHA256 Credential=" + creds.access_key_id + "/"
         + scope_of(amz_date, region, service)
         + ", SignedHeaders=" + sigv4_signed_headers(req) + ", Signature="
         + sigv4_signature(req, creds, region, service, amz_date);
}

std::string amz_date_now() {
  auto now = std::time(nullptr);
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  char text[17];
  std::strftime(text, sizeof text, "%Y%m%dT%H%M%SZ", &utc);
  return text;
}

} // namespace objstore::detail
