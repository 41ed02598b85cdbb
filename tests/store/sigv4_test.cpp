// AWS Signature Version 4 (store/detail/sigv4.hpp): AWS's published S3
// examples, and a cross-check with botocore, an independent implementation.

#include "store/detail/sigv4.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "store/test_support.hpp"

namespace sigv4_test_file {
namespace {

using namespace objstore;
using namespace objstore::detail;

// The example credentials, date and host of AWS's S3 documentation
// ("Signature Calculations for the Authorization Header").
const sigv4_credentials aws_example{
    "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
constexpr auto aws_date = "20130524T000000Z";
constexpr auto aws_host = "examplebucket.s3.amazonaws.com";
constexpr auto empty_sha256
    = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

sigv4_request doc_request(std::string method, std::string path,
                          std::vector<std::pair<std::string, std::string>> q,
                          std::vector<std::pair<std::string, std::string>> h,
                          std::string payload) {
  sigv4_request result;
  result.method = std::move(method);
  result.encoded_path = std::move(path);
  result.query = std::move(q);
  result.headers = std::move(h);
  result.headers.emplace_back("Host", aws_host);
  result.headers.emplace_back("x-amz-date", aws_date);
  result.headers.emplace_back("x-amz-content-sha256", payload);
  result.payload_hash = std::move(payload);
  return result;
}

TEST(sigv4, aws_get_object_example) {
  auto req = doc_request("GET", "/test.txt", {}, {{"Range", "bytes=0-9"}},
                         empty_sha256);
  EXPECT_EQ(sigv4_canonical_request(req),
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\n"
            "range:bytes=0-9\nx-amz-content-sha256:"
                + std::string{empty_sha256}
                + "\nx-amz-date:20130524T000000Z\n\n"
                  "host;range;x-amz-content-sha256;x-amz-date\n"
                + empty_sha256);
  EXPECT_EQ(sha256_hex(sigv4_canonical_request(req)),
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  EXPECT_EQ(sigv4_authorization(req, aws_example, "us-east-1", "s3", aws_date),
            "AWS4-HMAC-SHA256 "
            "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
            "aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature="
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(sigv4, aws_put_object_example) {
  auto payload = sha256_hex("Welcome to Amazon S3.");
  EXPECT_EQ(payload,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  auto path = uri_encode("/test$file.text", true);
  EXPECT_EQ(path, "/test%24file.text");
  auto req = doc_request("PUT", path, {},
                         {{"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                          {"x-amz-storage-class", "REDUCED_REDUNDANCY"}},
                         payload);
  EXPECT_EQ(sha256_hex(sigv4_canonical_request(req)),
            "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d");
  EXPECT_EQ(sigv4_signature(req, aws_example, "us-east-1", "s3", aws_date),
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST(sigv4, aws_get_bucket_lifecycle_example) {
  auto req = doc_request("GET", "/", {{"lifecycle", ""}}, {}, empty_sha256);
  EXPECT_EQ(sigv4_signature(req, aws_example, "us-east-1", "s3", aws_date),
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST(sigv4, aws_list_objects_example_with_query_out_of_order) {
  auto req = doc_request("GET", "/", {{"prefix", "J"}, {"max-keys", "2"}}, {},
                         empty_sha256);
  EXPECT_EQ(sigv4_canonical_query(req.query), "max-keys=2&prefix=J");
  EXPECT_EQ(sigv4_signature(req, aws_example, "us-east-1", "s3", aws_date),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(sigv4, uri_encoding_keeps_only_unreserved_bytes) {
  EXPECT_EQ(uri_encode("a b+c/ü~x_y-z.(1)%", true),
            "a%20b%2Bc/%C3%BC~x_y-z.%281%29%25");
  EXPECT_EQ(uri_encode("a/b", false), "a%2Fb");
  EXPECT_EQ(uri_encode("", true), "");
}

TEST(sigv4, header_values_are_trimmed_and_names_lowered) {
  auto a = doc_request("GET", "/k", {}, {{"X-Amz-Meta-A", "  two   words "}},
                       empty_sha256);
  auto b = doc_request("GET", "/k", {}, {{"x-amz-meta-a", "two words"}},
                       empty_sha256);
  EXPECT_EQ(sigv4_canonical_request(a), sigv4_canonical_request(b));
  EXPECT_EQ(sigv4_signed_headers(a),
            "host;x-amz-content-sha256;x-amz-date;x-amz-meta-a");
}

TEST(sigv4, md5_base64_is_the_content_md5_header) {
  auto text = std::string{"hello"};
  EXPECT_EQ(md5_base64(std::as_bytes(std::span{text.data(), text.size()})),
            "XUFAKrxLKna5cZ2REBfFkg==");
}

TEST(sigv4, amz_date_has_the_basic_iso_format) {
  auto now = amz_date_now();
  ASSERT_EQ(now.size(), 16u);
  EXPECT_EQ(now[8], 'T');
  EXPECT_EQ(now.back(), 'Z');
}

/// One request for the cross-check.
struct probe {
  std::string method;
  std::string key;
  std::vector<std::pair<std::string, std::string>> query;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string payload;
};

TEST(sigv4, signatures_agree_with_botocore) {
  const std::string host = "127.0.0.1:9000";
  const std::string date = "20261201T101500Z";
  const sigv4_credentials creds{"objstore-test", "s3cr3t/+=key", ""};
  auto body = std::string(1000, 'x');
  std::vector<probe> probes{
      {"GET", "bucket/plain.bin", {}, {}, empty_sha256},
      {"PUT",
       "bucket/dir a/ü+(1)%~x_y-z.bin",
       {},
       {{"content-md5", "XUFAKrxLKna5cZ2REBfFkg=="},
        {"x-amz-meta-objstore-owner", "alice"}},
       sha256_hex(body)},
      {"POST", "bucket/big", {{"uploads", ""}}, {}, empty_sha256},
      {"PUT",
       "bucket/big",
       {{"partNumber", "3"}, {"uploadId", "a/b+c=="}},
       {},
       sha256_hex(body)},
      {"GET",
       "bucket",
       {{"list-type", "2"},
        {"prefix", "dir a/ü"},
        {"continuation-token", "1/2+3=="}},
       {},
       empty_sha256},
      {"HEAD", "bucket/*?#[]@!$&'", {}, {}, empty_sha256},
  };
  std::string input;
  std::vector<sigv4_request> ours;
  for (auto& p : probes) {
    std::string query;
    for (auto& [k, v] : p.query)
      query += (query.empty() ? "" : "\x1f") + k + "=" + v;
    std::string headers;
    for (auto& [k, v] : p.headers)
      headers += (headers.empty() ? "" : "\x1f") + k + ":" + v;
    input += p.method + "\t" + host + "\t" + p.key + "\t" + query + "\t"
             + headers + "\t" + p.payload + "\t" + date + "\t"
             + creds.access_key_id + "\t" + creds.secret_access_key
             + "\tus-east-1\n";
    sigv4_request req;
    req.method = p.method;
    req.encoded_path = "/" + uri_encode(p.key, true);
    req.query = p.query;
    req.headers = p.headers;
    req.headers.emplace_back("host", host);
    req.headers.emplace_back("x-amz-date", date);
    req.headers.emplace_back("x-amz-content-sha256", p.payload);
    req.payload_hash = p.payload;
    ours.push_back(std::move(req));
  }
  test::temp_dir dir;
  {
    std::ofstream out{dir / "requests.tsv"};
    out << input;
  }
  auto command = "/usr/bin/python3 " + std::string{OBJSTORE_SOURCE_DIR}
                 + "/tests/s3/botocore_sign.py < "
                 + (dir / "requests.tsv").string() + " 2>&1";
  auto pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buf[4096];
  while (auto n = std::fread(buf, 1, sizeof buf, pipe))
    output.append(buf, n);
  ASSERT_EQ(::pclose(pipe), 0) << "botocore (python3-botocore) failed:\n"
                               << output;
  std::istringstream lines{output};
  std::string line;
  for (size_t i = 0; i < ours.size(); ++i) {
    ASSERT_TRUE(std::getline(lines, line)) << output;
    auto tab = line.find('\t');
    ASSERT_NE(tab, std::string::npos) << line;
    SCOPED_TRACE(probes[i].method + " " + probes[i].key);
    EXPECT_EQ(ours[i].encoded_path, line.substr(0, tab));
    EXPECT_EQ(sigv4_signature(ours[i], creds, "us-east-1", "s3", date),
              line.substr(tab + 1));
  }
}

} // namespace
} // namespace sigv4_test_file
