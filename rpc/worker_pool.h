#pragma once

// A fixed pool of worker threads running tasks from one FIFO queue.
//
// Each worker knows its index, and the pool runs a start hook on each worker
// thread before it takes tasks and a stop hook before it exits: this is where
// per-thread resources (a database connection per worker) are set up and torn
// down, and tasks find theirs by index.
//
// Thread safety: Submit may be called from any thread; Start/Stop from the
// owner only.

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace rpc {

class WorkerPool {
 public:
  using Task = std::function<void(size_t worker_index)>;
  using Hook = std::function<void(size_t worker_index)>;

  // `threads` >= 1. `name` prefixes thread names ("name-3") for debuggers.
  WorkerPool(size_t threads, std::string name, Hook on_start = {},
             Hook on_stop = {});
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;
  ~WorkerPool();  // Stop()

  // Starts the threads and returns once each has run on_start(index), so
  // that no task runs before every per-worker resource exists. Idempotent.
  void Start();
  // Queues `task`; false (task dropped) once Stop() has begun.
  bool Submit(Task task);
  // Discards queued tasks, waits for running ones, runs on_stop on each
  // worker and joins the threads. Idempotent.
  void Stop();

  size_t size() const { return threads_count_; }
  // Tasks queued and not yet started.
  size_t queued() const;

 private:
  void Run(size_t index);

  const size_t threads_count_;
  const std::string name_;
  const Hook on_start_;
  const Hook on_stop_;
  mutable std::mutex mu_;
  std::condition_variable cv_;        // tasks queued or stopping
  std::condition_variable ready_cv_;  // a worker finished on_start
  std::deque<Task> queue_;            // guarded by mu_
  bool stopping_ = false;             // guarded by mu_
  bool started_ = false;              // guarded by mu_
  size_t ready_ = 0;                  // workers past on_start; guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace rpc
