// What runs when ld.so loads the library, before the program's main: the
// settings that must act before any thread exists.
//  - GREENLD_NO_INHERIT=1: our entry leaves LD_PRELOAD, so that programs
//    this one execs (and their children) run without the shim.
//  - The monitor's dump signal and blocked-hub thread (runtime/monitor.h).
#include <dlfcn.h>
#include <stdlib.h>

#include <cstring>
#include <string>

#include "../runtime/config.h"
#include "../runtime/diag.h"
#include "../runtime/monitor.h"

using namespace greenld;

namespace {

bool same_file(const char* a, const char* b) {
    char* ra = realpath(a, nullptr);
    char* rb = realpath(b, nullptr);
    const bool same = ra && rb && strcmp(ra, rb) == 0;
    free(ra);
    free(rb);
    return same;
}

void drop_from_ld_preload(const char* self) {
    const char* preload = getenv("LD_PRELOAD");
    if (!preload) return;
    // ld.so splits LD_PRELOAD on both ':' and whitespace.
    std::string kept, entry;
    auto flush = [&] {
        if (!entry.empty() && !same_file(entry.c_str(), self)) {
            if (!kept.empty()) kept += ':';
            kept += entry;
        }
        entry.clear();
    };
    for (const char* p = preload; *p; ++p) {
        if (*p == ':' || *p == ' ' || *p == '\t' || *p == '\n')
            flush();
        else
            entry += *p;
    }
    flush();
    if (kept.empty())
        unsetenv("LD_PRELOAD");
    else
        setenv("LD_PRELOAD", kept.c_str(), 1);
}

__attribute__((constructor)) void greenld_startup() {
    if (config::no_inherit()) {
        Dl_info self{};
        if (dladdr(reinterpret_cast<void*>(&greenld_startup), &self) && self.dli_fname)
            drop_from_ld_preload(self.dli_fname);
        else
            diag::message("GREENLD_NO_INHERIT=1: cannot tell this library's path; children keep the shim");
    }
    monitor::start();
}

}  // namespace
