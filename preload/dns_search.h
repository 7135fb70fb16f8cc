// glibc's res_search and res_query (resolv/res_query.c), reproduced over
// the hub's c-ares channel (runtime/resolver.h): the same names are asked
// in the same order (ndots, the search list, no-tld-query, a trailing dot),
// the same replies count as answers, and a failure leaves the same h_errno,
// errno and header rcode that glibc's NSS dns module turns into its status.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../runtime/resolver.h"

namespace greenld::dns {

// glibc's internal T_QUERY_A_AND_AAAA: A and AAAA asked at once.
constexpr int kTypeAandAAAA = 439963904;

struct SearchResult {
    // The reply to the A (or only) question, and for kTypeAandAAAA the
    // reply to the AAAA one; a length of 0 means no usable reply.
    unsigned char* packet1 = nullptr;
    int len1 = 0;
    unsigned char* packet2 = nullptr;
    int len2 = 0;
    int h_errno_value = 0;  // the resolver's h_errno after a failure
    int errno_value = 0;    // errno as glibc's search leaves it (ETIMEDOUT, ECONNREFUSED, 0)
    ~SearchResult();
};

// res_search(name, C_IN, type): true if an answer came (result->len1 or
// len2 > 0), false with h_errno_value and errno_value set otherwise.
bool search(const char* name, int type, const DnsSearchConfig& config, SearchResult* result);

// res_query(name, C_IN, type), no search list.
bool query(const char* name, int type, SearchResult* result);

// A view of one DNS message: the question and then its answer records, as
// glibc's ns_rr_cursor walks them.
struct Record {
    const unsigned char* owner;  // possibly compressed name in the message
    int type, rclass;
    uint32_t ttl;
    const unsigned char* rdata;
    int rdlength;
};
class MessageCursor {
public:
    // False if the header or the (single) question is malformed.
    bool init(const unsigned char* packet, int len);
    int rcode() const { return begin_[3] & 0x0f; }
    int ancount() const { return (begin_[6] << 8) | begin_[7]; }
    int qtype() const { return qtype_; }
    const unsigned char* qname() const { return begin_ + 12; }
    bool next(Record* rr);
    // Text form of a name in this message (ns_name_ntop's); false if it
    // does not decode or fit.
    bool name_text(const unsigned char* name, char* out, size_t size) const;
    const unsigned char* begin() const { return begin_; }
    const unsigned char* end() const { return end_; }

private:
    const unsigned char* begin_ = nullptr;
    const unsigned char* end_ = nullptr;
    const unsigned char* pos_ = nullptr;
    int qtype_ = 0;
};

}  // namespace greenld::dns
