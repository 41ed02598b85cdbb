// Mutual TLS between nodes: certificates from the configured CA only.

#include "actors/dataplane/tls.hpp"

#include <gtest/gtest.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>

#include <cstdlib>
#include <filesystem>
#include <future>

#include "actors/dataplane/data_plane.hpp"
#include "actors/testing/local_cluster.hpp"
#include "store/error.hpp"

using namespace objstore;
using namespace std::chrono_literals;

namespace {

/// A throwaway PKI made by .ci/make-test-certs, shared by the tests.
class pki : public ::testing::Environment {
public:
  static inline std::filesystem::path dir;

  void SetUp() override {
    char templ[] = "/tmp/objstore-pki-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir = templ;
    auto cmd = std::string{OBJSTORE_SOURCE_DIR} + "/.ci/make-test-certs "
               + dir.string();
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }

  void TearDown() override { std::filesystem::remove_all(dir); }
};

auto* const env = ::testing::AddGlobalTestEnvironment(new pki);

std::string file(const std::string& name) {
  return (pki::dir / name).string();
}

tls_options node_tls(const std::string& name = "node0") {
  return {file(name + ".pem"), file(name + ".key"), file("ca.pem"), {}};
}

local_cluster_options tls_cluster() {
  local_cluster_options opts;
  opts.workers = 2;
  opts.tls = node_tls();
  opts.driver.timeout = 5s;
  return opts;
}

/// Tries to connect a driver from a fresh actor system configured with
/// `client` (plain when empty); bounded so a hanging handshake fails.
caf::error try_connect(const cluster_spec& spec, const tls_options& client) {
  caf::actor_system_config cfg;
  configure_system(cfg, 2);
  apply_tls(cfg, client);
  caf::actor_system sys{cfg};
  auto attempt = std::async(std::launch::async, [&] {
    auto d = driver::connect(sys, spec);
    if (!d)
      return d.error();
    auto x = (*d)->put(0, make_value(blob::copy_of("secret")));
    return x ? caf::error{} : x.error();
  });
  if (attempt.wait_for(20s) != std::future_status::ready) {
    ADD_FAILURE() << "connect hung";
    std::abort(); // a hung connect would block the test binary forever
  }
  return attempt.get();
}

} // namespace

TEST(tls, nodes_with_certificates_from_the_ca_work) {
  auto c = local_cluster::start(tls_cluster());
  ASSERT_TRUE(c) << describe(c.error());
  auto d = (*c)->connect();
  ASSERT_TRUE(d) << describe(d.error());
  auto x = (*d)->put(1, make_value(blob::copy_of("hello over TLS")));
  ASSERT_TRUE(x) << describe(x.error());
  auto v = (*d)->fetch(*x, 1);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ((*v)->as_bytes().view(), "hello over TLS");
  EXPECT_FALSE(try_connect((*c)->spec(), node_tls("driver")))
      << "another certificate of the same CA is accepted";
}

TEST(tls, rogue_certificate_is_refused) {
  auto c = local_cluster::start(tls_cluster());
  ASSERT_TRUE(c) << describe(c.error());
  auto& spec = (*c)->spec();
  // The node closes the connection in the TLS handshake, so CAF's own
  // handshake never completes: the driver names the rank and endpoint it
  // could not connect to and CAF's reason. A node that is not there at
  // all fails differently (cannot_connect_to_node).
  auto expect_refused = [&](const tls_options& client) {
    auto err = try_connect(spec, client);
    ASSERT_TRUE(err) << "connected with " << client.certificate;
    EXPECT_EQ(code_of(err), errc::io_error) << describe(err);
    auto why = message_of(err);
    EXPECT_NE(why.find("cannot connect to rank 0 at " + spec.workers[0].str()),
              std::string::npos)
        << why;
    EXPECT_NE(why.find("disconnect_during_handshake"), std::string::npos)
        << why;
  };
  tls_options rogue{
      file("rogue.pem"), file("rogue.key"), file("rogue-ca.pem"), {}};
  expect_refused(rogue);
  // Trusting our CA does not help a certificate the CA did not issue.
  tls_options mixed{file("rogue.pem"), file("rogue.key"), file("ca.pem"), {}};
  expect_refused(mixed);
  // The same client with a certificate from the CA gets in: the refusals
  // above were about the certificate.
  auto good = try_connect(spec, node_tls("driver"));
  EXPECT_FALSE(good) << describe(good);
}

TEST(tls, plain_client_is_refused) {
  auto c = local_cluster::start(tls_cluster());
  ASSERT_TRUE(c) << describe(c.error());
  EXPECT_TRUE(try_connect((*c)->spec(), {}));
  auto d = (*c)->connect();
  EXPECT_TRUE(d) << "the cluster keeps serving authenticated peers";
}

