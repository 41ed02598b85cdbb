#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "store/backend.hpp"

namespace objstore {

/// The key pair requests to an S3-compatible service are signed with
/// (AWS Signature Version 4). Never logged, never in errors or dumps.
struct oss_credentials {
  std::string access_key_id;
  std::string secret_access_key;
  /// Temporary credentials (STS): sent as `x-amz-security-token`.
  std::string session_token;
};

/// Reads credentials from `file` (AWS shared-credentials format: a
/// `[profile]` section with `aws_access_key_id`, `aws_secret_access_key`
/// and optionally `aws_session_token`; the file must be readable by its
/// owner only), or, when `file` is empty, from the environment variables
/// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN. Errors:
/// `invalid_argument` naming the file, profile or variable (never a
/// secret).
caf::expected<oss_credentials> load_oss_credentials(const std::string& file,
                                                    const std::string& profile
                                                    = "default");

/// Options of the `oss://` backend.
struct oss_backend_options {
  /// Where the service listens: `http://host:port` or `https://host[:port]`
  /// (e.g. `https://s3.eu-central-1.amazonaws.com`,
  /// `https://oss-cn-hangzhou.aliyuncs.com`, `http://127.0.0.1:9000`).
  std::string endpoint;

  /// The region requests are signed for.
  std::string region = "us-east-1";

  /// Virtual-hosted addressing (`bucket.host/key`); off: path style
  /// (`host/bucket/key`, what MinIO, Ceph and test servers expect).
  bool virtual_hosted = false;

  /// Where this node's objects may live, each `bucket` or `bucket/prefix`
  /// (the oss:// counterpart of the fs:// roots). A URI elsewhere is
  /// `permission_denied`. `make` checks each and counts what it holds.
  std::vector<std::string> buckets;

  /// Like `buckets`, but read-only: every session reads, no one writes
  /// (shared datasets).
  std::vector<std::string> shared_buckets;

  oss_credentials credentials;

  /// Objects whose encoding exceeds this go up as multipart uploads in
  /// parts of this size; downloads fetch ranges of this size. 5 MiB ..
  /// 5 GiB (S3's part limits).
  uint64_t part_size = uint64_t{8} << 20;

  /// Parts (or ranges) moving at once per object: memory is bounded by
  /// `parts_in_flight` × `part_size` per call.
  size_t parts_in_flight = 4;

  /// Attempts per request on 5xx, throttling (429, SlowDown), request
  /// timeouts and connection errors, with exponential backoff from
  /// `retry_delay` (jittered, at most 2 s between attempts).
  int max_attempts = 5;
  std::chrono::milliseconds retry_delay{100};

  /// Deadline of one request with its retries (objstore.timeout): an
  /// unreachable server is `timeout` or `io_error` within it.
  std::chrono::milliseconds timeout{30000};

  /// https: CA bundle to verify the server with (empty: the system's).
  std::string ca_file;

  static oss_backend_options defaults() { return {}; }
};

/// Serves `oss://<bucket>/<key>` from an S3-compatible object store (AWS
/// S3, Alibaba OSS's S3 endpoint, MinIO, Ceph RGW) over its REST API,
/// signed with AWS Signature Version 4.
///
/// Objects hold the same encoding as fs:// files (store/codec.hpp), whose
/// XXH3 trailer is checked on every read. Uploads carry Content-MD5 and a
/// signed SHA-256 of the payload; an encoding larger than `part_size` goes
/// up as a multipart upload with at most `parts_in_flight` parts at once,
/// and a failed one is aborted: nothing partial is ever visible under the
/// key (a single PUT and a completed multipart upload publish atomically).
/// Reads fetch ranges of `part_size` straight into the value's buffers,
/// `parts_in_flight` at once, each pinned to the first range's ETag
/// (`If-Match`): an object replaced while being read is read again, never
/// mixed.
///
/// Owners (DESIGN.md §12): a put records its writer in the user metadata
/// `x-amz-meta-objstore-owner`, published with the object; objects without
/// it are owned by "operator" (see owned_backend).
///
/// Errors: a missing object or bucket is `not_found`; refused credentials
/// or a denied bucket `permission_denied` naming the bucket; a URI outside
/// `buckets` `permission_denied`; bad bucket or key syntax `invalid_uri`
/// (uri::parse already refuses most); an unreachable or failing server
/// `io_error` or `timeout`, after the retries, within `timeout` per
/// request. No message carries a credential.
///
/// `stats` counts what the startup listing found plus this backend's puts
/// and erases since (like file_backend: objects others add show in `list`
/// at once, in `stats` after a restart).
///
/// Thread-safe. Blocking: every call does network IO (never call it on a
/// thread that delivers control messages).
class oss_backend : public owned_backend {
public:
  /// Checks the options, then lists each bucket (prefix) once: refused
  /// credentials, a missing bucket or an unreachable server fail here,
  /// naming the option and bucket.
  static caf::expected<std::unique_ptr<oss_backend>>
  make(oss_backend_options options);

  ~oss_backend() override;

  objstore::scheme scheme() const noexcept override { return scheme::oss; }
  caf::error put(const uri& id, const value_ptr& x) override;
  caf::error put_owned(const uri& id, const value_ptr& x,
                       const std::string& owner) override;
  caf::expected<std::string> owner(const uri& id) const override;
  bool read_only(const uri& id) const override;
  caf::expected<value_ptr> get(const uri& id) override;
  caf::error erase(const uri& id) override;
  caf::expected<bool> exists(const uri& id) override;
  caf::expected<std::vector<object_info>> list() override;
  backend_stats stats() override;

  /// Multipart uploads completed and aborted, requests retried (tests,
  /// stats).
  struct counters {
    uint64_t multipart_uploads = 0;
    uint64_t multipart_aborts = 0;
    uint64_t retries = 0;
  };
  counters activity() const;

  /// Splits `oss://bucket/key`. Errors: `invalid_uri` for another scheme.
  static caf::expected<std::pair<std::string, std::string>>
  split(const uri& id);

  struct impl;

private:
  explicit oss_backend(std::unique_ptr<impl> x);

  std::unique_ptr<impl> impl_;
};

} // namespace objstore
