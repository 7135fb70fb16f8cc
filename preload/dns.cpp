// Host name lookups: getaddrinfo, getnameinfo, gethostbyname(2)(_r),
// gethostbyaddr(_r). freeaddrinfo and gai_strerror stay glibc's.
//
// glibc answers every lookup itself, so answers and error codes are its
// own; what changes is who waits. For a fiber (GREENLD_PATCH has dns):
//  - GREENLD_RESOLVER=ares (default), hosts sources only files and dns:
//    the call runs in the fiber and glibc reaches the "greenld" NSS module
//    (dns_module.cpp) in place of "dns", which parks only the fiber;
//  - GREENLD_RESOLVER=thread, or sources c-ares cannot serve (mdns,
//    myhostname, resolve, ldap, ...): the whole call on the blocking-call
//    pool, the fiber parked;
//  - GREENLD_RESOLVER=block: plain glibc in the fiber (blocks its hub).
// A native thread always calls glibc directly.
//
// gethostbyname, gethostbyname2 and gethostbyaddr hold a glibc lock for
// the whole lookup: a fiber parked inside would block every other fiber of
// its hub on it. A fiber's call therefore goes through the _r variant with
// its own result storage, kept per thread (pthread keys are per fiber).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "../runtime/config.h"
#include "../runtime/diag.h"
#include "../runtime/hub.h"
#include "../runtime/native.h"
#include "../runtime/pool.h"
#include "next.h"

using namespace greenld;

extern "C" int __nss_configure_lookup(const char* db, const char* service_line);

