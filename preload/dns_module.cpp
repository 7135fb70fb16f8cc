// The NSS "greenld" hosts module: glibc's own "dns" module, made
// cooperative. preload/dns.cpp puts it in place of "dns" in the hosts
// line of nsswitch.conf (__nss_configure_lookup), so glibc keeps doing
// everything else exactly as it does natively: /etc/hosts, the order of
// sources and their [actions], getaddrinfo's flags, services, socktype
// expansion, RFC 6724 sorting with /etc/gai.conf, getnameinfo, the EAI_*
// and h_errno mapping. Only the DNS part changes hands:
//  - a native thread, or GREENLD_PATCH without dns: glibc's dns module
//    itself (_nss_dns_*, exported by libc as GLIBC_PRIVATE);
//  - a fiber, when the configuration is one this file reproduces: glibc's
//    search (dns_search.cpp) over the hub's c-ares channel, and glibc's
//    answer parsing (resolv/nss_dns/dns-host.c) reproduced below;
//  - a fiber otherwise (resolv.conf sortlist or options such as inet6,
//    no-aaaa, use-vc, edns0; HOSTALIASES): glibc's dns module on the
//    blocking-call pool.
// The libc library is loaded by glibc under the module's name: the
// library's soname is libnss_greenld.so.2 (see the Makefile).
#include <arpa/nameser.h>
#include <netdb.h>
#include <nss.h>
#include <resolv.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "../runtime/config.h"
#include "../runtime/hub.h"
#include "../runtime/pool.h"
#include "dns_search.h"
#include "next.h"

using namespace greenld;

