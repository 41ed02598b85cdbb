#pragma once

// Internal to the driver actor (not installed): how it calls its workers.
// Every call ends in exactly one callback, within its deadline, and a reply
// that comes after its caller gave up is released on the rank that holds
// what it names.

#include <functional>
#include <string>
#include <utility>

#include <caf/binary_serializer.hpp>
#include <caf/io/basp/header.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/driver/driver_actor.hpp"
#include "store/error.hpp"

namespace objstore::detail {

using driver_self = driver_actor_private::stateful_pointer<driver_state>;

// -- control-plane byte accounting --------------------------------------------

// Bytes a message occupies on the wire: the BASP header plus the serialized
// payload. Bulk values are counted by their payload plus a small header
// estimate instead of being serialized twice.
inline uint64_t payload_size(driver_self, const wire_value& x) {
  return x.ptr ? x.ptr->size_bytes() + 64 : 8;
}

inline uint64_t payload_size(driver_self self, const put_request& x) {
  return payload_size(self, x.value) + x.target.size() + 8;
}

template<class T>
uint64_t payload_size(driver_self self, const T& x) {
  auto& buf = self->state.scratch;
  buf.clear();
  caf::binary_serializer sink{self->system(), buf};
  if (sink(const_cast<T&>(x)))
    return 0;
  return buf.size();
}

template<class... Ts>
uint64_t message_size(driver_self self, const Ts&... xs) {
  return caf::io::basp::header_size + (payload_size(self, xs) + ... + 0);
}

// -- errors -------------------------------------------------------------------

/// Turns a CAF or worker error of a call to `rank` into objstore's error,
/// naming the rank and what was asked.
caf::error translate(driver_self self, const caf::error& err, uint32_t rank,
                     const std::string& what);

/// The error of every request after `close`.
caf::error closed_error(const std::string& what);

// -- releases -----------------------------------------------------------------

/// Queues a release of `uri` on `rank` (mem:// only; others are not
/// counted) and sends full batches.
void queue_release(driver_self self, uint32_t rank, const std::string& uri);

/// Sends full batches now; arms the timer for the rest.
void schedule_flush(driver_self self);

/// A reply that arrived after its caller gave up: the objects it names are
/// held by this session but no handle knows them, so release them.
template<class Reply>
void release_late(driver_self, uint32_t, Reply&) {
  // nop: nothing held
}

inline void release_late(driver_self self, uint32_t rank, std::string& uri) {
  queue_release(self, rank, uri);
}

inline void release_late(driver_self self, uint32_t rank, task_reply& reply) {
  for (auto& uri : reply.outputs)
    queue_release(self, rank, uri);
}

// -- calls --------------------------------------------------------------------

/// Checks that a request to `rank` can be sent; the error says why not.
caf::error check_rank(driver_self self, uint32_t rank, const std::string& what,
                      bool keyed);

/// Sends a request to worker `rank` and calls exactly one of `ok` / `fail`:
/// on the reply, on an error reply, at the caller's deadline (`timeout`),
/// at once when the worker is (or goes) down, or when the driver closes.
/// The reply is awaited for `late_reply_window` past the deadline so that a
/// late one can be released on `holder` (the rank where the objects it
/// names live: the target of a push, else `rank`).
///
/// Every request but `hello` carries the rank's session key after the atom.
template<class Reply, class Atom, class... Ts>
void call_on(driver_self self, uint32_t rank, uint32_t holder, std::string what,
             caf::timespan timeout, std::function<void(Reply&)> ok,
             std::function<void(caf::error)> fail, Atom atom, Ts&&... xs) {
  auto& st = self->state;
  constexpr bool keyed = !std::is_same_v<Atom, hello_atom>;
  if (auto err = check_rank(self, rank, what, keyed)) {
    fail(std::move(err));
    return;
  }
  auto id = st.next_call++;
  st.pending.emplace(id, driver_state::pending_call{rank, what, fail});
  if constexpr (keyed)
    st.counters.bytes_sent += message_size(self, atom, st.keys[rank], xs...);
  else
    st.counters.bytes_sent += message_size(self, atom, xs...);
  ++st.counters.requests;
  self->delayed_send(caf::actor_cast<driver_actor_private>(self), timeout,
                     deadline_atom::value, id);
  auto wait = timeout;
  if (wait < caf::timespan::max() - st.options.late_reply_window)
    wait += st.options.late_reply_window; // saturating: never overflows
  auto sent = [&] {
    if constexpr (keyed)
      return self->request(st.workers[rank], wait, atom, st.keys[rank],
                           std::forward<Ts>(xs)...);
    else
      return self->request(st.workers[rank], wait, atom,
                           std::forward<Ts>(xs)...);
  }();
  std::move(sent).then(
      [self, id, holder, ok](Reply& reply) {
        auto& st = self->state;
        st.counters.bytes_received += message_size(self, reply);
        if (st.pending.erase(id) == 0) {
          if (holder < st.lost.size() && st.lost[holder].empty()) {
            release_late(self, holder, reply);
            schedule_flush(self);
          }
          return; // the caller already failed (deadline, down or close)
        }
        ok(reply);
      },
      [self, id, rank, what, fail](caf::error& err) {
        if (self->state.pending.erase(id) == 0)
          return;
        fail(translate(self, err, rank, what));
      });
}

template<class Reply, class... Ts>
void call_within(driver_self self, uint32_t rank, std::string what,
                 caf::timespan timeout, std::function<void(Reply&)> ok,
                 std::function<void(caf::error)> fail, Ts&&... xs) {
  call_on<Reply>(self, rank, rank, std::move(what), timeout, std::move(ok),
                 std::move(fail), std::forward<Ts>(xs)...);
}

template<class Reply, class... Ts>
void call(driver_self self, uint32_t rank, std::string what,
          std::function<void(Reply&)> ok, std::function<void(caf::error)> fail,
          Ts&&... xs) {
  call_within<Reply>(self, rank, std::move(what), self->state.options.timeout,
                     std::move(ok), std::move(fail), std::forward<Ts>(xs)...);
}

// -- orchestration (actors/orchestrator.cpp) ----------------------------------

template<class T>
using then_fn = std::function<void(caf::expected<T>)>;

/// Starts a run; `done` is called exactly once. Returns the run's state
/// (null when the order was refused before anything was sent).
std::shared_ptr<run_state> start_run(driver_self self, run_order order,
                                     then_fn<run_result> done);

/// Cancels what is still running of `run` and fails it with `cancelled`;
/// returns the number of parties that were still running it.
uint64_t cancel_run(driver_self self, run_state& run);

/// Registers a submitted run; replies its id.
uint64_t submit_run(driver_self self, run_order order);

/// Takes submitted run `id` once it finished.
caf::result<run_result> await_run(driver_self self, uint64_t id);

/// Waits for `k` of `ids` (or `timeout`).
caf::result<std::vector<uint64_t>> await_runs(driver_self self,
                                              std::vector<uint64_t> ids,
                                              uint64_t k,
                                              caf::timespan timeout);

/// A waiter's timeout passed: replies the runs finished so far.
void on_await_timeout(driver_self self, uint64_t waiter);

/// Drops submitted run `id`: its outputs are released once it finishes.
void forget_run(driver_self self, uint64_t id);

/// Fails every submitted run still running (at close).
void fail_all_runs(driver_self self, const caf::error& err);

/// Moves party `from`'s value of `x` to party `to`: a new mem:// object,
/// or the fs:// object `target` when not empty (its handle then is not
/// reference counted).
void transfer(driver_self self, host_var x, uint32_t from, uint32_t to,
              then_fn<host_var> done, std::string target = {});

void shuffle(driver_self self, host_var x, std::vector<int64_t> routing,
             then_fn<host_var> done);

void shuffle_by_key(driver_self self, host_var x, std::string key,
                    then_fn<host_var> done);

/// Interprets a SIMP program (actors/simp.cpp).
void run_simp(driver_self self, graph program, std::vector<host_var> inputs,
              then_fn<run_result> done);

/// Whether `ref`'s object can still be reached: its worker is not lost.
bool part_alive(driver_self self, const remote_ref& ref);

/// A response promise for `then_fn` users.
template<class T>
then_fn<T> deliver_to(caf::typed_response_promise<T> rp) {
  return [rp](caf::expected<T> x) mutable {
    if (x)
      rp.deliver(std::move(*x));
    else
      rp.deliver(std::move(x.error()));
  };
}

} // namespace objstore::detail
