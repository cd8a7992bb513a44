#pragma once

#include <initializer_list>

namespace tau {

// Blocks the given signals in the calling thread (call it in main before any thread starts, so that every
// thread inherits the mask) and delivers them through a descriptor a poll loop can watch.
class SignalFd {
  public:
    explicit SignalFd(std::initializer_list<int> signals);
    ~SignalFd();
    SignalFd(const SignalFd&) = delete;
    SignalFd& operator=(const SignalFd&) = delete;

    int fd() const { return fd_; }
    // The next pending signal number, 0 if none.
    int read();

  private:
    int fd_ = -1;
};

} // namespace tau
