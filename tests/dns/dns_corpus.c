// Differential DNS corpus: resolves names x families x flags x services
// with getaddrinfo, gethostbyname(2)(_r), gethostbyaddr, getnameinfo and
// prints every result (or error code, h_errno, errno) in one canonical
// line each. Run natively and under greenld inside tests/dns/dns_env.sh:
// the outputs must be identical. The lookups are spread over 8 threads
// (fibers under greenld) so several are in flight at once; the lines are
// printed in corpus order.
//
// Usage: dns_corpus [--count] [--timeouts]
//   --count: print the number of lookups only
//   --timeouts: also names no server answers (each lookup waits for the
//   resolv.conf timeout; use with a short one)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

enum kind { GAI, GHBN, GHBN2, GHBN_R, GHBA, GNI };
struct entry {
    enum kind kind;
    const char* name;
    const char* service;
    int family, flags, socktype;
    char* out;
};

static struct entry* entries;
static int n_entries, cap_entries;

static void add(enum kind kind, const char* name, const char* service, int family, int flags, int socktype) {
    if (n_entries == cap_entries) {
        cap_entries = cap_entries ? 2 * cap_entries : 256;
        entries = realloc(entries, sizeof *entries * (size_t)cap_entries);
    }
    entries[n_entries++] = (struct entry){kind, name, service, family, flags, socktype, NULL};
}

struct text {
    char* buf;
    size_t len, cap;
};
static void put(struct text* t, const char* fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (t->buf && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        t->cap = (t->cap + (size_t)n + 1) * 2;
        t->buf = realloc(t->buf, t->cap);
        if (!t->len) t->buf[0] = '\0';
    }
}

static const char* fam(int f) {
    return f == AF_INET ? "inet" : f == AF_INET6 ? "inet6" : f == AF_UNSPEC ? "unspec" : "other";
}

