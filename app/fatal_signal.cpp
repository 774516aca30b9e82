// fatal_signal.cpp: see fatal_signal.h. The handler only calls async-signal-safe functions (write, backtrace
// after a warm-up call outside the handler, sigaction, raise), formats numbers by hand, and writes each line of its
// report in one call.
#include "fatal_signal.h"

#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

#include <cstdint>

extern "C" char __executable_start;  // the linker's first byte of the executable's image
extern "C" char _end;                // and the byte after its last

namespace ls::app {
namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

constexpr int kSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

// One line of the report, built on the stack and written by one write() call, so that a line another thread logs
// at the same moment lands between the report's lines, never inside one (writes to a pipe of up to PIPE_BUF bytes
// are not interleaved).
class Line {
 public:
  Line& operator<<(const char* s) {
    while (*s != '\0' && n_ < sizeof(buf_)) buf_[n_++] = *s++;
    return *this;
  }
  Line& dec(long v) {
    char digits[24];
    char* p = digits + sizeof(digits) - 1;
    *p = '\0';
    const bool neg = v < 0;
    unsigned long u = neg ? 0UL - static_cast<unsigned long>(v) : static_cast<unsigned long>(v);
    do {
      *--p = static_cast<char>('0' + u % 10);
      u /= 10;
    } while (u != 0);
    if (neg) *--p = '-';
    return *this << p;
  }
  Line& hex(uintptr_t v) {
    char digits[2 + 2 * sizeof(v) + 1];
    char* p = digits + sizeof(digits) - 1;
    *p = '\0';
    do {
      *--p = "0123456789abcdef"[v & 15];
      v >>= 4;
    } while (v != 0);
    *--p = 'x';
    *--p = '0';
    return *this << p;
  }
  ~Line() {
    const char* s = buf_;
    size_t n = n_;
    while (n > 0) {
      const ssize_t w = ::write(STDERR_FILENO, s, n);
      if (w <= 0) return;
      s += w;
      n -= static_cast<size_t>(w);
    }
  }

 private:
  char buf_[512];
  size_t n_ = 0;
};

const char* signal_name(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    default: return "signal";
  }
}

void on_fatal_signal(int sig, siginfo_t* info, void*) {
  {
    Line line;
    line << "loraserve: fatal " << signal_name(sig) << " (";
    line.dec(sig) << ") in thread ";
    line.dec(static_cast<long>(::gettid()));
    if (info != nullptr && info->si_code > 0 && sig != SIGABRT) {  // raised by the kernel, not sent
      line << " at address ";
      line.hex(reinterpret_cast<uintptr_t>(info->si_addr));
    }
    line << "\n";
  }
  Line() << "loraserve: backtrace (offsets into the executable; addr2line -f -C -e <loraserve> OFFSET):\n";
  void* frames[64];
  int n = ::backtrace(frames, 64);
  const uintptr_t base = reinterpret_cast<uintptr_t>(&__executable_start);
  const uintptr_t end = reinterpret_cast<uintptr_t>(&_end);
  for (int i = 0; i < n; ++i) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(frames[i]);
    const bool ours = a >= base && a < end;
    Line line;
    line << "  #";
    line.dec(i) << " ";
    line.hex(ours ? a - base : a) << (ours ? "\n" : " (a shared library)\n");
  }
  // SA_RESETHAND restored the default action: raised again, it runs once this handler returns (a fault would
  // also recur on its own), so the process dies as it would have without the report.
  ::raise(sig);
}

}  // namespace

void install_fatal_signal_report() {
  static bool installed = false;
  if (installed || kSanitized) return;
  installed = true;
  void* warm[1];
  ::backtrace(warm, 1);  // loads the unwinder now: its first call may allocate, which a handler must not do
  static char alt_stack[64 * 1024];  // a stack overflow in the main thread still gets its report
  stack_t ss{};
  ss.ss_sp = alt_stack;
  ss.ss_size = sizeof(alt_stack);
  ::sigaltstack(&ss, nullptr);
  for (int sig : kSignals) {
    struct sigaction sa {};
    sa.sa_sigaction = on_fatal_signal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    ::sigaction(sig, &sa, nullptr);
  }
}

}  // namespace ls::app