namespace {

next::Symbol<decltype(::getaddrinfo)> next_getaddrinfo{"getaddrinfo"};
next::Symbol<decltype(::getnameinfo)> next_getnameinfo{"getnameinfo"};
next::Symbol<decltype(::gethostbyname)> next_gethostbyname{"gethostbyname"};
next::Symbol<decltype(::gethostbyname2)> next_gethostbyname2{"gethostbyname2"};
next::Symbol<decltype(::gethostbyaddr)> next_gethostbyaddr{"gethostbyaddr"};
next::Symbol<decltype(::gethostbyname_r)> next_gethostbyname_r{"gethostbyname_r"};
next::Symbol<decltype(::gethostbyname2_r)> next_gethostbyname2_r{"gethostbyname2_r"};
next::Symbol<decltype(::gethostbyaddr_r)> next_gethostbyaddr_r{"gethostbyaddr_r"};

// What the hosts line of nsswitch.conf lets us do.
enum class HostsSources {
    module,     // files and dns only: dns is now our module
    no_dns,     // files only: nothing waits on the network
    pool,       // a source c-ares cannot serve, or the module could not be set
};

constexpr const char* kNsswitch = "/etc/nsswitch.conf";

// A small file's text (at most 64 KiB), NUL-terminated, in memory the
// caller frees; null if it cannot be read (native::read_file).
char* read_file(const char* path) {
    constexpr size_t kMax = 64 * 1024;
    char* text = static_cast<char*>(malloc(kMax + 1));
    if (text && native::read_file(path, text, kMax + 1) < 0) {
        free(text);
        return nullptr;
    }
    return text;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

// Finds the last "hosts:" line (glibc keeps the last one) and writes its
// service list, with each "dns" replaced by "greenld", into `out`.
HostsSources classify_hosts_line(char* text, char* out, size_t out_size) {
    // glibc 2.36's default when no hosts line is given (tested).
    const char* services = "files dns";
    for (char* line = text; line && *line;) {
        char* eol = strchr(line, '\n');
        if (eol) *eol = '\0';
        if (char* hash = strchr(line, '#')) *hash = '\0';
        char* p = line;
        while (is_space(*p)) ++p;
        if (strncmp(p, "hosts", 5) == 0 && (p[5] == ':' || is_space(p[5]))) {
            p += 5;
            while (*p && (is_space(*p) || *p == ':')) ++p;
            services = p;
        }
        line = eol ? eol + 1 : nullptr;
    }
    bool has_dns = false, foreign = false;
    size_t used = 0;
    auto append = [&](const char* s, size_t n) {
        if (used + n + 1 >= out_size) {
            foreign = true;  // too long to rewrite: let glibc do it all
            return;
        }
        memcpy(out + used, s, n);
        used += n;
        out[used] = '\0';
    };
    out[0] = '\0';
    for (const char* p = services; *p;) {
        if (is_space(*p)) {
            append(p, 1);
            ++p;
        } else if (*p == '[') {  // an action list is copied as it is
            const char* end = strchr(p, ']');
            size_t n = end ? size_t(end - p + 1) : strlen(p);
            append(p, n);
            p += n;
        } else {
            const char* start = p;
            while (*p && !is_space(*p) && *p != '[') ++p;
            size_t n = size_t(p - start);
            if (n == 3 && strncmp(start, "dns", 3) == 0) {
                has_dns = true;
                append("greenld", 7);
            } else {
                if (!(n == 5 && strncmp(start, "files", 5) == 0)) foreign = true;
                append(start, n);
            }
        }
    }
    if (foreign) return HostsSources::pool;
    return has_dns ? HostsSources::module : HostsSources::no_dns;
}

// Decided once per process, on a fiber's first lookup. Putting the module
// in place stops glibc from re-reading nsswitch.conf (greenld(7) says so).
HostsSources hosts_sources() {
    static constinit std::atomic<int> decided{-1};
    int v = decided.load(std::memory_order_acquire);
    if (__builtin_expect(v >= 0, 1)) return HostsSources(v);
    static native::Mutex lock;
    native::LockGuard guard(lock);
    v = decided.load(std::memory_order_relaxed);
    if (v >= 0) return HostsSources(v);
    HostsSources result = HostsSources::no_dns;
    char line[1024];
    char* text = read_file(kNsswitch);
    result = classify_hosts_line(text ? text : const_cast<char*>(""), line, sizeof line);
    free(text);
    if (result == HostsSources::module && __nss_configure_lookup("hosts", line) != 0) {
        diag::message("cannot configure the NSS hosts sources '%s'; DNS lookups of threads run on the pool", line);
        result = HostsSources::pool;
    }
    decided.store(int(result), std::memory_order_release);
    return result;
}

enum class Path { direct, pool };

// How a lookup made by the calling thread runs (see the file comment).
Path lookup_path() {
    if (!Hub::current_fiber() || !config::patched(config::kPatchDns)) return Path::direct;
    switch (config::resolver_mode()) {
        case config::ResolverMode::block: return Path::direct;
        case config::ResolverMode::thread: return Path::pool;
        case config::ResolverMode::ares: break;
    }
    return hosts_sources() == HostsSources::pool ? Path::pool : Path::direct;
}

template <typename Call>
auto run_lookup(Call&& call) -> decltype(call()) {
    if (lookup_path() == Path::pool) return offload(JobKind::io, call);
    return call();
}

// A fiber's result storage for the non-reentrant calls.
struct HostStorage {
    hostent entry;
    char* buffer;
    size_t size;
};

pthread_key_t storage_key;
pthread_once_t storage_once = PTHREAD_ONCE_INIT;

void free_storage(void* p) {
    auto* s = static_cast<HostStorage*>(p);
    free(s->buffer);
    free(s);
}

HostStorage* fiber_storage() {
    pthread_once(&storage_once, [] { pthread_key_create(&storage_key, free_storage); });
    auto* s = static_cast<HostStorage*>(pthread_getspecific(storage_key));
    if (!s) {
        s = static_cast<HostStorage*>(calloc(1, sizeof(HostStorage)));
        if (!s) return nullptr;
        pthread_setspecific(storage_key, s);
    }
    return s;
}

// As glibc's getXXbyYY.c: the _r call with a buffer grown on ERANGE, its
// h_errno published when not NETDB_SUCCESS.
template <typename CallR>
hostent* non_reentrant(CallR call_r) {
    HostStorage* s = fiber_storage();
    if (!s) {
        h_errno = NETDB_INTERNAL;
        errno = ENOMEM;
        return nullptr;
    }
    if (!s->buffer) {
        s->size = 1024;
        s->buffer = static_cast<char*>(malloc(s->size));
    }
    hostent* result = nullptr;
    int herr = NETDB_SUCCESS;
    for (;;) {
        if (!s->buffer) {
            h_errno = NETDB_INTERNAL;
            errno = ENOMEM;
            return nullptr;
        }
        int rc = call_r(&s->entry, s->buffer, s->size, &result, &herr);
        if (rc != ERANGE || herr != NETDB_INTERNAL) break;
        free(s->buffer);
        s->size *= 2;
        s->buffer = static_cast<char*>(malloc(s->size));
    }
    if (herr != NETDB_SUCCESS) h_errno = herr;
    return result;
}

bool fiber_avoids_glibc_lock() {
    return Hub::current_fiber() && config::patched(config::kPatchDns) &&
           config::resolver_mode() != config::ResolverMode::block;
}

}  // namespace

GREENLD_EXPORT int getaddrinfo(const char* node, const char* service, const struct addrinfo* hints,
                               struct addrinfo** res) {
    return run_lookup([&] { return next_getaddrinfo(node, service, hints, res); });
}

GREENLD_EXPORT int getnameinfo(const struct sockaddr* addr, socklen_t addrlen, char* host, socklen_t hostlen,
                               char* serv, socklen_t servlen, int flags) {
    auto call = [&] { return next_getnameinfo(addr, addrlen, host, hostlen, serv, servlen, flags); };
    // With NI_NOFQDN, glibc's first getnameinfo looks the host's own name
    // up holding a lock of its own (nrl_domainname): a fiber parked there
    // would block every fiber of its hub that reaches that lock. Until one
    // such call has finished, they run on the pool, where waiting on the
    // lock blocks only a pool thread. glibc gets there once a name was
    // found for the address (a host that is not an address literal).
    static std::atomic<bool> domain_known{false};
    if ((flags & NI_NOFQDN) && !(flags & NI_NUMERICHOST) && !domain_known.load(std::memory_order_acquire) &&
        Hub::current_fiber() && config::patched(config::kPatchDns) &&
        config::resolver_mode() != config::ResolverMode::block) {
        int rc = offload(JobKind::io, call);
        unsigned char ignored[sizeof(in6_addr)];
        if (rc == 0 && host && hostlen && inet_pton(AF_INET, host, ignored) != 1 &&
            inet_pton(AF_INET6, host, ignored) != 1)
            domain_known.store(true, std::memory_order_release);
        return rc;
    }
    return run_lookup(call);
}

GREENLD_EXPORT int gethostbyname_r(const char* name, struct hostent* ret, char* buf, size_t buflen,
                                   struct hostent** result, int* h_errnop) {
    return run_lookup([&] { return next_gethostbyname_r(name, ret, buf, buflen, result, h_errnop); });
}

GREENLD_EXPORT int gethostbyname2_r(const char* name, int af, struct hostent* ret, char* buf, size_t buflen,
                                    struct hostent** result, int* h_errnop) {
    return run_lookup([&] { return next_gethostbyname2_r(name, af, ret, buf, buflen, result, h_errnop); });
}

GREENLD_EXPORT int gethostbyaddr_r(const void* addr, socklen_t len, int type, struct hostent* ret, char* buf,
                                   size_t buflen, struct hostent** result, int* h_errnop) {
    return run_lookup([&] { return next_gethostbyaddr_r(addr, len, type, ret, buf, buflen, result, h_errnop); });
}

GREENLD_EXPORT struct hostent* gethostbyname(const char* name) {
    if (!fiber_avoids_glibc_lock()) return next_gethostbyname(name);
    return non_reentrant([&](hostent* e, char* b, size_t n, hostent** r, int* h) {
        return gethostbyname_r(name, e, b, n, r, h);
    });
}

GREENLD_EXPORT struct hostent* gethostbyname2(const char* name, int af) {
    if (!fiber_avoids_glibc_lock()) return next_gethostbyname2(name, af);
    return non_reentrant([&](hostent* e, char* b, size_t n, hostent** r, int* h) {
        return gethostbyname2_r(name, af, e, b, n, r, h);
    });
}

GREENLD_EXPORT struct hostent* gethostbyaddr(const void* addr, socklen_t len, int type) {
    if (!fiber_avoids_glibc_lock()) return next_gethostbyaddr(addr, len, type);
    return non_reentrant([&](hostent* e, char* b, size_t n, hostent** r, int* h) {
        return gethostbyaddr_r(addr, len, type, e, b, n, r, h);
    });
}
