/* patch_probe — reports which families of calls park a fiber instead of
 * blocking its hub, for tests/integration/test_patch.sh. Run it with
 * GREENLD_HUBS=1: two threads then share one OS thread, and a call that is
 * not made cooperative serialises them.
 *
 * Prints one line: "fiber=F time=T socket=S" where F is whether created
 * threads are fibers, T whether two concurrent 200 ms sleeps overlapped,
 * S whether a thread could run while another blocked in recv().
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int g_is_fiber;

static void *sleeper(void *arg)
{
    (void)arg;
    int (*is_fiber)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "greenld_is_fiber");
    g_is_fiber = is_fiber ? is_fiber() : 0;
    usleep(200000);
    return NULL;
}

static int g_sv[2];
static double g_recv_done, g_write_at;

static void *reader(void *arg)
{
    (void)arg;
    char c;
    /* Bounded: if recv blocks the only hub, the writer cannot run until this
     * times out, and the test sees it from the timestamps. */
    recv(g_sv[0], &c, 1, 0);
    g_recv_done = now();
    return NULL;
}

static void *writer(void *arg)
{
    (void)arg;
    usleep(50000);
    g_write_at = now();
    send(g_sv[1], "x", 1, 0);
    return NULL;
}

int main(void)
{
    pthread_t a, b;
    double t0 = now();
    pthread_create(&a, NULL, sleeper, NULL);
    pthread_create(&b, NULL, sleeper, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    int time_overlapped = now() - t0 < 0.35;

    socketpair(AF_UNIX, SOCK_STREAM, 0, g_sv);
    struct timeval tv = {0, 500000};
    setsockopt(g_sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    pthread_create(&a, NULL, reader, NULL);
    pthread_create(&b, NULL, writer, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    /* Cooperative: the writer ran at ~50 ms and the reader got its byte.
     * Blocking: the writer only ran after the reader's 500 ms timeout. */
    int socket_cooperative = g_recv_done >= g_write_at && g_write_at - t0 < 10;
    socket_cooperative = socket_cooperative && (g_recv_done - g_write_at) < 0.2;
    printf("fiber=%d time=%d socket=%d\n", g_is_fiber, time_overlapped, socket_cooperative);
    return 0;
}
