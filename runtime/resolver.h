// DNS queries for fibers: one c-ares channel per hub, driven by the hub's
// libev loop (an ev_io per c-ares socket, one ev_timer from ares_timeout).
// A fiber asks its questions, parks, and is unparked when c-ares has an
// outcome for every one of them; other fibers run meanwhile.
//
// This layer only moves DNS messages. Which names to ask (the search list),
// how to read the answers and which errors to report is libc's business and
// lives in preload/dns_module.cpp, which reproduces glibc's resolver on top
// of these questions.
//
// The channel reads /etc/resolv.conf (servers, timeout, attempts, rotate,
// ndots, search/domain, LOCALDOMAIN and RES_OPTIONS) when it is created; as
// glibc does, the file's identity is checked on every lookup and a changed
// file gets a fresh channel (the old one ends when its last question does).
// c-ares's sockets are made with raw system calls, never through the
// program-facing wrappers.
#pragma once

#include <cstdint>

namespace greenld {

// One question and, once asked, c-ares's outcome.
struct DnsQuestion {
    const char* name = nullptr;
    int type = 0;                     // ns_t_a, ns_t_aaaa, ns_t_ptr
    int status = -1;                  // an ARES_* status
    unsigned char* reply = nullptr;   // the server's message when one came (malloc'ed)
    int reply_len = 0;
    // Some server replied to this question, even if c-ares then gave up
    // on the reply (SERVFAIL, NOTIMP, REFUSED): glibc tells "a server
    // answered" (ETIMEDOUT) from "none did" (ECONNREFUSED). `reply_rcode`
    // is the last such reply's rcode.
    bool replied = false;
    int reply_rcode = 0;
};

// What the search logic needs from the configuration the channel read.
struct DnsSearchConfig {
    int ndots = 1;
    int ndomains = 0;
    char** domains = nullptr;  // one malloc'ed block (pointers, then the names): free() it
    // resolv.conf or RES_OPTIONS names something this layer does not
    // reproduce (sortlist, inet6, no-aaaa, use-vc, edns0, ...): the caller
    // must let glibc answer instead.
    bool unsupported = false;
    bool no_tld_query = false;
};

namespace resolver {

// Called by a fiber. Fills `config` from the channel its next ask() uses;
// false if no channel could be made (the caller falls back to glibc).
bool search_config(DnsSearchConfig* config);

// Called by a fiber: sends the n questions at once on its hub's channel and
// parks until each has a status. The caller frees each reply with free().
// False if no channel could be made.
bool ask(DnsQuestion* questions, int n);

// fork(): the child must not share the parent's sockets or pending
// queries. Channels are dropped (their sockets closed) and made afresh.
void lock_for_fork();
void unlock_after_fork(bool child);

}  // namespace resolver
}  // namespace greenld