namespace {

using Byname4 = nss_status(const char*, gaih_addrtuple**, char*, size_t, int*, int*, int32_t*);
using Byname3 = nss_status(const char*, int, hostent*, char*, size_t, int*, int*, int32_t*, char**);
using Byname2 = nss_status(const char*, int, hostent*, char*, size_t, int*, int*);
using Byname = nss_status(const char*, hostent*, char*, size_t, int*, int*);
using Byaddr2 = nss_status(const void*, socklen_t, int, hostent*, char*, size_t, int*, int*, int32_t*);
using Byaddr = nss_status(const void*, socklen_t, int, hostent*, char*, size_t, int*, int*);
using Canonname = nss_status(const char*, char*, size_t, char**, int*, int*);

next::Symbol<Byname4> glibc_byname4{"_nss_dns_gethostbyname4_r", "GLIBC_PRIVATE"};
next::Symbol<Byname3> glibc_byname3{"_nss_dns_gethostbyname3_r", "GLIBC_PRIVATE"};
next::Symbol<Byname2> glibc_byname2{"_nss_dns_gethostbyname2_r", "GLIBC_PRIVATE"};
next::Symbol<Byname> glibc_byname{"_nss_dns_gethostbyname_r", "GLIBC_PRIVATE"};
next::Symbol<Byaddr2> glibc_byaddr2{"_nss_dns_gethostbyaddr2_r", "GLIBC_PRIVATE"};
next::Symbol<Byaddr> glibc_byaddr{"_nss_dns_gethostbyaddr_r", "GLIBC_PRIVATE"};
next::Symbol<Canonname> glibc_canonname{"_nss_dns_getcanonname_r", "GLIBC_PRIVATE"};

constexpr size_t kMaxHostName = 256;  // glibc's MAXHOSTNAMELEN in dns-host.c

enum class Route { glibc, glibc_on_pool, ares };

// Where this call is answered (see the file comment). On Route::ares,
// *config holds the search settings; free(config->domains) afterwards.
Route route(DnsSearchConfig* config) {
    if (!Hub::current_fiber() || !config::patched(config::kPatchDns)) return Route::glibc;
    if (getenv("HOSTALIASES")) return Route::glibc_on_pool;  // only glibc reads that file
    if (!resolver::search_config(config)) return Route::glibc;
    if (config->unsupported) {
        free(config->domains);
        return Route::glibc_on_pool;
    }
    return Route::ares;
}

// glibc's dns module on a pool thread. errnop is usually &errno of the
// hub's thread, which other fibers use meanwhile: the pool thread writes
// to locals, copied back once this fiber runs again.
template <typename Call>
nss_status on_pool(int* errnop, int* h_errnop, Call call) {
    int err = *errnop, herr = *h_errnop;
    nss_status status = offload(JobKind::io, [&] { return call(&err, &herr); });
    *errnop = err;
    *h_errnop = herr;
    return status;
}

// glibc's alloc_buffer: carves the caller's buffer; once an allocation
// fails, the buffer stays failed (the ERANGE protocol follows).
class AllocBuffer {
public:
    AllocBuffer(char* buffer, size_t size) : cur_(uintptr_t(buffer)), end_(uintptr_t(buffer) + size) {}
    void* alloc(size_t size, size_t align) {
        if (failed_) return nullptr;
        uintptr_t p = (cur_ + align - 1) & ~(uintptr_t(align) - 1);
        if (p < cur_ || p > end_ || end_ - p < size) {
            failed_ = true;
            return nullptr;
        }
        cur_ = p + size;
        return reinterpret_cast<void*>(p);
    }
    char* copy_string(const char* s) {
        size_t n = strlen(s) + 1;
        auto* d = static_cast<char*>(alloc(n, 1));
        if (d) memcpy(d, s, n);
        return d;
    }
    bool failed() const { return failed_; }

private:
    uintptr_t cur_, end_;
    bool failed_ = false;
};

// A growable list of pointers (glibc's ptrlist dynarray).
class PtrList {
public:
    ~PtrList() { free(items_); }
    void add(char* p) {
        if (failed_) return;
        if (size_ == capacity_) {
            size_t cap = capacity_ ? capacity_ * 2 : 16;
            auto* grown = static_cast<char**>(realloc(items_, cap * sizeof(char*)));
            if (!grown) {
                failed_ = true;
                return;
            }
            items_ = grown;
            capacity_ = cap;
        }
        items_[size_++] = p;
    }
    size_t size() const { return size_; }
    char** items() const { return items_; }
    bool failed() const { return failed_; }

private:
    char** items_ = nullptr;
    size_t size_ = 0, capacity_ = 0;
    bool failed_ = false;
};

int rdata_length(int type) { return type == ns_t_a ? 4 : type == ns_t_aaaa ? 16 : -1; }

// __res_binary_hnok on a name in a message.
bool name_hnok(const dns::MessageCursor& c, const unsigned char* name) {
    char text[NS_MAXDNAME];
    return c.name_text(name, text, sizeof text) && res_hnok(text);
}

bool same_name(const dns::MessageCursor& c, const unsigned char* a, const char* b_text) {
    char text[NS_MAXDNAME];
    return c.name_text(a, text, sizeof text) && strcasecmp(text, b_text) == 0;
}

void lower_ttl(int32_t* ttlp, uint32_t ttl) {
    if (ttlp && *ttlp > int32_t(ttl)) *ttlp = int32_t(ttl);
}

// getanswer_r_store_alias.
bool store_alias(const dns::MessageCursor& c, const unsigned char* name, AllocBuffer* abuf, PtrList* aliases) {
    char text[kMaxHostName + 1];
    if (!name_hnok(c, name) || !c.name_text(name, text, sizeof text)) return false;
    aliases->add(abuf->copy_string(text));
    return true;
}

// getanswer_r: the A or AAAA records of a reply, following CNAMEs.
nss_status getanswer(const unsigned char* packet, int len, int qtype, AllocBuffer* abuf, PtrList* addresses,
                     PtrList* aliases, int* errnop, int* h_errnop, int32_t* ttlp) {
    dns::MessageCursor c;
    if (!c.init(packet, len)) {
        *h_errnop = NO_RECOVERY;
        return NSS_STATUS_UNAVAIL;
    }
    if (c.rcode() == ns_r_nxdomain || !store_alias(c, c.qname(), abuf, aliases)) {
        if (ttlp) *ttlp = 0;
        *h_errnop = HOST_NOT_FOUND;
        *errnop = ENOENT;
        return NSS_STATUS_NOTFOUND;
    }
    char expected[NS_MAXDNAME];
    if (!c.name_text(c.qname(), expected, sizeof expected)) expected[0] = '\0';
    for (int n = c.ancount(); n > 0; --n) {
        dns::Record rr;
        if (!c.next(&rr)) {
            *h_errnop = NO_RECOVERY;
            return NSS_STATUS_UNAVAIL;
        }
        if (rr.rclass != ns_c_in) continue;
        if (rr.type == ns_t_cname || rr.type == qtype) lower_ttl(ttlp, rr.ttl);
        if (rr.type == ns_t_cname) {
            if (!c.name_text(rr.rdata, expected, sizeof expected)) {
                *h_errnop = NO_RECOVERY;
                return NSS_STATUS_UNAVAIL;
            }
            store_alias(c, rr.rdata, abuf, aliases);
        } else if (rr.type == qtype && same_name(c, rr.owner, expected) && rr.rdlength == rdata_length(qtype)) {
            auto* addr = static_cast<char*>(abuf->alloc(size_t(rr.rdlength), 4));
            if (addr) memcpy(addr, rr.rdata, size_t(rr.rdlength));
            addresses->add(addr);
        }
    }
    if (addresses->size() == 0) {
        if (ttlp) *ttlp = 0;
        *h_errnop = NO_RECOVERY;
        *errnop = ENOENT;
        return NSS_STATUS_TRYAGAIN;
    }
    *h_errnop = NETDB_SUCCESS;
    return NSS_STATUS_SUCCESS;
}

// gaih_getanswer_slice: one reply's addresses as gaih_addrtuples appended
// at **tailp; the first one carries the canonical name if store_canon.
nss_status getanswer_slice(const unsigned char* packet, int len, AllocBuffer* abuf, gaih_addrtuple*** tailp,
                           int* h_errnop, int32_t* ttlp, bool store_canon) {
    dns::MessageCursor c;
    if (!c.init(packet, len)) {
        *h_errnop = NO_RECOVERY;
        return NSS_STATUS_UNAVAIL;
    }
    const int qtype = c.qtype();
    const unsigned char* canon = c.qname();
    if (c.ancount() == 0 || !name_hnok(c, canon)) {
        *h_errnop = HOST_NOT_FOUND;
        return NSS_STATUS_NOTFOUND;
    }
    char expected[NS_MAXDNAME];
    if (!c.name_text(c.qname(), expected, sizeof expected)) expected[0] = '\0';
    bool have_answer = false;
    for (int n = c.ancount(); n > 0; --n) {
        dns::Record rr;
        if (!c.next(&rr)) {
            *h_errnop = NO_RECOVERY;
            return NSS_STATUS_UNAVAIL;
        }
        if (rr.type == ns_t_cname || rr.type == qtype) lower_ttl(ttlp, rr.ttl);
        if (rr.type == ns_t_cname) {
            if (!c.name_text(rr.rdata, expected, sizeof expected)) {
                *h_errnop = NO_RECOVERY;
                return NSS_STATUS_UNAVAIL;
            }
            if (store_canon && res_hnok(expected)) canon = rr.rdata;
        } else if (rr.type == qtype && same_name(c, rr.owner, expected) && rr.rdlength == rdata_length(qtype)) {
            auto* tuple = static_cast<gaih_addrtuple*>(abuf->alloc(sizeof(gaih_addrtuple), alignof(gaih_addrtuple)));
            if (!tuple) continue;  // the caller reports ERANGE
            tuple->next = nullptr;
            tuple->name = nullptr;
            if (store_canon) {
                char text[kMaxHostName + 1];
                if (c.name_text(canon, text, sizeof text)) tuple->name = abuf->copy_string(text);
                store_canon = false;
            }
            tuple->family = rr.rdlength == 4 ? AF_INET : AF_INET6;
            memcpy(tuple->addr, rr.rdata, size_t(rr.rdlength));
            tuple->scopeid = 0;
            **tailp = tuple;
            *tailp = &tuple->next;
            have_answer = true;
        }
    }
    *h_errnop = have_answer ? NETDB_SUCCESS : HOST_NOT_FOUND;
    return have_answer ? NSS_STATUS_SUCCESS : NSS_STATUS_NOTFOUND;
}

// gaih_getanswer: the A reply, then the AAAA reply, statuses combined as
// glibc combines them.
nss_status gaih_getanswer(const dns::SearchResult& r, AllocBuffer* abuf, gaih_addrtuple** pat, int* h_errnop,
                          int32_t* ttlp) {
    nss_status status = NSS_STATUS_NOTFOUND;
    gaih_addrtuple** tail = pat;
    if (r.len1 > 0) {
        status = getanswer_slice(r.packet1, r.len1, abuf, &tail, h_errnop, ttlp, true);
        if (abuf->failed()) return NSS_STATUS_TRYAGAIN;
    }
    if ((status == NSS_STATUS_SUCCESS || status == NSS_STATUS_NOTFOUND) && r.packet2 && r.len2 > 0) {
        nss_status status2 =
            getanswer_slice(r.packet2, r.len2, abuf, &tail, h_errnop, ttlp, status != NSS_STATUS_SUCCESS);
        if (status != NSS_STATUS_SUCCESS && status2 != NSS_STATUS_NOTFOUND) status = status2;
    }
    return status;
}

// What the dns module reports when res_search found nothing: the status
// from errno, h_errno as the resolver left it.
nss_status search_failure(const dns::SearchResult& r, int olderr, int* errnop, int* h_errnop) {
    nss_status status;
    int herr = r.h_errno_value;
    switch (r.errno_value) {
        case ESRCH:
            status = NSS_STATUS_TRYAGAIN;
            herr = TRY_AGAIN;
            break;
        case EMFILE:
        case ENFILE:
            herr = NETDB_INTERNAL;
            [[fallthrough]];
        case ECONNREFUSED:
        case ETIMEDOUT: status = NSS_STATUS_UNAVAIL; break;
        default: status = NSS_STATUS_NOTFOUND; break;
    }
    *h_errnop = herr;
    if (herr == TRY_AGAIN)
        *errnop = EAGAIN;
    else
        errno = olderr;
    return status;
}

bool check_name(const char* name, int* h_errnop) {
    if (res_hnok(name)) return true;
    *h_errnop = HOST_NOT_FOUND;
    return false;
}

nss_status byname4_ares(const char* name, gaih_addrtuple** pat, char* buffer, size_t buflen, int* errnop,
                        int* h_errnop, int32_t* ttlp, const DnsSearchConfig& config) {
    AllocBuffer abuf(buffer, buflen);
    const int olderr = errno;
    dns::SearchResult r;
    nss_status status;
    bool found = dns::search(name, dns::kTypeAandAAAA, config, &r);
    errno = r.errno_value;
    if (found)
        status = gaih_getanswer(r, &abuf, pat, h_errnop, ttlp);
    else
        status = search_failure(r, olderr, errnop, h_errnop);
    if (abuf.failed()) {
        *errnop = ERANGE;
        *h_errnop = NETDB_INTERNAL;
        status = NSS_STATUS_TRYAGAIN;
    }
    return status;
}

// gethostbyname3_context.
nss_status byname3_ares(const char* name, int af, hostent* result, char* buffer, size_t buflen, int* errnop,
                        int* h_errnop, int32_t* ttlp, char** canonp, const DnsSearchConfig& config) {
    int type;
    switch (af) {
        case AF_INET: type = ns_t_a; break;
        case AF_INET6: type = ns_t_aaaa; break;
        default:
            *h_errnop = NO_DATA;
            *errnop = EAFNOSUPPORT;
            return NSS_STATUS_UNAVAIL;
    }
    result->h_addrtype = af;
    result->h_length = rdata_length(type);
    const int olderr = errno;
    dns::SearchResult r;
    bool found = dns::search(name, type, config, &r);
    errno = r.errno_value;
    if (!found) return search_failure(r, olderr, errnop, h_errnop);

    AllocBuffer abuf(buffer, buflen);
    PtrList addresses, aliases;
    nss_status status = getanswer(r.packet1, r.len1, type, &abuf, &addresses, &aliases, errnop, h_errnop, ttlp);
    if (status != NSS_STATUS_SUCCESS) return status;
    if (addresses.failed() || aliases.failed()) {
        *errnop = ENOMEM;
        *h_errnop = NETDB_INTERNAL;
        return NSS_STATUS_UNAVAIL;
    }
    auto** addr_list = static_cast<char**>(abuf.alloc((addresses.size() + 1) * sizeof(char*), alignof(char*)));
    auto** alias_list = static_cast<char**>(abuf.alloc(aliases.size() * sizeof(char*), alignof(char*)));
    if (abuf.failed()) {
        *errnop = ERANGE;
        *h_errnop = NETDB_INTERNAL;
        return NSS_STATUS_TRYAGAIN;
    }
    memcpy(addr_list, addresses.items(), addresses.size() * sizeof(char*));
    addr_list[addresses.size()] = nullptr;
    // The last alias is the canonical name; the others stay aliases.
    memcpy(alias_list, aliases.items(), (aliases.size() - 1) * sizeof(char*));
    alias_list[aliases.size() - 1] = nullptr;
    result->h_addr_list = addr_list;
    result->h_aliases = alias_list;
    result->h_name = aliases.items()[aliases.size() - 1];
    if (canonp) *canonp = result->h_name;
    return NSS_STATUS_SUCCESS;
}

// getanswer_ptr: the first PTR record for the (CNAME-followed) name.
nss_status getanswer_ptr(const unsigned char* packet, int len, AllocBuffer* abuf, char** hnamep, int* errnop,
                         int* h_errnop, int32_t* ttlp) {
    dns::MessageCursor c;
    if (!c.init(packet, len)) {
        *h_errnop = NO_RECOVERY;
        return NSS_STATUS_UNAVAIL;
    }
    char expected[NS_MAXDNAME];
    if (!c.name_text(c.qname(), expected, sizeof expected)) expected[0] = '\0';
    for (int n = c.ancount(); n > 0;) {
        dns::Record rr;
        if (!c.next(&rr)) {
            *h_errnop = NO_RECOVERY;
            return NSS_STATUS_UNAVAIL;
        }
        // glibc's loop never decrements its count: it walks every record
        // until the message ends (c.next fails) or a PTR matches.
        if (rr.rclass != ns_c_in) continue;
        if (rr.type == ns_t_cname || rr.type == ns_t_ptr) lower_ttl(ttlp, rr.ttl);
        if (rr.type == ns_t_cname) {
            if (!c.name_text(rr.rdata, expected, sizeof expected)) {
                *h_errnop = NO_RECOVERY;
                return NSS_STATUS_UNAVAIL;
            }
        } else if (rr.type == ns_t_ptr && same_name(c, rr.owner, expected)) {
            char hname[kMaxHostName + 1];
            if (!res_hnok(expected) || !c.name_text(rr.rdata, hname, sizeof hname)) {
                *h_errnop = NO_RECOVERY;
                return NSS_STATUS_UNAVAIL;
            }
            *hnamep = abuf->copy_string(hname);
            return NSS_STATUS_SUCCESS;
        }
    }
    if (ttlp) *ttlp = 0;
    *h_errnop = NO_RECOVERY;
    *errnop = ENOENT;
    return NSS_STATUS_TRYAGAIN;
}

nss_status byaddr2_ares(const void* addr, socklen_t len, int af, hostent* result, char* buffer, size_t buflen,
                        int* errnop, int* h_errnop, int32_t* ttlp) {
    static const unsigned char mapped[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char tunnelled[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    static const unsigned char v6local[] = {0, 0, 0, 1};
    auto* uaddr = static_cast<const unsigned char*>(addr);
    AllocBuffer abuf(buffer, buflen);
    auto** address_array = static_cast<char**>(abuf.alloc(2 * sizeof(char*), alignof(char*)));
    if (!address_array) {
        *errnop = ERANGE;
        *h_errnop = NETDB_INTERNAL;
        return NSS_STATUS_TRYAGAIN;
    }
    if (af == AF_INET6 && len == 16 &&
        (memcmp(uaddr, mapped, sizeof mapped) == 0 ||
         (memcmp(uaddr, tunnelled, sizeof tunnelled) == 0 &&
          memcmp(uaddr + sizeof tunnelled, v6local, sizeof v6local) != 0))) {
        uaddr += sizeof mapped;
        af = AF_INET;
        len = 4;
    }
    socklen_t size = af == AF_INET ? 4 : af == AF_INET6 ? 16 : 0;
    if (size == 0 || size > len) {
        *errnop = EAFNOSUPPORT;
        *h_errnop = NETDB_INTERNAL;
        return NSS_STATUS_UNAVAIL;
    }
    char qname[NS_MAXDNAME + 1];
    if (af == AF_INET) {
        snprintf(qname, sizeof qname, "%u.%u.%u.%u.in-addr.arpa", uaddr[3], uaddr[2], uaddr[1], uaddr[0]);
    } else {
        static const char hex[] = "0123456789abcdef";
        char* q = qname;
        for (int i = 15; i >= 0; --i) {
            *q++ = hex[uaddr[i] & 0xf];
            *q++ = '.';
            *q++ = hex[uaddr[i] >> 4];
            *q++ = '.';
        }
        strcpy(q, "ip6.arpa");
    }
    const int olderr = errno;
    dns::SearchResult r;
    if (!dns::query(qname, ns_t_ptr, &r)) {
        *h_errnop = r.h_errno_value;
        errno = olderr;
        return olderr == ECONNREFUSED ? NSS_STATUS_UNAVAIL : NSS_STATUS_NOTFOUND;
    }
    errno = r.errno_value;
    nss_status status = getanswer_ptr(r.packet1, r.len1, &abuf, &result->h_name, errnop, h_errnop, ttlp);
    if (status != NSS_STATUS_SUCCESS) return status;
    result->h_addrtype = af;
    result->h_length = int(len);
    address_array[0] = static_cast<char*>(abuf.alloc(len, 4));
    if (address_array[0]) memcpy(address_array[0], uaddr, len);
    address_array[1] = nullptr;
    if (abuf.failed()) {
        *errnop = ERANGE;
        *h_errnop = NETDB_INTERNAL;
        return NSS_STATUS_TRYAGAIN;
    }
    result->h_addr_list = address_array;
    result->h_aliases = &address_array[1];
    *h_errnop = NETDB_SUCCESS;
    return NSS_STATUS_SUCCESS;
}

}  // namespace

GREENLD_EXPORT nss_status _nss_greenld_gethostbyname4_r(const char* name, gaih_addrtuple** pat, char* buffer,
                                                        size_t buflen, int* errnop, int* h_errnop, int32_t* ttlp) {
    DnsSearchConfig config;
    switch (route(&config)) {
        case Route::glibc: return glibc_byname4(name, pat, buffer, buflen, errnop, h_errnop, ttlp);
        case Route::glibc_on_pool:
            return on_pool(errnop, h_errnop, [&](int* e, int* h) {
                return glibc_byname4(name, pat, buffer, buflen, e, h, ttlp);
            });
        case Route::ares: break;
    }
    nss_status status = NSS_STATUS_NOTFOUND;
    if (check_name(name, h_errnop))
        status = byname4_ares(name, pat, buffer, buflen, errnop, h_errnop, ttlp, config);
    free(config.domains);
    return status;
}

GREENLD_EXPORT nss_status _nss_greenld_gethostbyname3_r(const char* name, int af, hostent* result, char* buffer,
                                                        size_t buflen, int* errnop, int* h_errnop, int32_t* ttlp,
                                                        char** canonp) {
    DnsSearchConfig config;
    switch (route(&config)) {
        case Route::glibc: return glibc_byname3(name, af, result, buffer, buflen, errnop, h_errnop, ttlp, canonp);
        case Route::glibc_on_pool:
            return on_pool(errnop, h_errnop, [&](int* e, int* h) {
                return glibc_byname3(name, af, result, buffer, buflen, e, h, ttlp, canonp);
            });
        case Route::ares: break;
    }
    nss_status status = byname3_ares(name, af, result, buffer, buflen, errnop, h_errnop, ttlp, canonp, config);
    free(config.domains);
    return status;
}

GREENLD_EXPORT nss_status _nss_greenld_gethostbyname2_r(const char* name, int af, hostent* result, char* buffer,
                                                        size_t buflen, int* errnop, int* h_errnop) {
    DnsSearchConfig config;
    switch (route(&config)) {
        case Route::glibc: return glibc_byname2(name, af, result, buffer, buflen, errnop, h_errnop);
        case Route::glibc_on_pool:
            return on_pool(errnop, h_errnop, [&](int* e, int* h) {
                return glibc_byname2(name, af, result, buffer, buflen, e, h);
            });
        case Route::ares: break;
    }
    nss_status status = NSS_STATUS_NOTFOUND;
    if (check_name(name, h_errnop))
        status = byname3_ares(name, af, result, buffer, buflen, errnop, h_errnop, nullptr, nullptr, config);
    free(config.domains);
    return status;
}

GREENLD_EXPORT nss_status _nss_greenld_gethostbyname_r(const char* name, hostent* result, char* buffer, size_t buflen,
                                                       int* errnop, int* h_errnop) {
    DnsSearchConfig config;
    switch (route(&config)) {
        case Route::glibc: return glibc_byname(name, result, buffer, buflen, errnop, h_errnop);
        case Route::glibc_on_pool:
            return on_pool(errnop, h_errnop,
                           [&](int* e, int* h) { return glibc_byname(name, result, buffer, buflen, e, h); });
        case Route::ares: break;
    }
    nss_status status = NSS_STATUS_NOTFOUND;
    if (check_name(name, h_errnop))
        status = byname3_ares(name, AF_INET, result, buffer, buflen, errnop, h_errnop, nullptr, nullptr, config);
    free(config.domains);
    return status;
}

GREENLD_EXPORT nss_status _nss_greenld_gethostbyaddr2_r(const void* addr, socklen_t len, int af, hostent* result,
                                                        char* buffer, size_t buflen, int* errnop, int* h_errnop,
                                                        int32_t* ttlp) {
    DnsSearchConfig config;
    switch (route(&config)) {
        case Route::glibc: return glibc_byaddr2(addr, len, af, result, buffer, buflen, errnop, h_errnop, ttlp);
        case Route::glibc_on_pool:
            return on_pool(errnop, h_errnop, [&](int* e, int* h) {
                return glibc_byaddr2(addr, len, af, result, buffer, buflen, e, h, ttlp);
            });
        case Route::ares: break;
    }
    free(config.domains);
    return byaddr2_ares(addr, len, af, result, buffer, buflen, errnop, h_errnop, ttlp);
}

GREENLD_EXPORT nss_status _nss_greenld_gethostbyaddr_r(const void* addr, socklen_t len, int af, hostent* result,
                                                       char* buffer, size_t buflen, int* errnop, int* h_errnop) {
    if (!Hub::current_fiber() || !config::patched(config::kPatchDns))
        return glibc_byaddr(addr, len, af, result, buffer, buflen, errnop, h_errnop);
    return _nss_greenld_gethostbyaddr2_r(addr, len, af, result, buffer, buflen, errnop, h_errnop, nullptr);
}

// Rarely used (getaddrinfo asks it only when no source gave a canonical
// name): glibc's, on the pool when a fiber asks.
GREENLD_EXPORT nss_status _nss_greenld_getcanonname_r(const char* name, char* buffer, size_t buflen, char** result,
                                                      int* errnop, int* h_errnop) {
    if (!Hub::current_fiber() || !config::patched(config::kPatchDns))
        return glibc_canonname(name, buffer, buflen, result, errnop, h_errnop);
    return on_pool(errnop, h_errnop,
                   [&](int* e, int* h) { return glibc_canonname(name, buffer, buflen, result, e, h); });
}
