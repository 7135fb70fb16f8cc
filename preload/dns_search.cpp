#include "dns_search.h"

#include <ares.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <resolv.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace greenld::dns {
namespace {

// What glibc's resolver state holds between queries of one search.
struct QueryState {
    int h_errno_value = HOST_NOT_FOUND;
    int errno_value = 0;  // sticky: only a failed send sets it
    int rcode = ns_r_noerror;  // the header of the first answer buffer
};

int header_rcode(const unsigned char* p) { return p[3] & 0x0f; }
int header_ancount(const unsigned char* p) { return (p[6] << 8) | p[7]; }

// The rcode glibc finds in its answer buffer when c-ares gave up on a reply
// it refused to pass on (it tries the next server for these, as glibc does).
int rcode_of_failure(int status) {
    switch (status) {
        case ARES_ESERVFAIL: return ns_r_servfail;
        case ARES_ENOTIMP: return ns_r_notimpl;
        case ARES_EREFUSED: return ns_r_refused;
        default: return ns_r_noerror;
    }
}

void take_reply(DnsQuestion& q, unsigned char** packet, int* len) {
    if (q.reply && q.reply_len >= HFIXEDSZ) {
        *packet = q.reply;
        *len = q.reply_len;
    } else {
        free(q.reply);
    }
    q.reply = nullptr;
}

void drop_packets(SearchResult* r) {
    free(r->packet1);
    free(r->packet2);
    r->packet1 = r->packet2 = nullptr;
    r->len1 = r->len2 = 0;
}

// __res_context_query: returns the first reply's length (0 when only the
// second reply is usable: check len2), or -1 with st->h_errno_value set.
int run_query(const char* name, int type, SearchResult* r, QueryState* st) {
    drop_packets(r);
    const bool pair = type == kTypeAandAAAA;
    DnsQuestion q[2];
    q[0].name = q[1].name = name;
    q[0].type = pair ? ns_t_a : type;
    q[1].type = ns_t_aaaa;
    const int n = pair ? 2 : 1;
    st->rcode = ns_r_noerror;
    // res_mkquery turns the name into wire form first; a name it refuses
    // (".x", "a..b", an over-long label; observed: "") is never sent.
    unsigned char wire[NS_MAXCDNAME];
    if (name[0] == '\0' || ns_name_pton(name, wire, sizeof wire) < 0) {
        st->h_errno_value = NO_RECOVERY;
        return -1;
    }
    if (!resolver::ask(q, n)) {
        st->h_errno_value = TRY_AGAIN;
        st->errno_value = ECONNREFUSED;
        return -1;
    }
    take_reply(q[0], &r->packet1, &r->len1);
    if (pair) take_reply(q[1], &r->packet2, &r->len2);
    if (!r->len1 && !r->len2) {
        // res_send failed. Its errno: ETIMEDOUT when a server replied
        // (only SERVFAIL, NOTIMP or REFUSED: c-ares, like glibc, tried the
        // next server and gave up on these) or a wait timed out, else
        // ECONNREFUSED (no server reached).
        bool reached = false;
        for (int i = 0; i < n; ++i) reached |= q[i].replied || q[i].status == ARES_ETIMEOUT;
        st->errno_value = reached ? ETIMEDOUT : ECONNREFUSED;
        st->rcode = q[0].replied ? q[0].reply_rcode : rcode_of_failure(q[0].status);
        st->h_errno_value = TRY_AGAIN;
        return -1;
    }
    // A completed exchange leaves errno 0 in glibc (observed: a search
    // whose first query timed out reports errno 0 once a later query got
    // any reply).
    st->errno_value = 0;
    st->rcode = r->len1 ? header_rcode(r->packet1) : q[0].replied ? q[0].reply_rcode : rcode_of_failure(q[0].status);
    const unsigned char* hp = r->len1 ? r->packet1 : r->packet2;
    const unsigned char* hp2 = r->len2 ? r->packet2 : hp;
    auto answered = [](const unsigned char* h) { return header_rcode(h) == ns_r_noerror && header_ancount(h) != 0; };
    if (!answered(hp) && !answered(hp2)) {
        switch (header_rcode(hp) == ns_r_noerror ? header_rcode(hp2) : header_rcode(hp)) {
            case ns_r_nxdomain: st->h_errno_value = HOST_NOT_FOUND; break;
            case ns_r_servfail: st->h_errno_value = TRY_AGAIN; break;
            case ns_r_noerror: st->h_errno_value = NO_DATA; break;
            default: st->h_errno_value = NO_RECOVERY; break;
        }
        drop_packets(r);
        return -1;
    }
    return r->len1;
}

// __res_context_querydomain: name, or name.domain, without a trailing dot.
int query_domain(const char* name, const char* domain, int type, SearchResult* r, QueryState* st) {
    char full[NS_MAXDNAME];
    const size_t n = strlen(name);
    if (!domain) {
        if (n >= NS_MAXDNAME) {
            st->h_errno_value = NO_RECOVERY;
            return -1;
        }
        if (n > 0 && name[n - 1] == '.') {
            memcpy(full, name, n - 1);
            full[n - 1] = '\0';
            name = full;
        }
    } else {
        const size_t d = strlen(domain);
        if (n + d + 1 >= NS_MAXDNAME) {
            st->h_errno_value = NO_RECOVERY;
            return -1;
        }
        memcpy(full, name, n);
        full[n] = '.';
        memcpy(full + n + 1, domain, d + 1);
        name = full;
    }
    return run_query(name, type, r, st);
}

bool got_answer(int ret, const SearchResult* r) { return ret > 0 || (ret == 0 && r->len2 > 0); }

}  // namespace

