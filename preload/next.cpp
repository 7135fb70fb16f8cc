#include "next.h"

#include <cstdlib>

#include "../runtime/diag.h"

namespace greenld::next {

void* resolve(const char* name, const char* version) {
    void* p = version ? dlvsym(RTLD_NEXT, name, version) : dlsym(RTLD_NEXT, name);
    if (!p) diag::fatal("cannot find the libc definition of %s", name);
    return p;
}

}  // namespace greenld::next