TEST(tls, client_without_certificate_is_refused) {
  auto c = local_cluster::start(tls_cluster());
  ASSERT_TRUE(c) << describe(c.error());
  // CAF's OpenSSL module without any openssl.* option: anonymous TLS.
  caf::actor_system_config cfg;
  configure_system(cfg, 2);
  cfg.load<caf::openssl::manager>();
  caf::actor_system sys{cfg};
  auto attempt = std::async(std::launch::async, [&] {
    return caf::openssl::remote_actor<worker_actor>(
        sys, "127.0.0.1", (*c)->spec().workers[0].port);
  });
  ASSERT_EQ(attempt.wait_for(20s), std::future_status::ready);
  EXPECT_FALSE(attempt.get());
}

TEST(tls, bad_configurations_are_refused_before_start) {
  struct bad_case {
    tls_options opts;
    std::string names;
  };
  std::vector<bad_case> cases{
      {{file("node0.pem"), {}, file("ca.pem"), {}}, "openssl.certificate"},
      {{file("missing.pem"), file("node0.key"), file("ca.pem"), {}},
       "openssl.certificate"},
      {{file("node0.pem"), file("missing.key"), file("ca.pem"), {}},
       "openssl.key"},
      {{file("node0.pem"), file("node1.key"), file("ca.pem"), {}},
       "does not match"},
      {{file("node0.pem"), file("node0.key"), file("missing.pem"), {}},
       "openssl.cafile"},
      {{file("node0.pem"), file("node0.key"), file("node0.key"), {}},
       "openssl.cafile"},
      {{file("rogue.pem"), file("rogue.key"), file("ca.pem"), {}},
       "not issued"},
      {{file("secret.pem"), file("secret.key"), file("ca.pem"), "wrong"},
       "passphrase"},
      {{file("ca.key"), file("node0.key"), file("ca.pem"), {}},
       "openssl.certificate"},
  };
  for (auto& c : cases) {
    auto err = validate_tls(c.opts);
    ASSERT_TRUE(err) << c.names;
    EXPECT_EQ(code_of(err), errc::invalid_argument);
    EXPECT_NE(message_of(err).find(c.names), std::string::npos)
        << message_of(err);
  }
  tls_options good{file("secret.pem"), file("secret.key"), file("ca.pem"),
                   "objstore-test"};
  EXPECT_FALSE(validate_tls(good)) << describe(validate_tls(good));
  EXPECT_FALSE(validate_tls({})) << "TLS off is valid";
  auto opts = tls_cluster();
  opts.tls.passphrase = "nope";
  opts.tls = {file("secret.pem"), file("secret.key"), file("ca.pem"), "nope"};
  auto c = local_cluster::start(opts);
  ASSERT_FALSE(c) << "a wrong passphrase must fail fast, not hang";
}

TEST(tls, transfers_between_workers_are_encrypted_and_authenticated) {
  auto opts = tls_cluster();
  opts.policy = fetch_policy::allow;
  auto c = local_cluster::start(opts);
  ASSERT_TRUE(c) << describe(c.error());
  auto d = (*c)->connect();
  ASSERT_TRUE(d) << describe(d.error());
  std::string payload(1 << 20, 'x');
  auto x = (*d)->put(0, make_value(blob::copy_of(payload)));
  ASSERT_TRUE(x);
  auto moved = (*d)->transfer(*x, 0, 1);
  ASSERT_TRUE(moved) << describe(moved.error());
  auto v = (*d)->fetch(*moved, 1);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ((*v)->as_bytes().view(), payload);
  auto st = (*d)->worker_stats_of(1);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->transfers_in, 1u);
}

TEST(tls, data_plane_refuses_plain_and_rogue_senders) {
  auto c = local_cluster::start(tls_cluster());
  ASSERT_TRUE(c) << describe(c.error());
  auto& target = *(*c)->node(1).data;
  auto value = make_value(blob::copy_of("secret"));
  auto attempt = [&](tls_options sender_tls) {
    data_plane_options opts;
    opts.local_shortcut = false;
    opts.io_timeout = 5s;
    opts.tls = std::move(sender_tls);
    auto sender = data_plane::start(
        opts,
        [](const transfer_ticket&, value_ptr) -> caf::expected<std::string> {
          return std::string{"mem://unused"};
        });
    EXPECT_TRUE(sender) << describe(sender.error());
    auto token = target.expect(1, std::chrono::steady_clock::now() + 30s);
    EXPECT_TRUE(token) << describe(token.error());
    return (*sender)->send("127.0.0.1", target.port(), *token, value);
  };
  auto before = target.counters().transfers_in.load();
  auto plain = attempt({});
  EXPECT_FALSE(plain) << "a plain sender must be refused";
  tls_options rogue{
      file("rogue.pem"), file("rogue.key"), file("rogue-ca.pem"), {}};
  auto forged = attempt(rogue);
  ASSERT_FALSE(forged);
  EXPECT_EQ(code_of(forged.error()), errc::unauthenticated)
      << describe(forged.error());
  EXPECT_EQ(target.counters().transfers_in.load(), before);
  // An authenticated sender gets through the handshake and the stream;
  // only the made-up session (1) is unknown to the worker.
  auto good = attempt(node_tls("node2"));
  ASSERT_FALSE(good);
  EXPECT_NE(message_of(good.error()).find("session"), std::string::npos)
      << describe(good.error());
}
