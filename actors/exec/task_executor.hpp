#pragma once

// The node's own threads for kernels, user ops and blocking fs:// IO
// (DESIGN.md §12): a bounded pool with a bounded queue, shared fairly
// between sessions, never the threads that deliver control messages.
//
// Fairness: each session has its own FIFO queue; idle threads take the
// next task round-robin over the sessions with queued tasks, so one
// session's hundred queued tasks delay another session's one by at most
// one task per session ahead of it.
//
// Cancel: a queued task is removed at once and its `dropped` callback runs
// instead (on the cancelling thread); a running task sees its cancel flag at
// its next kernel poll.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace objstore {

struct task_executor_options {
  /// Threads running tasks (objstore.task-threads); 0 = the hardware
  /// threads.
  size_t threads = 0;
  /// Tasks waiting for a thread, all sessions together
  /// (objstore.max-queued-tasks); a submit beyond it is refused. 0 = none.
  size_t max_queued = 1024;
};

struct task_executor_stats {
  size_t threads = 0;
  /// Threads running a task now.
  size_t busy = 0;
  /// Tasks waiting for a thread.
  size_t queued = 0;
  /// Tasks removed from the queue by a cancel (or by stop).
  uint64_t dropped = 0;
  /// Submits refused because the queue was full.
  uint64_t refused = 0;
};

class task_executor {
public:
  using cancel_flag = std::shared_ptr<std::atomic<bool>>;
  using work = std::function<void()>;

  explicit task_executor(task_executor_options options);

  /// Drops what is queued (their `dropped` run) and joins the threads
  /// after their current tasks.
  ~task_executor();

  task_executor(const task_executor&) = delete;
  task_executor& operator=(const task_executor&) = delete;

  /// Queues `run` for `session`. `dropped` runs instead of `run` if the
  /// task is cancelled (or the executor stops) before a thread takes it.
  /// False (nothing queued, neither callback runs) when the queue is full
  /// or the executor stopped. `flag` identifies the task for `cancel`.
  bool submit(uint64_t session, cancel_flag flag, work run, work dropped);

  /// Removes the queued tasks of `flag` and runs their `dropped`; returns
  /// how many. A task already running is left to its flag.
  size_t cancel(const cancel_flag& flag);

  /// Removes every queued task of `session` (its `dropped` run).
  size_t cancel_session(uint64_t session);

  /// Stops taking tasks; queued ones are dropped. Threads finish their
  /// current task and exit. Idempotent.
  void stop();

  task_executor_stats stats() const;

  size_t threads() const noexcept { return threads_.size(); }

private:
  struct item {
    cancel_flag flag;
    work run;
    work dropped;
  };

  void loop();

  /// Removes the items of `session` matching `pred` (under the lock) and
  /// returns them; the caller runs their `dropped` without the lock.
  template<class Pred>
  std::vector<item> take_if(uint64_t session, Pred pred);

  task_executor_options options_;
  mutable std::mutex mtx_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::unordered_map<uint64_t, std::deque<item>> queues_;
  /// Sessions with queued tasks, in the order they get a thread next.
  std::deque<uint64_t> turn_;
  /// Which session queued each flag (cancel by flag without a scan).
  std::unordered_map<const void*, uint64_t> owner_;
  size_t queued_ = 0;
  size_t busy_ = 0;
  uint64_t dropped_ = 0;
  uint64_t refused_ = 0;
  std::vector<std::thread> threads_;
};

} // namespace objstore
