#include "rpc/worker_pool.h"

#include <pthread.h>

#include <algorithm>
#include <exception>

#include "rpc/log.h"

namespace rpc {

WorkerPool::WorkerPool(size_t threads, std::string name, Hook on_start,
                       Hook on_stop)
    : threads_count_(std::max<size_t>(threads, 1)),
      name_(std::move(name)),
      on_start_(std::move(on_start)),
      on_stop_(std::move(on_stop)) {}

WorkerPool::~WorkerPool() { Stop(); }

void WorkerPool::Start() {
  std::unique_lock<std::mutex> lock(mu_);
  if (started_ || stopping_) return;
  started_ = true;
  threads_.reserve(threads_count_);
  for (size_t i = 0; i < threads_count_; ++i) {
    threads_.emplace_back([this, i] { Run(i); });
    // Linux limits thread names to 15 characters.
    std::string tname = (name_ + "-" + std::to_string(i)).substr(0, 15);
    pthread_setname_np(threads_.back().native_handle(), tname.c_str());
  }
  ready_cv_.wait(lock, [this] { return ready_ == threads_count_; });
}

bool WorkerPool::Submit(Task task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return false;
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
  return true;
}

size_t WorkerPool::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

void WorkerPool::Stop() {
  std::vector<std::thread> threads;
  std::deque<Task> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    dropped.swap(queue_);
    threads.swap(threads_);
  }
  cv_.notify_all();
  for (std::thread& t : threads) t.join();
  // `dropped` is destroyed here, outside the lock: tasks may own objects
  // (connections) whose destructors must not run under mu_.
}

void WorkerPool::Run(size_t index) {
  if (on_start_) on_start_(index);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++ready_;
  }
  ready_cv_.notify_all();
  for (;;) {
    Task task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) break;
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    try {
      task(index);
    } catch (const std::exception& e) {
      log::Error("rpc: worker {} task threw: {}", index, e.what());
    } catch (...) {
      log::Error("rpc: worker {} task threw a non-exception", index);
    }
  }
  if (on_stop_) on_stop_(index);
}

}  // namespace rpc
