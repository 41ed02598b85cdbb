// libFuzzer target: message handling of the worker. The first byte picks
// a request, the rest is deserialized from CAF's binary format (as BASP
// would) and sent to an in-process worker node by a scoped actor:
//   0 run task_request   1 put put_request   2 fetch string
//   3 erase string       4 release vector<string>
// Bit 7 of the first byte sends the request under a forged session key (the
// other session's id with a wrong secret): it must be refused and change
// nothing.
// URI strings "$<k>" become the k-th object the fuzzing session holds and
// "@<k>" the k-th object of another session (forged URIs), so the fuzzer
// reaches kernels on real inputs and the cross-session checks.
//
// The node runs with a 1 MiB object size limit and 256 graph ops, like a
// hardened deployment. Invariants after every request: the worker answers
// within 10 s; the other session's objects are intact (same value, still
// stored); the store holds exactly the baseline objects once the outputs
// the request created are released (no leak).

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>

#include "actors/testing/local_cluster.hpp"
#include "actors/worker/node.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace objstore;
using namespace std::chrono_literals;

namespace {

constexpr auto reply_timeout = 10s;

struct harness {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  node_handles node;
  std::unique_ptr<caf::scoped_actor> owner;     // holds the protected objects
  std::unique_ptr<caf::scoped_actor> fuzzer;    // sends the fuzzed requests
  std::unique_ptr<caf::scoped_actor> inspector; // operator: node-wide stats
  session_key owner_key;
  session_key fuzzer_key;
  session_key inspector_key;
  std::vector<value_ptr> protected_values;
  std::vector<std::string> protected_uris;
  std::vector<value_ptr> own_values;
  std::vector<std::string> own_uris;
  std::filesystem::path root;

  harness() {
    configure_system(cfg, 2);
    sys = std::make_unique<caf::actor_system>(cfg);
    auto templ = (std::filesystem::temp_directory_path()
                  / "objstore-fuzz-worker-XXXXXX")
                     .string();
    if (::mkdtemp(templ.data()) == nullptr)
      fuzz::fail("mkdtemp");
    root = templ;
    node_options opts;
    opts.store.node_id = "fz";
    opts.store.max_object_size = 1u << 20;
    opts.store.memory_limit = 64u << 20;
    opts.store.fs_roots = {root};
    opts.store.fs_sync = false;
    opts.policy = fetch_policy::allow;
    opts.ops = fuzz::fuzz_registry();
    opts.max_graph_ops = 256;
    opts.max_graph_bytes = 1u << 20;
    opts.operator_secret = std::string(64, 'o');
    auto made = spawn_node(*sys, opts);
    if (!made)
      fuzz::fail(describe(made.error()));
    node = std::move(*made);
    owner = std::make_unique<caf::scoped_actor>(*sys);
    fuzzer = std::make_unique<caf::scoped_actor>(*sys);
    inspector = std::make_unique<caf::scoped_actor>(*sys);
    owner_key = hello(*owner, {});
    fuzzer_key = hello(*fuzzer, {});
    inspector_key = hello(*inspector, std::string(64, 'o'));
    for (auto& x : samples()) {
      protected_values.push_back(x);
      protected_uris.push_back(put(*owner, owner_key, x));
    }
    for (auto& x : samples()) {
      own_values.push_back(x);
      own_uris.push_back(put(*fuzzer, fuzzer_key, x));
    }
  }

  static std::vector<value_ptr> samples() {
    std::vector<value_ptr> out;
    out.push_back(
        make_value(tensor::from<int64_t>({2, 3}, {1, 2, 3, 4, 5, 6})));
    out.push_back(make_value(tensor::from<double>({3}, {0.5, -1.0, 2.0})));
    auto tbl = table::make({{"k", tensor::from<int64_t>({4}, {1, 2, 1, 3})},
                            {"v", tensor::from<double>({4}, {1, 2, 3, 4})}});
    out.push_back(make_value(std::move(*tbl)));
    out.push_back(make_value(blob::copy_of("opaque")));
    return out;
  }

  session_key hello(caf::scoped_actor& self, std::string operator_secret) {
    session_key result;
    self->request(node.worker, reply_timeout, hello_atom::value,
                  [&] {
                    hello_request req;
                    req.client = "fuzz";
                    req.operator_secret = std::move(operator_secret);
                    return req;
                  }())
        .receive([&](session_info& info) { result = info.key; },
                 [&](caf::error& err) { fuzz::fail(describe(err)); });
    return result;
  }

  std::string put(caf::scoped_actor& self, const session_key& key,
                  value_ptr x) {
    std::string result;
    self->request(node.worker, reply_timeout, put_atom::value, key,
                  put_request{wire_value{std::move(x)}, {}})
        .receive([&](std::string& id) { result = std::move(id); },
                 [&](caf::error& err) { fuzz::fail(describe(err)); });
    return result;
  }

