#include "actors/exec/task_executor.hpp"

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <utility>

namespace objstore {

task_executor::task_executor(task_executor_options options)
    : options_(options) {
  auto n = options_.threads;
  if (n == 0)
    n = std::max(1u, std::thread::hardware_concurrency());
  threads_.reserve(n);
  for (size_t i = 0; i < n; ++i)
    threads_.emplace_back([this] { loop(); });
}

task_executor::~task_executor() {
  stop();
  for (auto& t : threads_) {
    // Destroyed by one of its own tasks would deadlock on join: a bug of
    // the owner (the worker keeps the pool alive past its tasks).
    if (t.get_id() == std::this_thread::get_id())
      std::abort();
    if (t.joinable())
      t.join();
  }
}

bool task_executor::submit(uint64_t session, cancel_flag flag, work run,
                           work dropped) {
  {
    std::lock_guard guard{mtx_};
    if (stopping_
        || (options_.max_queued > 0 && queued_ >= options_.max_queued)) {
      ++refused_;
      return false;
    }
    auto& q = queues_[session];
    if (q.empty())
      turn_.push_back(session);
    if (flag)
      owner_[flag.get()] = session;
    q.push_back(item{std::move(flag), std::move(run), std::move(dropped)});
    ++queued_;
  }
  cv_.notify_one();
  return true;
}

template<class Pred>
std::vector<task_executor::item> task_executor::take_if(uint64_t session,
                                                        Pred pred) {
  std::vector<item> result;
  auto i = queues_.find(session);
  if (i == queues_.end())
    return result;
  auto& q = i->second;
  for (auto j = q.begin(); j != q.end();) {
    if (pred(*j)) {
      if (j->flag)
        owner_.erase(j->flag.get());
      result.push_back(std::move(*j));
      j = q.erase(j);
    } else {
      ++j;
    }
  }
  queued_ -= result.size();
  dropped_ += result.size();
  if (q.empty()) {
    queues_.erase(i);
    turn_.erase(std::remove(turn_.begin(), turn_.end(), session), turn_.end());
  }
  return result;
}

size_t task_executor::cancel(const cancel_flag& flag) {
  if (!flag)
    return 0;
  std::vector<item> taken;
  {
    std::lock_guard guard{mtx_};
    auto i = owner_.find(flag.get());
    if (i == owner_.end())
      return 0;
    taken = take_if(i->second,
                    [&](const item& x) { return x.flag.get() == flag.get(); });
  }
  for (auto& x : taken)
    if (x.dropped)
      x.dropped();
  return taken.size();
}

size_t task_executor::cancel_session(uint64_t session) {
  std::vector<item> taken;
  {
    std::lock_guard guard{mtx_};
    taken = take_if(session, [](const item&) { return true; });
  }
  for (auto& x : taken)
    if (x.dropped)
      x.dropped();
  return taken.size();
}

void task_executor::stop() {
  std::vector<item> taken;
  {
    std::lock_guard guard{mtx_};
    if (stopping_)
      return;
    stopping_ = true;
    std::vector<uint64_t> sessions(turn_.begin(), turn_.end());
    for (auto s : sessions) {
      auto xs = take_if(s, [](const item&) { return true; });
      std::move(xs.begin(), xs.end(), std::back_inserter(taken));
    }
  }
  cv_.notify_all();
  for (auto& x : taken)
    if (x.dropped)
      x.dropped();
}

task_executor_stats task_executor::stats() const {
  std::lock_guard guard{mtx_};
  task_executor_stats result;
  result.threads = threads_.size();
  result.busy = busy_;
  result.queued = queued_;
  result.dropped = dropped_;
  result.refused = refused_;
  return result;
}

void task_executor::loop() {
  std::unique_lock lock{mtx_};
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || !turn_.empty(); });
    if (turn_.empty()) // stopping, nothing left
      return;
    auto session = turn_.front();
    turn_.pop_front();
    auto i = queues_.find(session);
    auto x = std::move(i->second.front());
    i->second.pop_front();
    if (i->second.empty())
      queues_.erase(i);
    else
      turn_.push_back(session); // the session's next task waits its turn
    if (x.flag)
      owner_.erase(x.flag.get());
    --queued_;
    ++busy_;
    lock.unlock();
    try {
      x.run();
    } catch (...) {
      // `run` reports its own failures; nothing may end a pool thread.
    }
    x = item{}; // release captures outside the lock
    lock.lock();
    --busy_;
  }
}

} // namespace objstore
