// fatal_signal.h: one report on stderr when the process dies of a fatal signal (SIGSEGV, SIGBUS, SIGFPE, SIGILL,
// SIGABRT), so a crashed server leaves more in its log than an exit status: the signal, the faulting address and
// a backtrace as offsets into the executable (`addr2line -f -C -e loraserve OFFSET...` names them). The default
// action then runs, so the exit status and any core dump are what they would have been.
#pragma once

namespace ls::app {

// Installs the handlers (once; later calls do nothing). Sanitizer builds keep the sanitizers' own reports.
void install_fatal_signal_report();

}  // namespace ls::app