  /// "$k" / "@k" to the URIs they stand for; anything else unchanged.
  void substitute(std::string& text) const {
    if (text.size() < 2 || (text[0] != '$' && text[0] != '@'))
      return;
    auto& uris = text[0] == '$' ? own_uris : protected_uris;
    auto k = static_cast<size_t>(text[1] - '0');
    if (k < uris.size())
      text = uris[k];
  }

  worker_stats stats() {
    worker_stats result;
    (*inspector)
        ->request(node.worker, reply_timeout, stats_atom::value, inspector_key)
        .receive([&](worker_stats& x) { result = x; },
                 [&](caf::error& err) {
                   fuzz::fail("worker stopped answering: " + describe(err));
                 });
    return result;
  }

  /// Drops what the request created; restores own objects it released.
  void settle(std::vector<std::string>& created) {
    for (auto& id : created)
      if (id.rfind("fs://", 0) == 0)
        (*fuzzer)
            ->request(node.worker, reply_timeout, erase_atom::value, fuzzer_key,
                      id)
            .receive([](bool) {}, [](caf::error&) {});
    std::vector<std::string> mem;
    for (auto& id : created)
      if (id.rfind("mem://", 0) == 0)
        mem.push_back(id);
    if (!mem.empty())
      (*fuzzer)->send(node.worker, release_atom::value, fuzzer_key,
                      std::move(mem));
    stats(); // the worker handled every release sent before
    for (size_t i = 0; i < own_uris.size(); ++i) {
      auto id = uri::parse(own_uris[i]);
      auto x = node.objects->get(*id);
      if (!x)
        own_uris[i] = put(*fuzzer, fuzzer_key, own_values[i]);
    }
  }

  void check() {
    for (size_t i = 0; i < protected_uris.size(); ++i) {
      auto x = node.objects->get(*uri::parse(protected_uris[i]));
      OBJSTORE_FUZZ_CHECK(x, protected_uris[i] + " of the other session "
                                 + "is gone");
      OBJSTORE_FUZZ_CHECK(*x == protected_values[i],
                          protected_uris[i] + " changed");
    }
    auto st = stats();
    auto expected = protected_uris.size() + own_uris.size();
    OBJSTORE_FUZZ_CHECK(st.mem_objects == expected,
                        std::to_string(st.mem_objects) + " objects, expected "
                            + std::to_string(expected) + " (leak)");
    OBJSTORE_FUZZ_CHECK(st.tasks_running == 0, "a task still runs");
  }
};

template<class Reply>
void ask_and_wait(harness& h, std::vector<std::string>& created,
                  caf::message msg) {
  auto untyped = caf::actor_cast<caf::actor>(h.node.worker);
  (*h.fuzzer)
      ->request(untyped, reply_timeout, std::move(msg))
      .receive(
          [&](Reply& reply) {
            if constexpr (std::is_same_v<Reply, std::string>)
              created.push_back(reply);
            if constexpr (std::is_same_v<Reply, task_reply>)
              for (auto& id : reply.outputs)
                created.push_back(id);
          },
          [&](caf::error& err) {
            OBJSTORE_FUZZ_CHECK(err != caf::sec::request_timeout,
                                "no reply within 10 s");
            OBJSTORE_FUZZ_CHECK(err.category() == error_category,
                                "not an objstore error: " + describe(err));
          });
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static harness* h = new harness; // lives until exit (threads)
  if (size == 0)
    return 0;
  auto kind = (data[0] & 0x7f) % 5;
  auto key = h->fuzzer_key;
  if (data[0] & 0x80) // forged: the other session's id, a wrong secret
    key = session_key{h->owner_key.id, std::string(64, 'f')};
  ++data;
  --size;
  std::vector<std::string> created;
  switch (kind) {
    case 0: {
      task_request req;
      if (!fuzz::load(data, size, req) || fuzz::uses_op(req.program, "sleep"))
        return 0;
      for (auto& text : req.inputs)
        h->substitute(text);
      ask_and_wait<task_reply>(
          *h, created, caf::make_message(run_atom::value, key, std::move(req)));
      break;
    }
    case 1: {
      put_request req;
      if (!fuzz::load(data, size, req))
        return 0;
      ask_and_wait<std::string>(
          *h, created, caf::make_message(put_atom::value, key, std::move(req)));
      break;
    }
    case 2:
    case 3: {
      std::string text;
      if (!fuzz::load(data, size, text))
        return 0;
      h->substitute(text);
      if (kind == 2)
        ask_and_wait<wire_value>(
            *h, created,
            caf::make_message(fetch_atom::value, key, std::move(text)));
      else
        ask_and_wait<bool>(
            *h, created,
            caf::make_message(erase_atom::value, key, std::move(text)));
      break;
    }
    default: {
      std::vector<std::string> texts;
      if (!fuzz::load(data, size, texts))
        return 0;
      for (auto& text : texts)
        h->substitute(text);
      (*h->fuzzer)
          ->send(h->node.worker, release_atom::value, key, std::move(texts));
      break;
    }
  }
  h->settle(created);
  h->check();
  return 0;
}
