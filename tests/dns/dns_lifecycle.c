// Lookups keep working (1) in a child forked by a thread that had looked
// names up (under greenld: a fresh c-ares channel in the child, the
// parent's sockets closed there), and (2) after /etc/resolv.conf changes
// while the program runs (glibc sees the change on the next lookup; so must greenld). Run inside
// tests/dns/dns_env.sh, which owns the /etc/resolv.conf it rewrites.
// Prints "fork ok, resolv.conf change ok" or what went wrong; exit 0/1.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

// The first IPv4 address of name, or "" with the error.
static void lookup(const char* name, char* out, size_t size) {
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo* res = NULL;
    int rc = getaddrinfo(name, NULL, &hints, &res);
    if (rc) {
        snprintf(out, size, "error %d", rc);
        return;
    }
    inet_ntop(AF_INET, &((struct sockaddr_in*)res->ai_addr)->sin_addr, out, (socklen_t)size);
    freeaddrinfo(res);
}

static int expect(const char* what, const char* name, const char* want) {
    char got[64];
    lookup(name, got, sizeof got);
    if (strcmp(got, want) == 0) return 1;
    fprintf(stderr, "%s: %s resolved to '%s', expected '%s'\n", what, name, got, want);
    return 0;
}

static void* child_thread(void* arg) {
    (void)arg;
    return (void*)(long)expect("fork child, new thread", "mixed.test", "10.0.0.3");
}

static void* forking_thread(void* arg) {
    (void)arg;
    if (!expect("before fork", "v4.test", "10.0.0.2")) return (void*)0L;
    pid_t pid = fork();
    if (pid == 0) {
        int good = expect("fork child, forking thread", "v4.test", "10.0.0.2");
        pthread_t t;
        void* r = NULL;
        pthread_create(&t, NULL, child_thread, NULL);
        pthread_join(t, &r);
        _exit(good && r ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "the fork child failed (status %#x)\n", status);
        return (void*)0L;
    }
    return (void*)(long)expect("parent after fork", "v6.test", "error -5");  // EAI_NODATA
}

static void write_resolv_conf(const char* text) {
    int fd = open("/etc/resolv.conf", O_WRONLY | O_TRUNC);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        perror("dns_lifecycle: /etc/resolv.conf");
        exit(1);
    }
    close(fd);
}

static void* resolv_conf_thread(void* arg) {
    (void)arg;
    // "multi" is only found through the search domain py.test.
    int good = expect("search test", "v4", "10.0.0.2");
    char got[64];
    lookup("multi", got, sizeof got);
    if (strncmp(got, "error", 5) != 0) {
        fprintf(stderr, "search test: multi resolved to '%s' before the change\n", got);
        good = 0;
    }
    write_resolv_conf("nameserver 127.0.0.1\nsearch py.test\noptions timeout:2 attempts:2\n");
    // No pause: glibc looks at the file's identity on every lookup.
    good &= expect("search py.test", "multi", "10.0.1.1");
    write_resolv_conf("nameserver 127.0.0.1\nsearch test\noptions timeout:2 attempts:2\n");
    good &= expect("search test again", "v4", "10.0.0.2");
    return (void*)(long)good;
}

int main(void) {
    alarm(60);
    pthread_t t;
    void* r = NULL;
    pthread_create(&t, NULL, forking_thread, NULL);
    pthread_join(t, &r);
    if (!r) return 1;
    pthread_create(&t, NULL, resolv_conf_thread, NULL);
    pthread_join(t, &r);
    if (!r) return 1;
    printf("fork ok, resolv.conf change ok\n");
    return 0;
}