SearchResult::~SearchResult() { drop_packets(this); }

bool search(const char* name, int type, const DnsSearchConfig& config, SearchResult* r) {
    QueryState st;  // res_search starts with errno 0 and h_errno HOST_NOT_FOUND
    unsigned dots = 0;
    const char* cp = name;
    for (; *cp; ++cp) dots += (*cp == '.');
    const bool trailing_dot = cp > name && cp[-1] == '.';

    int saved_h_errno = -1;
    bool tried_as_is = false, searched = false, root_on_list = false;
    int got_nodata = 0, got_servfail = 0;
    if (dots >= unsigned(config.ndots) || trailing_dot) {
        int ret = query_domain(name, nullptr, type, r, &st);
        if (got_answer(ret, r) || trailing_dot) {
            r->h_errno_value = st.h_errno_value;
            r->errno_value = st.errno_value;
            return got_answer(ret, r);
        }
        saved_h_errno = st.h_errno_value;
        tried_as_is = true;
    }
    // RES_DEFNAMES and RES_DNSRCH are always on: glibc offers no way to
    // clear them from resolv.conf.
    if (!trailing_dot) {
        for (int i = 0; i < config.ndomains; ++i) {
            const char* domain = config.domains[i];
            searched = true;
            if (domain[0] == '.') ++domain;
            if (domain[0] == '\0') root_on_list = true;
            int ret = query_domain(name, domain, type, r, &st);
            if (got_answer(ret, r)) {
                r->errno_value = st.errno_value;
                return true;
            }
            if (st.errno_value == ECONNREFUSED) {
                r->h_errno_value = TRY_AGAIN;
                r->errno_value = st.errno_value;
                return false;
            }
            bool done = false;
            switch (st.h_errno_value) {
                case NO_DATA: ++got_nodata; break;
                case HOST_NOT_FOUND: break;
                case TRY_AGAIN:
                    if (st.rcode == ns_r_servfail) {
                        ++got_servfail;
                        break;
                    }
                    done = true;
                    break;
                default: done = true; break;
            }
            if (done) break;
        }
    }
    if ((dots || !searched || !config.no_tld_query) && !(tried_as_is || root_on_list)) {
        int ret = query_domain(name, nullptr, type, r, &st);
        if (got_answer(ret, r)) {
            r->errno_value = st.errno_value;
            return true;
        }
    }
    if (saved_h_errno != -1)
        st.h_errno_value = saved_h_errno;
    else if (got_nodata)
        st.h_errno_value = NO_DATA;
    else if (got_servfail)
        st.h_errno_value = TRY_AGAIN;
    r->h_errno_value = st.h_errno_value;
    r->errno_value = st.errno_value;
    return false;
}

bool query(const char* name, int type, SearchResult* r) {
    QueryState st;
    int ret = run_query(name, type, r, &st);
    r->errno_value = st.errno_value;
    if (got_answer(ret, r)) return true;
    r->h_errno_value = st.h_errno_value;
    r->errno_value = st.errno_value;
    return false;
}

bool MessageCursor::init(const unsigned char* packet, int len) {
    begin_ = packet;
    end_ = packet + len;
    if (len < HFIXEDSZ || packet[4] != 0 || packet[5] != 1) return false;
    const unsigned char* p = packet + HFIXEDSZ;
    if (ns_name_skip(&p, end_) < 0 || end_ - p < 4) return false;
    qtype_ = (p[0] << 8) | p[1];
    pos_ = p + 4;
    return true;
}

bool MessageCursor::next(Record* rr) {
    const unsigned char* p = pos_;
    rr->owner = p;
    if (ns_name_skip(&p, end_) < 0 || end_ - p < 10) return false;
    rr->type = (p[0] << 8) | p[1];
    rr->rclass = (p[2] << 8) | p[3];
    rr->ttl = (uint32_t(p[4]) << 24) | (uint32_t(p[5]) << 16) | (uint32_t(p[6]) << 8) | p[7];
    rr->rdlength = (p[8] << 8) | p[9];
    p += 10;
    if (end_ - p < rr->rdlength) return false;
    rr->rdata = p;
    pos_ = p + rr->rdlength;
    return true;
}

bool MessageCursor::name_text(const unsigned char* name, char* out, size_t size) const {
    return ns_name_uncompress(begin_, end_, name, out, size) >= 0;
}

}  // namespace greenld::dns
