// vfork from a fiber: the entry is assembly (vfork_x86_64.S), since the
// child returns on the caller's stack before the parent does; these are
// the two calls it makes around the system call.
#include <cerrno>

#include "../runtime/signals.h"

using namespace greenld;

extern "C" {

__attribute__((visibility("hidden"))) void greenld_vfork_prepare() { signals::vfork_begin(); }

__attribute__((visibility("hidden"))) long greenld_vfork_parent(long rc) {
    signals::vfork_end();
    if (rc < 0) {
        errno = int(-rc);
        return -1;
    }
    return rc;
}

}  // extern "C"
