#pragma once

// AWS Signature Version 4 for the S3 REST API (oss:// backend): the
// canonical request, the string to sign and the Authorization header, as
// AWS documents them ("Signature Calculations for the Authorization Header:
// Transferring Payload in a Single Chunk"). Pure functions, no IO; checked
// against AWS's published examples and against botocore in the tests.

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace objstore::detail {

/// The key pair (and optional session token) requests are signed with.
struct sigv4_credentials {
  std::string access_key_id;
  std::string secret_access_key;
  /// Temporary credentials (STS): sent as `x-amz-security-token`.
  std::string session_token;
};

/// One request to sign. Header names are matched case-insensitively; every
/// header listed here is signed (include `host`, `x-amz-date` and
/// `x-amz-content-sha256`).
struct sigv4_request {
  std::string method;
  /// The path as sent on the wire, already percent-encoded once
  /// (`uri_encode(path, true)`), starting with '/'.
  std::string encoded_path;
  /// Query parameters, not encoded (encoded and sorted here).
  std::vector<std::pair<std::string, std::string>> query;
  std::vector<std::pair<std::string, std::string>> headers;
  /// Hex SHA-256 of the body, or "UNSIGNED-PAYLOAD".
  std::string payload_hash;
};

/// Percent-encodes every byte but `A-Z a-z 0-9 - . _ ~` (and '/' when
/// `keep_slash`), with upper-case hex digits: SigV4's UriEncode.
std::string uri_encode(std::string_view text, bool keep_slash);

/// Lower-case hex SHA-256 of `bytes`.
std::string sha256_hex(std::span<const std::byte> bytes);
std::string sha256_hex(std::string_view text);

/// Base64 MD5 of `bytes` (the Content-MD5 header).
std::string md5_base64(std::span<const std::byte> bytes);

/// The query string as canonical requests and the wire carry it:
/// `uri_encode`d names and values joined by '=' and '&', sorted by name.
std::string sigv4_canonical_query(
    const std::vector<std::pair<std::string, std::string>>& query);

/// The canonical request: method, path, sorted encoded query, sorted
/// lower-case headers with trimmed values, the signed header list and the
/// payload hash, joined by newlines.
std::string sigv4_canonical_request(const sigv4_request& req);

/// "host;x-amz-content-sha256;x-amz-date": the sorted lower-case names.
std::string sigv4_signed_headers(const sigv4_request& req);

/// The value of the Authorization header. `amz_date` is the request's
/// `x-amz-date` (YYYYMMDD'T'HHMMSS'Z').
std::string sigv4_authorization(const sigv4_request& req,
                                const sigv4_credentials& creds,
                                std::string_view region,
                                std::string_view service,
                                std::string_view amz_date);

/// Only the signature (64 hex digits) of `sigv4_authorization`.
std::string sigv4_signature(const sigv4_request& req,
                            const sigv4_credentials& creds,
                            std::string_view region, std::string_view service,
                            std::string_view amz_date);

/// The current UTC time as `x-amz-date` (YYYYMMDD'T'HHMMSS'Z').
std::string amz_date_now();

} // namespace objstore::detail