static void put_sockaddr(struct text* t, const struct sockaddr* sa) {
    char a[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in* s = (const void*)sa;
        put(t, "%s:%u", inet_ntop(AF_INET, &s->sin_addr, a, sizeof a), ntohs(s->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6* s = (const void*)sa;
        put(t, "[%s]:%u%%%u", inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof a), ntohs(s->sin6_port), s->sin6_scope_id);
    } else {
        put(t, "family%d", sa->sa_family);
    }
}

static void put_hostent(struct text* t, const struct hostent* h) {
    put(t, " name=%s type=%s len=%d aliases=[", h->h_name, fam(h->h_addrtype), h->h_length);
    for (char** a = h->h_aliases; *a; ++a) put(t, "%s%s", a == h->h_aliases ? "" : " ", *a);
    put(t, "] addrs=[");
    for (char** a = h->h_addr_list; *a; ++a) {
        char s[INET6_ADDRSTRLEN];
        put(t, "%s%s", a == h->h_addr_list ? "" : " ", inet_ntop(h->h_addrtype, *a, s, sizeof s));
    }
    put(t, "]");
}

static int parse_addr(const char* text, struct sockaddr_storage* ss, socklen_t* len) {
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in* s4 = (void*)ss;
    struct sockaddr_in6* s6 = (void*)ss;
    if (inet_pton(AF_INET, text, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(80);
        *len = sizeof *s4;
        return AF_INET;
    }
    if (inet_pton(AF_INET6, text, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(53);
        *len = sizeof *s6;
        return AF_INET6;
    }
    return -1;
}

// gethostbyname, gethostbyname2 and gethostbyaddr share one result buffer
// in glibc: the program must not call them from two threads at once.
static pthread_mutex_t static_result_lock = PTHREAD_MUTEX_INITIALIZER;

static void run(struct entry* e) {
    struct text t = {0};
    int herr = 0;
    switch (e->kind) {
        case GAI: {
            put(&t, "getaddrinfo(%s, %s, %s, flags=%#x, socktype=%d):", e->name ? e->name : "NULL",
                e->service ? e->service : "NULL", fam(e->family), e->flags, e->socktype);
            struct addrinfo hints = {.ai_family = e->family, .ai_flags = e->flags, .ai_socktype = e->socktype};
            struct addrinfo* res = NULL;
            errno = 0;
            int rc = getaddrinfo(e->name, e->service, &hints, &res);
            if (rc) {
                put(&t, " rc=%d (%s)", rc, gai_strerror(rc));
                if (rc == EAI_SYSTEM) put(&t, " errno=%d", errno);
                break;
            }
            for (struct addrinfo* ai = res; ai; ai = ai->ai_next) {
                put(&t, "\n    %s sock=%d proto=%d flags=%#x ", fam(ai->ai_family), ai->ai_socktype, ai->ai_protocol,
                    ai->ai_flags);
                put_sockaddr(&t, ai->ai_addr);
                if (ai->ai_canonname) put(&t, " canon=%s", ai->ai_canonname);
            }
            freeaddrinfo(res);
            break;
        }
        case GHBN:
        case GHBN2: {
            put(&t, "%s(%s%s):", e->kind == GHBN ? "gethostbyname" : "gethostbyname2", e->name,
                e->kind == GHBN2 ? (e->family == AF_INET6 ? ", inet6" : ", inet") : "");
            pthread_mutex_lock(&static_result_lock);
            h_errno = 0;
            struct hostent* h = e->kind == GHBN ? gethostbyname(e->name) : gethostbyname2(e->name, e->family);
            if (h) put_hostent(&t, h);
            else put(&t, " NULL h_errno=%d", h_errno);
            pthread_mutex_unlock(&static_result_lock);
            break;
        }
        case GHBN_R: {
            put(&t, "gethostbyname_r(%s):", e->name);
            struct hostent he, *r = NULL;
            char buf[64];  // small: the ERANGE protocol is part of the test
            size_t size = sizeof buf;
            char* big = NULL;
            int rc;
            for (;;) {
                rc = gethostbyname_r(e->name, &he, big ? big : buf, size, &r, &herr);
                if (rc != ERANGE) break;
                size *= 2;
                big = realloc(big, size);
            }
            put(&t, " rc=%d", rc);
            if (r) put_hostent(&t, r);
            else put(&t, " NULL h_errno=%d", herr);
            free(big);
            break;
        }
        case GHBA: {
            put(&t, "gethostbyaddr(%s):", e->name);
            struct sockaddr_storage ss;
            socklen_t len;
            int f = parse_addr(e->name, &ss, &len);
            const void* a = f == AF_INET ? (const void*)&((struct sockaddr_in*)&ss)->sin_addr
                                         : (const void*)&((struct sockaddr_in6*)&ss)->sin6_addr;
            pthread_mutex_lock(&static_result_lock);
            h_errno = 0;
            struct hostent* h = gethostbyaddr(a, f == AF_INET ? 4 : 16, f);
            if (h) put_hostent(&t, h);
            else put(&t, " NULL h_errno=%d", h_errno);
            pthread_mutex_unlock(&static_result_lock);
            break;
        }
        case GNI: {
            put(&t, "getnameinfo(%s, flags=%#x):", e->name, e->flags);
            struct sockaddr_storage ss;
            socklen_t len;
            parse_addr(e->name, &ss, &len);
            char host[NI_MAXHOST], serv[NI_MAXSERV];
            errno = 0;
            int rc = getnameinfo((struct sockaddr*)&ss, len, host, sizeof host, serv, sizeof serv, e->flags);
            if (rc) put(&t, " rc=%d (%s)%s", rc, gai_strerror(rc), rc == EAI_SYSTEM ? " system" : "");
            else put(&t, " host=%s serv=%s", host, serv);
            break;
        }
    }
    e->out = t.buf;
}

static int next_entry;
static pthread_mutex_t next_lock = PTHREAD_MUTEX_INITIALIZER;

static void* worker(void* arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&next_lock);
        int i = next_entry++;
        pthread_mutex_unlock(&next_lock);
        if (i >= n_entries) return NULL;
        run(&entries[i]);
    }
}

static void build_corpus(int with_timeouts) {
    static const char* names[] = {
        "dual.test", "v4.test", "v6.test", "multi.py.test", "mixed.test", "www.test", "chain.test", "x.wild.test",
        "dual", "v4", "www", "Dual.Test", "dual.test.", "v4.test.", "ptr-only.test", "hostsname.local",
        "hostsalias", "multi-hosts.local", "mh", "mh6", "localhost", "nosuch.test", "nosuch", "nosuch.test.",
        "slow.py.test", "v4slow.py.test", "refused.py.test", "servfail.py.test", "10.0.0.1", "fd00::1", "127.1",
        "bad_name!.test", "", "a..b.test", "multi", "slow", "refused", "servfail", "x.y.nosuch", "big.py.test",
        "drop.py.test", "drop",  // last: only with --timeouts
    };
    static const int families[] = {AF_UNSPEC, AF_INET, AF_INET6};
    static const int flagsets[] = {0, AI_CANONNAME, AI_ADDRCONFIG, AI_V4MAPPED, AI_V4MAPPED | AI_ALL,
                                   AI_NUMERICHOST, AI_CANONNAME | AI_ADDRCONFIG | AI_V4MAPPED};
    const int n_names = (int)(sizeof names / sizeof *names) - (with_timeouts ? 0 : 2);
    for (int i = 0; i < n_names; ++i)
        for (unsigned f = 0; f < 3; ++f)
            for (unsigned g = 0; g < sizeof flagsets / sizeof *flagsets; ++g)
                add(GAI, names[i], NULL, families[f], flagsets[g], 0);
    // Services and socket types.
    static const char* svc_names[] = {"dual.test", "multi.py.test", "multi-hosts.local", "nosuch.test"};
    static const struct {
        const char* service;
        int socktype;
    } services[] = {{"http", 0}, {"http", SOCK_STREAM}, {"80", 0}, {"domain", SOCK_DGRAM},
                    {"nosuchservice", 0}, {"80", SOCK_RAW}, {"65536", 0}};
    for (unsigned i = 0; i < sizeof svc_names / sizeof *svc_names; ++i)
        for (unsigned s = 0; s < sizeof services / sizeof *services; ++s) {
            add(GAI, svc_names[i], services[s].service, AF_UNSPEC, 0, services[s].socktype);
            add(GAI, svc_names[i], services[s].service, AF_INET6, AI_NUMERICSERV, services[s].socktype);
        }
    // No host; bad flags and families.
    add(GAI, NULL, "80", AF_UNSPEC, AI_PASSIVE, SOCK_STREAM);
    add(GAI, NULL, "80", AF_UNSPEC, 0, SOCK_STREAM);
    add(GAI, NULL, NULL, AF_UNSPEC, 0, 0);
    add(GAI, "dual.test", NULL, AF_UNSPEC, 0x8000, 0);
    add(GAI, "dual.test", NULL, 12345, 0, 0);
    add(GAI, "dual.test", NULL, AF_UNSPEC, AI_CANONNAME, 0);
    add(GAI, "dual.test", "http", AF_UNSPEC, AI_NUMERICSERV, 0);
    // The hostent calls.
    for (int i = 0; i < n_names; ++i) {
        add(GHBN, names[i], NULL, AF_INET, 0, 0);
        add(GHBN2, names[i], NULL, AF_INET6, 0, 0);
        add(GHBN2, names[i], NULL, AF_INET, 0, 0);
        add(GHBN_R, names[i], NULL, AF_INET, 0, 0);
    }
    static const char* addrs[] = {"10.0.0.1", "10.0.0.5", "10.0.0.99", "fd00::1", "10.9.0.1", "::ffff:10.0.0.1",
                                  "127.0.0.1", "fd00::9"};
    static const int ni_flags[] = {0, NI_NAMEREQD, NI_NUMERICHOST, NI_NOFQDN, NI_NUMERICSERV | NI_DGRAM};
    for (unsigned i = 0; i < sizeof addrs / sizeof *addrs; ++i) {
        add(GHBA, addrs[i], NULL, 0, 0, 0);
        for (unsigned f = 0; f < sizeof ni_flags / sizeof *ni_flags; ++f) add(GNI, addrs[i], NULL, 0, ni_flags[f], 0);
    }
}

int main(int argc, char** argv) {
    int count_only = 0, with_timeouts = 0;
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--count") == 0) count_only = 1;
        else if (strcmp(argv[i], "--timeouts") == 0) with_timeouts = 1;
        else {
            fprintf(stderr, "dns_corpus: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    build_corpus(with_timeouts);
    if (count_only) {
        printf("%d\n", n_entries);
        return 0;
    }
    enum { kThreads = 8 };
    pthread_t th[kThreads];
    for (int i = 0; i < kThreads; ++i) pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < kThreads; ++i) pthread_join(th[i], NULL);
    for (int i = 0; i < n_entries; ++i) printf("%s\n", entries[i].out);
    return 0;
}
