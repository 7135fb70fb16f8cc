// Concurrency: N threads each resolve a different name (burst-I.py.test,
// A and AAAA) through a server that answers every query 200 ms late, and
// check each answer. Prints "N lookups, W wrong, T ms" (T: from the first
// pthread_create to the last join). Natively each thread blocks in its own
// lookup, so all wait at once; under greenld the lookups of every fiber
// must also be in flight at once, or T grows by 200 ms per lookup a hub
// serialises.
//
// With "nofqdn": each thread calls getnameinfo(10.0.0.1, NI_NOFQDN)
// instead, whose first call makes glibc look the host's own name up (late
// answer) while it holds a lock; every thread must get the same name
// (printed as "host=NAME").
//
// With "signals": a SIGALRM handler installed without SA_RESTART fires
// every 1 ms during the lookups; none may fail (no EAI_SYSTEM/EINTR, no
// EAI_AGAIN: glibc restarts its waits).
//
// With "kill": 50 ms into the lookups, main sends each thread SIGUSR1 with
// pthread_kill (handler without SA_RESTART); every handler must run once
// and every lookup still succeed.
//
// Usage: dns_burst [N] [nofqdn|signals|kill]   (default 200)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

static int wrong;
static pthread_mutex_t wrong_lock = PTHREAD_MUTEX_INITIALIZER;

static char first_host[NI_MAXHOST];
static volatile sig_atomic_t alarms;
static int usr1_count;
static void on_usr1(int sig) {
    (void)sig;
    __atomic_fetch_add(&usr1_count, 1, __ATOMIC_RELAXED);
}
static void on_alarm(int sig) {
    (void)sig;
    ++alarms;
}

static void* reverse_lookup(void* arg) {
    (void)arg;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(80)};
    inet_pton(AF_INET, "10.0.0.1", &sin.sin_addr);
    char host[NI_MAXHOST];
    int rc = getnameinfo((struct sockaddr*)&sin, sizeof sin, host, sizeof host, NULL, 0, NI_NOFQDN);
    pthread_mutex_lock(&wrong_lock);
    if (!first_host[0] && rc == 0) snprintf(first_host, sizeof first_host, "%s", host);
    if (rc != 0 || strcmp(host, first_host) != 0) {
        if (wrong++ < 5) fprintf(stderr, "dns_burst: getnameinfo: rc=%d host=%s\n", rc, rc ? "" : host);
    }
    pthread_mutex_unlock(&wrong_lock);
    return NULL;
}

static void* lookup(void* arg) {
    int i = (int)(long)arg;
    char name[64];
    snprintf(name, sizeof name, "burst-%d.py.test", i);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo* res = NULL;
    int rc = getaddrinfo(name, "80", &hints, &res);
    int seen4 = 0, seen6 = 0;
    for (struct addrinfo* ai = rc == 0 ? res : NULL; ai; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            const unsigned char* a = (const unsigned char*)&((struct sockaddr_in*)ai->ai_addr)->sin_addr;
            seen4 += a[0] == 10 && a[1] == 77 && a[2] == i / 256 && a[3] == i % 256;
        } else if (ai->ai_family == AF_INET6) {
            struct in6_addr want;
            char text[64];
            snprintf(text, sizeof text, "fd77::%x", i);
            inet_pton(AF_INET6, text, &want);
            seen6 += memcmp(&((struct sockaddr_in6*)ai->ai_addr)->sin6_addr, &want, sizeof want) == 0;
        }
    }
    if (rc == 0) freeaddrinfo(res);
    if (rc != 0 || seen4 != 1 || seen6 != 1) {
        pthread_mutex_lock(&wrong_lock);
        if (wrong++ < 5) fprintf(stderr, "dns_burst: %s: rc=%d A=%d AAAA=%d\n", name, rc, seen4, seen6);
        pthread_mutex_unlock(&wrong_lock);
    }
    return NULL;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char** argv) {
    int n = argc > 1 ? atoi(argv[1]) : 200;
    int nofqdn = argc > 2 && strcmp(argv[2], "nofqdn") == 0;
    int signals = argc > 2 && strcmp(argv[2], "signals") == 0;
    int kill_them = argc > 2 && strcmp(argv[2], "kill") == 0;
    if (kill_them) {
        struct sigaction sa = {.sa_handler = on_usr1};  // no SA_RESTART
        sigaction(SIGUSR1, &sa, NULL);
    }
    if (signals) {
        struct sigaction sa = {.sa_handler = on_alarm};  // no SA_RESTART
        sigaction(SIGALRM, &sa, NULL);
        struct itimerval every = {{0, 1000}, {0, 1000}};
        setitimer(ITIMER_REAL, &every, NULL);
    }
    pthread_t* th = calloc((size_t)n, sizeof *th);
    double start = now_ms();
    for (int i = 0; i < n; ++i)
        if (pthread_create(&th[i], NULL, nofqdn ? reverse_lookup : lookup, (void*)(long)i) != 0) {
            fprintf(stderr, "dns_burst: pthread_create failed\n");
            return 1;
        }
    if (kill_them) {
        struct timespec pause = {0, 50 * 1000 * 1000};
        nanosleep(&pause, NULL);
        for (int i = 0; i < n; ++i) pthread_kill(th[i], SIGUSR1);
    }
    for (int i = 0; i < n; ++i) pthread_join(th[i], NULL);
    if (kill_them && usr1_count != n) {
        fprintf(stderr, "dns_burst: %d of %d SIGUSR1 handlers ran\n", usr1_count, n);
        ++wrong;
    }
    double elapsed = now_ms() - start;
    if (signals) {
        struct itimerval off = {{0, 0}, {0, 0}};
        setitimer(ITIMER_REAL, &off, NULL);
        fprintf(stderr, "dns_burst: %d signals during the lookups\n", (int)alarms);
        if (alarms < 10) ++wrong;
    }
    printf("%d lookups, %d wrong, %.0f ms", n, wrong, elapsed);
    if (nofqdn) printf(" host=%s", first_host);
    printf("\n");
    return wrong != 0;
}
