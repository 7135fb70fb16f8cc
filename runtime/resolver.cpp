#include "resolver.h"

#include <ares.h>
#include <arpa/nameser.h>
#include <ev.h>
#include <resolv.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <strings.h>

#include "diag.h"
#include "hub.h"
#include "native.h"
#include "signals.h"

namespace greenld::resolver {
namespace {

constexpr const char* kResolvConf = "/etc/resolv.conf";

struct Channel;

// One c-ares socket's readiness watcher.
struct SocketWatch {
    SocketWatch* next = nullptr;
    Channel* channel = nullptr;
    ev_io io;
};

// What identifies a version of resolv.conf (glibc's file_change_detection
// looks at the same fields).
struct FileStamp {
    bool exists = false;
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    long mtime_sec = 0, mtime_nsec = 0, ctime_sec = 0, ctime_nsec = 0;
    bool operator==(const FileStamp&) const = default;
};

struct Sent;

struct Channel {
    ares_channel ares = nullptr;
    Sent* in_flight = nullptr;  // questions asked and not answered yet
    Hub* hub = nullptr;
    ev_timer timer;
    SocketWatch* watches = nullptr;
    // Fibers inside ask() on this channel. Fibers of one hub run one at a
    // time, so exactly one of them sees the count drop to 0 (c-ares
    // callbacks may finish several batches in one loop iteration).
    int users = 0;
    bool retired = false;   // resolv.conf changed: ends when users reaches 0
    struct ares_options saved = {};
    int saved_mask = 0;
    DnsSearchConfig config;
    FileStamp stamp;
    Channel* next_registered = nullptr;
};

// The channel of this hub thread (a hub is one OS thread).
thread_local Channel* t_channel = nullptr;

// Every live channel, so that a fork child can close their sockets.
native::Mutex g_registry_lock;
Channel* g_registry = nullptr;

FileStamp stamp_of(const char* path) {
    FileStamp s;
    struct stat st;
    if (native::sys(SYS_newfstatat, AT_FDCWD, long(path), long(&st), 0) != 0) return s;
    s.exists = true;
    s.dev = st.st_dev;
    s.ino = st.st_ino;
    s.size = st.st_size;
    s.mtime_sec = st.st_mtim.tv_sec;
    s.mtime_nsec = st.st_mtim.tv_nsec;
    s.ctime_sec = st.st_ctim.tv_sec;
    s.ctime_nsec = st.st_ctim.tv_nsec;
    return s;
}

// One ask(): the fiber and how many of its questions are still out.
struct Batch {
    Fiber* waiter;
    Channel* channel;
    int remaining;
};
struct Sent {
    Batch* batch;
    DnsQuestion* question;
    Sent* next_in_flight;
};

// A message read from a server: marks the questions in flight with the
// same name and type as replied to (see DnsQuestion::replied). A TCP read
// of the 2-byte length simply matches nothing.
void note_reply(Channel* ch, const unsigned char* msg, size_t len) {
    if (len < 12 || msg[4] != 0 || msg[5] != 1 || !ch->in_flight) return;
    char name[256];
    size_t pos = 12, out = 0;
    while (pos < len && msg[pos] != 0) {
        size_t label = msg[pos];
        if (label > 63 || pos + 1 + label > len || out + label + 1 >= sizeof name) return;
        if (out) name[out++] = '.';
        memcpy(name + out, msg + pos + 1, label);
        out += label;
        pos += 1 + label;
    }
    if (pos + 5 > len) return;
    name[out] = '\0';
    const int type = (msg[pos + 1] << 8) | msg[pos + 2];
    for (Sent* s = ch->in_flight; s; s = s->next_in_flight) {
        DnsQuestion* q = s->question;
        size_t n = strlen(q->name);
        if (n && q->name[n - 1] == '.') --n;
        if (q->type == type && n == out && strncasecmp(q->name, name, n) == 0) {
            q->replied = true;
            q->reply_rcode = msg[3] & 0x0f;
        }
    }
}

// --- c-ares's socket calls, as raw system calls ---------------------------
// Through the PLT they would reach our own socket wrappers; c-ares wants
// non-blocking sockets and drives readiness through the hub itself.

long set_errno(long r) {
    if (r < 0) {
        errno = int(-r);
        return -1;
    }
    return r;
}

ares_socket_t raw_socket(int domain, int type, int protocol, void*) {
    return ares_socket_t(
        set_errno(native::sys(SYS_socket, domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol)));
}
int raw_close(ares_socket_t fd, void*) { return int(set_errno(native::sys(SYS_close, fd))); }
int raw_connect(ares_socket_t fd, const struct sockaddr* addr, ares_socklen_t len, void*) {
    return int(set_errno(native::sys(SYS_connect, fd, long(addr), len)));
}
void note_reply(Channel* ch, const unsigned char* msg, size_t len);

ares_ssize_t raw_recvfrom(ares_socket_t fd, void* buf, size_t len, int flags, struct sockaddr* from,
                          ares_socklen_t* from_len, void* channel) {
    long r = native::sys(SYS_recvfrom, fd, long(buf), long(len), flags, long(from), long(from_len));
    if (r > 0) note_reply(static_cast<Channel*>(channel), static_cast<const unsigned char*>(buf), size_t(r));
    return set_errno(r);
}
// A UDP socket reports the ICMP "port unreachable" of an earlier datagram
// to whichever call comes next. Taken by the send of a second question, it
// would make c-ares give up on that question's server only, while the first
// question waits there for its whole timeout (glibc moves on at once). The
// send is made again: the error then arrives, on a read, for both.
ares_ssize_t raw_sendv(ares_socket_t fd, const struct iovec* iov, int n, void*) {
    long r = native::sys(SYS_writev, fd, long(iov), n);
    if (r == -ECONNREFUSED) r = native::sys(SYS_writev, fd, long(iov), n);
    return set_errno(r);
}
const struct ares_socket_functions kRawSockets = {raw_socket, raw_close, raw_connect, raw_recvfrom, raw_sendv};

// --- driving c-ares from the hub's loop ----------------------------------

void rearm_timer(Channel* ch) {
    struct ev_loop* loop = ch->hub->loop();
    ev_timer_stop(loop, &ch->timer);
    struct timeval tv;
    if (struct timeval* t = ares_timeout(ch->ares, nullptr, &tv)) {
        ev_timer_set(&ch->timer, double(t->tv_sec) + double(t->tv_usec) / 1e6, 0.);
        ev_timer_start(loop, &ch->timer);
    }
}

void on_io(struct ev_loop*, ev_io* w, int revents) {
    auto* watch = static_cast<SocketWatch*>(w->data);
    Channel* ch = watch->channel;
    const int fd = w->fd;
    // ares_process_fd may close the socket and free `watch`.
    ares_process_fd(ch->ares, (revents & EV_READ) ? fd : ARES_SOCKET_BAD,
                    (revents & EV_WRITE) ? fd : ARES_SOCKET_BAD);
    rearm_timer(ch);
}

void on_timer(struct ev_loop*, ev_timer* w, int) {
    auto* ch = static_cast<Channel*>(w->data);
    ares_process_fd(ch->ares, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    rearm_timer(ch);
}

// c-ares says which of its sockets it wants to hear about.
void on_socket_state(void* data, ares_socket_t fd, int readable, int writable) {
    auto* ch = static_cast<Channel*>(data);
    struct ev_loop* loop = ch->hub->loop();
    SocketWatch** link = &ch->watches;
    while (*link && (*link)->io.fd != fd) link = &(*link)->next;
    SocketWatch* watch = *link;
    if (!readable && !writable) {
        if (watch) {
            ev_io_stop(loop, &watch->io);
            *link = watch->next;
            delete watch;
        }
        return;
    }
    if (!watch) {
        watch = new SocketWatch;
        watch->channel = ch;
        ev_io_init(&watch->io, on_io, fd, 0);
        watch->io.data = watch;
        watch->next = ch->watches;
        ch->watches = watch;
    }
    ev_io_stop(loop, &watch->io);
    ev_io_set(&watch->io, fd, (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
    ev_io_start(loop, &watch->io);
}

// --- what resolv.conf says that c-ares 1.18 does not read -----------------

// The resolv.conf options that c-ares is given explicitly: it reads only
// ndots, retrans, retry and rotate itself, and defaults to 4 tries of 5 s
// where glibc makes 2 (RES_DFLRETRY).
struct TransportOptions {
    int timeout_s = 5;   // glibc's RES_TIMEOUT, at most RES_MAXRETRANS (30)
    int attempts = 2;    // RES_DFLRETRY, at most RES_MAXRETRY (5)
    bool rotate = false;
};

int option_number(const char* text, size_t len, int max) {
    int v = 0;
    for (size_t i = 0; i < len && text[i] >= '0' && text[i] <= '9' && v <= max; ++i) v = v * 10 + (text[i] - '0');
    return v > max ? max : v;
}

// resolv.conf options this layer reproduces exactly; any other option (or a
// sortlist) makes the caller fall back to glibc. ndots/timeout/attempts/
// rotate reach c-ares; no-tld-query changes the search; the rest change
// nothing an answer shows.
bool option_supported(const char* opt, size_t len, DnsSearchConfig* config, TransportOptions* transport) {
    auto is = [&](const char* name) { return strlen(name) == len && memcmp(opt, name, len) == 0; };
    auto starts = [&](const char* prefix) { return len > strlen(prefix) && memcmp(opt, prefix, strlen(prefix)) == 0; };
    if (is("no-tld-query")) {
        config->no_tld_query = true;
        return true;
    }
    if (starts("timeout:")) {
        transport->timeout_s = option_number(opt + 8, len - 8, 30);
        if (transport->timeout_s < 1) transport->timeout_s = 1;
        return true;
    }
    if (starts("attempts:")) {
        transport->attempts = option_number(opt + 9, len - 9, 5);
        if (transport->attempts < 1) transport->attempts = 1;
        return true;
    }
    if (is("rotate")) {
        transport->rotate = true;
        return true;
    }
    return starts("ndots:") || is("debug") || is("single-request") || is("single-request-reopen") ||
           is("trust-ad") || is("no-reload");
}

void scan_options(const char* p, const char* end, DnsSearchConfig* config, TransportOptions* transport) {
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t')) ++p;
        const char* start = p;
        while (p < end && *p != ' ' && *p != '\t' && *p != '\n') ++p;
        if (p > start && !option_supported(start, size_t(p - start), config, transport)) config->unsupported = true;
        if (p < end && *p == '\n') break;
    }
}

void scan_resolv_conf(DnsSearchConfig* config, TransportOptions* transport) {
    static constexpr size_t kMax = 64 * 1024;
    if (char* text = static_cast<char*>(malloc(kMax + 1))) {
        const long read = native::read_file(kResolvConf, text, kMax + 1);
        const size_t len = read > 0 ? size_t(read) : 0;
        for (const char* line = text; line < text + len;) {
            const char* eol = static_cast<const char*>(memchr(line, '\n', size_t(text + len - line)));
            if (!eol) eol = text + len;
            if (eol - line > 7 && memcmp(line, "options", 7) == 0 && (line[7] == ' ' || line[7] == '\t'))
                scan_options(line + 8, eol, config, transport);
            else if (eol - line >= 8 && memcmp(line, "sortlist", 8) == 0)
                config->unsupported = true;
            line = eol + 1;
        }
        free(text);
    }
    if (const char* env = getenv("RES_OPTIONS")) scan_options(env, env + strlen(env), config, transport);
}

// --- channels ---------------------------------------------------------------

void destroy(Channel* ch) {
    {
        native::LockGuard guard(g_registry_lock);
        Channel** link = &g_registry;
        while (*link && *link != ch) link = &(*link)->next_registered;
        if (*link) *link = ch->next_registered;
    }
    ares_destroy(ch->ares);  // closes its sockets; on_socket_state frees the watches
    ev_timer_stop(ch->hub->loop(), &ch->timer);
    while (SocketWatch* w = ch->watches) {  // none are left, unless c-ares skipped a callback
        ev_io_stop(ch->hub->loop(), &w->io);
        ch->watches = w->next;
        delete w;
    }
    ares_destroy_options(&ch->saved);
    delete ch;
}

Channel* make_channel() {
    static std::atomic<bool> library_ready{false};
    if (!library_ready.load(std::memory_order_acquire)) {
        static native::Mutex init_lock;
        native::LockGuard guard(init_lock);
        if (!library_ready.load(std::memory_order_relaxed)) {
            int rc = ares_library_init(ARES_LIB_INIT_ALL);
            if (rc != ARES_SUCCESS) {
                diag::message("c-ares: %s; DNS lookups in threads block their hub", ares_strerror(rc));
                return nullptr;
            }
            library_ready.store(true, std::memory_order_release);
        }
    }
    auto* ch = new Channel;
    ch->hub = Hub::current();
    ch->stamp = stamp_of(kResolvConf);
    TransportOptions transport;
    scan_resolv_conf(&ch->config, &transport);
    struct ares_options opts = {};
    opts.sock_state_cb = on_socket_state;
    opts.sock_state_cb_data = ch;
    opts.timeout = transport.timeout_s * 1000;
    opts.tries = transport.attempts;
    int rc = ares_init_options(&ch->ares, &opts,
                               ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
                                   (transport.rotate ? ARES_OPT_ROTATE : ARES_OPT_NOROTATE));
    if (rc == ARES_SUCCESS) rc = ares_save_options(ch->ares, &ch->saved, &ch->saved_mask);
    if (rc != ARES_SUCCESS) {
        static std::atomic<bool> reported{false};
        if (!reported.exchange(true))
            diag::message("c-ares channel: %s; DNS lookups in threads block their hub", ares_strerror(rc));
        if (ch->ares) ares_destroy(ch->ares);
        delete ch;
        return nullptr;
    }
    ares_set_socket_functions(ch->ares, &kRawSockets, ch);
    // glibc uses the first MAXNS (3) nameservers of resolv.conf; c-ares all.
    struct ares_addr_port_node* servers = nullptr;
    if (ares_get_servers_ports(ch->ares, &servers) == ARES_SUCCESS && servers) {
        struct ares_addr_port_node* last = servers;
        for (int i = 1; i < MAXNS && last->next; ++i) last = last->next;
        if (last->next) {
            struct ares_addr_port_node* rest = last->next;
            last->next = nullptr;
            ares_set_servers_ports(ch->ares, servers);
            last->next = rest;
        }
        ares_free_data(servers);
    }
    // glibc caps ndots at RES_MAXNDOTS.
    ch->config.ndots = ch->saved.ndots < 15 ? ch->saved.ndots : 15;
    ch->config.ndomains = ch->saved.ndomains;
    ch->config.domains = ch->saved.domains;
    ev_timer_init(&ch->timer, on_timer, 0., 0.);
    ch->timer.data = ch;
    native::LockGuard guard(g_registry_lock);
    ch->next_registered = g_registry;
    g_registry = ch;
    return ch;
}

// glibc looks at resolv.conf's identity on every lookup (one stat); so do
// we, and a changed file gets a fresh channel.
Channel* current_channel() {
    Channel* ch = t_channel;
    if (ch && !(stamp_of(kResolvConf) == ch->stamp)) {
        ch->retired = true;
        if (ch->users == 0) destroy(ch);
        t_channel = ch = nullptr;
    }
    if (!ch) t_channel = ch = make_channel();
    return ch;
}


void on_answer(void* arg, int status, int, unsigned char* reply, int reply_len) {
    auto* sent = static_cast<Sent*>(arg);
    DnsQuestion* q = sent->question;
    Sent** link = &sent->batch->channel->in_flight;
    while (*link && *link != sent) link = &(*link)->next_in_flight;
    if (*link) *link = sent->next_in_flight;
    q->status = status;
    if (reply && reply_len > 0) {
        q->reply = static_cast<unsigned char*>(malloc(size_t(reply_len)));
        if (q->reply) {
            memcpy(q->reply, reply, size_t(reply_len));
            q->reply_len = reply_len;
        }
    }
    Batch* batch = sent->batch;
    // Called from the hub's loop, or from inside ares_query before the
    // fiber parked (then the count alone tells it not to park).
    if (--batch->remaining == 0) Hub::unpark(batch->waiter);
}

}  // namespace

bool search_config(DnsSearchConfig* config) {
    Channel* ch = current_channel();
    if (!ch) return false;
    *config = ch->config;
    // A copy: the channel may be replaced (resolv.conf changed) while the
    // caller walks its search list.
    size_t bytes = sizeof(char*) * size_t(ch->config.ndomains + 1);
    for (int i = 0; i < ch->config.ndomains; ++i) bytes += strlen(ch->config.domains[i]) + 1;
    auto** copy = static_cast<char**>(malloc(bytes));
    if (!copy) return false;
    char* text = reinterpret_cast<char*>(copy + ch->config.ndomains + 1);
    for (int i = 0; i < ch->config.ndomains; ++i) {
        size_t len = strlen(ch->config.domains[i]) + 1;
        memcpy(text, ch->config.domains[i], len);
        copy[i] = text;
        text += len;
    }
    copy[ch->config.ndomains] = nullptr;
    config->domains = copy;
    return true;
}

bool ask(DnsQuestion* questions, int n) {
    constexpr int kMaxQuestions = 4;
    if (n <= 0 || n > kMaxQuestions) return false;
    Channel* ch = current_channel();
    if (!ch) return false;
    Batch batch{Hub::current_fiber(), ch, n};
    Sent sent[kMaxQuestions];
    ++ch->users;
    for (int i = 0; i < n; ++i) {
        sent[i] = Sent{&batch, &questions[i], ch->in_flight};
        ch->in_flight = &sent[i];
        questions[i].status = -1;
        questions[i].reply = nullptr;
        questions[i].reply_len = 0;
        questions[i].replied = false;
        questions[i].reply_rcode = 0;
        ares_query(ch->ares, questions[i].name, ns_c_in, questions[i].type, on_answer, &sent[i]);
    }
    rearm_timer(ch);
    // glibc's resolver restarts its poll after a signal; so does this wait,
    // once the handlers have run: until they have, the fiber's park returns
    // at once (and would spin without ever letting the hub poll).
    while (batch.remaining > 0)
        if (Hub::current()->park() == WakeReason::interrupted) signals::deliver_pending(Hub::current_fiber());
    if (--ch->users == 0 && ch->retired) destroy(ch);
    return true;
}

void lock_for_fork() { g_registry_lock.lock(); }

void unlock_after_fork(bool child) {
    if (!child) {
        g_registry_lock.unlock();
        return;
    }
    // The parent's channels and their queries stay the parent's: close
    // the child's copies of their sockets and forget them (their memory
    // is left alone: a pending callback would name a fiber that is gone).
    for (Channel* ch = g_registry; ch; ch = ch->next_registered)
        for (SocketWatch* w = ch->watches; w; w = w->next) native::sys(SYS_close, w->io.fd);
    g_registry = nullptr;
    t_channel = nullptr;
    new (&g_registry_lock) native::Mutex();
}

}  // namespace greenld::resolver
