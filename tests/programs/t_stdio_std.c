/*
 * t_stdio_std — the streams glibc opened itself (stdin, stdout) on a pipe,
 * a pty or a FIFO: a thread waiting inside a stdio call on one of them
 * must leave the other threads running (under greenld: its hub's other
 * fibers), and every byte must come through as glibc delivers it.
 *
 * The program re-executes itself once per set-up, the stream's fd in
 * place before exec (as a shell pipeline leaves it) and the other end on
 * fd 4, held by the child's main thread:
 *   stdin-pipe  fgets, getc, fread, getline, scanf (+ the character it
 *               leaves), getc_unlocked under flockfile, each waiting for
 *               input that arrives in pieces while a probe thread must
 *               answer; then 32 MB of lines through fgets and 32 MB
 *               through fread of odd sizes, checked byte by byte, within a
 *               time bound; then EOF.
 *   stdout-pipe printf, puts, fwrite, putchar, dprintf, line-buffered and
 *               unbuffered printf, fflush of a 64 KiB buffer to a one-page pipe the main thread does
 *               not drain until the probe answered; then 32 MB through
 *               printf, drained and checked.
 *   stdin-pty   fgets and getc on a terminal (canonical mode, no echo).
 *   stdin-fifo  freopen(FIFO, "r", stdin), then fgets.
 *   stdin-mix   a random mix of every read call (and ungetc) on stdin fed
 *               in odd pieces, logged, must log what the same mix logs on a
 *               regular file holding the same bytes.
 *   stdout-mix  a random mix of every write call, fully, line- and
 *               unbuffered, to a one-page pipe read in odd pieces, must
 *               write what it writes to a regular file.
 * Passes natively, under greenld and with GREENLD_HUBS=1 (where a call
 * that blocked the hub would starve the probe).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "test_support.h"

#define OTHER_END 4
#define BULK (32u << 20)
#define BULK_LIMIT_MS 30000

static struct probe g_probe;
static struct pipe_event g_entering;

/* The main thread's side of one waiting call: the caller announced it is
 * about to call; once it had time to be inside, the probe must answer. */
static void expect_others_run(const char *what)
{
    pipe_event_wait(&g_entering);
    sleep_ms(50);
    probe_expect(&g_probe, 2000, what);
}

static void feed(const char *s) { write_exact(OTHER_END, s, strlen(s), "feed"); }

/* ---- stdin on a pipe ---------------------------------------------------- */

static char g_line[1 << 16];
static int g_int[2];

static void *reader_fgets(void *arg)
{
    (void)arg;
    pipe_event_set(&g_entering);
    CHECK(fgets(g_line, sizeof g_line, stdin) == g_line, "fgets returned NULL (feof %d ferror %d)", feof(stdin),
          ferror(stdin));
    return NULL;
}

static void *reader_getc(void *arg)
{
    (void)arg;
    pipe_event_set(&g_entering);
    return (void *)(intptr_t)getc(stdin);
}

static void *reader_fread(void *arg)
{
    size_t n = (size_t)(intptr_t)arg;
    pipe_event_set(&g_entering);
    return (void *)(intptr_t)fread(g_line, 1, n, stdin);
}

static void *reader_getline(void *arg)
{
    (void)arg;
    char *line = NULL;
    size_t cap = 0;
    pipe_event_set(&g_entering);
    ssize_t n = getline(&line, &cap, stdin);
    CHECK(n > 0 && (size_t)n < sizeof g_line, "getline returned %zd", n);
    memcpy(g_line, line, (size_t)n + 1);
    free(line);
    return NULL;
}

static void *reader_scanf(void *arg)
{
    (void)arg;
    pipe_event_set(&g_entering);
    return (void *)(intptr_t)scanf("%d %d", &g_int[0], &g_int[1]);
}

static void *reader_getc_unlocked(void *arg)
{
    (void)arg;
    flockfile(stdin);
    pipe_event_set(&g_entering);
    int c = getc_unlocked(stdin);
    funlockfile(stdin);
    return (void *)(intptr_t)c;
}

static unsigned line_len(unsigned i) { return 1 + (i * 2654435761u >> 7) % 300; }

static void make_line(char *out, unsigned i)
{
    int n = sprintf(out, "%010u ", i);
    unsigned len = line_len(i);
    for (unsigned k = 0; k < len; k++) out[n + k] = (char)('!' + (i + k * 7) % 90);
    out[n + len] = '\n';
    out[n + len + 1] = '\0';
}

static unsigned char bulk_byte(size_t k) { return (unsigned char)((k * 131 + (k >> 12)) % 251); }

static unsigned g_bulk_lines;

static void *bulk_fgets(void *arg)
{
    (void)arg;
    char expect[400];
    for (unsigned i = 0; i < g_bulk_lines; i++) {
        CHECK(fgets(g_line, sizeof g_line, stdin) == g_line, "bulk fgets: NULL at line %u", i);
        make_line(expect, i);
        CHECK(strcmp(g_line, expect) == 0, "bulk fgets: line %u is '%.40s', expected '%.40s'", i, g_line, expect);
    }
    return NULL;
}

static void *bulk_fread(void *arg)
{
    (void)arg;
    static unsigned char buf[200000];
    uint64_t rng = 12345;
    size_t k = 0;
    while (k < BULK) {
        size_t want = 1 + rng_next(&rng) % sizeof buf;
        if (want > BULK - k) want = BULK - k;
        size_t got = fread(buf, 1, want, stdin);
        CHECK(got == want, "bulk fread: %zu of %zu bytes at offset %zu (feof %d ferror %d)", got, want, k,
              feof(stdin), ferror(stdin));
        for (size_t j = 0; j < got; j++)
            CHECK(buf[j] == bulk_byte(k + j), "bulk fread: byte %zu is %d, expected %d", k + j, buf[j],
                  bulk_byte(k + j));
        k += got;
    }
    return NULL;
}

static void *reader_eof(void *arg)
{
    (void)arg;
    pipe_event_set(&g_entering);
    CHECK(fgets(g_line, sizeof g_line, stdin) == NULL && feof(stdin) && !ferror(stdin),
          "fgets at EOF: feof %d ferror %d", feof(stdin), ferror(stdin));
    return NULL;
}

static void stdin_pipe(void)
{
    set_phase("stdin-pipe: fgets");
    pthread_t t = spawn(reader_fgets, NULL);
    expect_others_run("fgets(stdin) waiting");
    feed("first ");
    probe_expect(&g_probe, 2000, "fgets(stdin) with half a line");
    feed("line\n");
    join(t);
    CHECK(strcmp(g_line, "first line\n") == 0, "fgets read '%s'", g_line);

    set_phase("stdin-pipe: getc");
    t = spawn(reader_getc, NULL);
    expect_others_run("getc(stdin) waiting");
    feed("x");
    CHECK_EQ((intptr_t)join(t), 'x');

    set_phase("stdin-pipe: fread");
    char chunk[3000];
    t = spawn(reader_fread, (void *)(intptr_t)(3 * sizeof chunk));
    expect_others_run("fread(stdin) waiting");
    for (int i = 0; i < 3; i++) {
        memset(chunk, 'a' + i, sizeof chunk);
        write_exact(OTHER_END, chunk, sizeof chunk, "fread chunk");
        if (i < 2) probe_expect(&g_probe, 2000, "fread(stdin) with part of its count");
    }
    CHECK_EQ((intptr_t)join(t), 3 * sizeof chunk);
    for (size_t i = 0; i < 3 * sizeof chunk; i++)
        CHECK(g_line[i] == 'a' + (int)(i / sizeof chunk), "fread: byte %zu is '%c'", i, g_line[i]);

    set_phase("stdin-pipe: getline");
    t = spawn(reader_getline, NULL);
    expect_others_run("getline(stdin) waiting");
    feed("partial");
    probe_expect(&g_probe, 2000, "getline(stdin) with part of a line");
    feed(" rest\n");
    join(t);
    CHECK(strcmp(g_line, "partial rest\n") == 0, "getline read '%s'", g_line);

    set_phase("stdin-pipe: scanf");
    t = spawn(reader_scanf, NULL);
    expect_others_run("scanf(stdin) waiting");
    feed("12 ");
    probe_expect(&g_probe, 2000, "scanf(stdin) with one of two numbers");
    feed("34\nnext");
    CHECK_EQ((intptr_t)join(t), 2);
    CHECK(g_int[0] == 12 && g_int[1] == 34, "scanf read %d %d", g_int[0], g_int[1]);
    set_phase("stdin-pipe: what scanf left");
    CHECK_EQ(getc(stdin), '\n');
    CHECK(fgets(g_line, 5, stdin) && strcmp(g_line, "next") == 0, "after scanf: '%s'", g_line);

    set_phase("stdin-pipe: getc_unlocked under flockfile");
    t = spawn(reader_getc_unlocked, NULL);
    expect_others_run("getc_unlocked(stdin) waiting");
    feed("z");
    CHECK_EQ((intptr_t)join(t), 'z');

    set_phase("stdin-pipe: bulk fgets");
    char *block = malloc(1 << 16);
    CHECK(block != NULL, "malloc");
    size_t used = 0, total = 0;
    unsigned lines = 0;
    while (total < BULK) {
        char line[400];
        make_line(line, lines);
        size_t len = strlen(line);
        total += len;
        lines++;
        (void)used;
    }
    g_bulk_lines = lines;
    double t0 = now_ms();
    t = spawn(bulk_fgets, NULL);
    used = 0;
    for (unsigned i = 0; i < lines; i++) {
        if (used > (1 << 16) - 400) {
            write_exact(OTHER_END, block, used, "bulk lines");
            used = 0;
        }
        make_line(block + used, i);
        used += strlen(block + used);
    }
    if (used) write_exact(OTHER_END, block, used, "bulk lines");
    join_within(t, BULK_LIMIT_MS, "bulk fgets");
    fprintf(stderr, "bulk fgets: %zu bytes (%u lines) in %.0f ms\n", total, lines, now_ms() - t0);

    set_phase("stdin-pipe: bulk fread");
    t0 = now_ms();
    t = spawn(bulk_fread, NULL);
    for (size_t k = 0; k < BULK;) {
        size_t n = BULK - k < (1 << 16) ? BULK - k : (1 << 16);
        for (size_t j = 0; j < n; j++) block[j] = (char)bulk_byte(k + j);
        write_exact(OTHER_END, block, n, "bulk bytes");
        k += n;
    }
    join_within(t, BULK_LIMIT_MS, "bulk fread");
    fprintf(stderr, "bulk fread: %u bytes in %.0f ms\n", BULK, now_ms() - t0);
    free(block);

    set_phase("stdin-pipe: EOF");
    t = spawn(reader_eof, NULL);
    expect_others_run("fgets(stdin) waiting for EOF");
    close(OTHER_END);
    join(t);
}

/* ---- stdin on a pipe fed in odd pieces, against a regular file ---------- */

/* A random mix of every read call, logged to `out`. Run on stdin (a pipe,
 * where greenld splits the calls) and on a regular file with the same
 * bytes (where glibc runs them as they are), the logs must be equal. */
static void read_mix(FILE *in, FILE *out)
{
    uint64_t rng = 77;
    char buf[9000], *line = NULL;
    size_t cap = 0;
    for (int it = 0; it < 100000; it++) {
        unsigned r = (unsigned)rng_next(&rng);
        switch (r % 9) {
        case 0: {
            if (!fgets(buf, 1 + (int)((r >> 4) % 300), in)) goto end;
            fprintf(out, "F%zu:%s|", strlen(buf), buf);
            break;
        }
        case 1: {
            int c = getc(in);
            if (c == EOF) goto end;
            fputc(c, out);
            if (r & 16) ungetc(c, in);
            break;
        }
        case 2: {
            size_t n = fread(buf, 1, 1 + (r >> 4) % sizeof buf, in);
            if (!n) goto end;
            fwrite(buf, 1, n, out);
            break;
        }
        case 3: {
            ssize_t n = getline(&line, &cap, in);
            if (n < 0) goto end;
            fprintf(out, "L%zd:%s", n, line);
            break;
        }
        case 4: {
            int x = 0;
            char w[64];
            int k = fscanf(in, "%d%63s", &x, w);
            if (k == EOF) goto end;
            fprintf(out, "S%d:%d:%s|", k, x, k == 2 ? w : "");
            if (k == 0) fputc(getc(in), out);
            break;
        }
        case 5: {
            ssize_t n = getdelim(&line, &cap, 'x', in);
            if (n < 0) goto end;
            fprintf(out, "D%zd:%s", n, line);
            break;
        }
        case 6: {
            flockfile(in);
            int c = getc_unlocked(in);
            funlockfile(in);
            if (c == EOF) goto end;
            fputc(c, out);
            break;
        }
        case 7: {
            char t[4];
            if (!fgets(t, sizeof t, in)) goto end;
            fprintf(out, "<%s>", t);
            break;
        }
        case 8: {
            char t[16];
            int k = fscanf(in, "%15[a-z]", t);
            if (k == EOF) goto end;
            fprintf(out, "C%d:%s|", k, k == 1 ? t : "");
            break;
        }
        }
    }
end:
    fprintf(out, "\nEND feof=%d ferror=%d\n", feof(in), ferror(in));
    free(line);
}

static char *g_mix_data;
static size_t g_mix_len;

static void make_mix_data(void)
{
    static const char *const words[] = {"12 ", "abc ", "-7x", "\n", "99 zz\n", "x", "  42 foo\n", "qq"};
    g_mix_data = malloc(3 << 20);
    CHECK(g_mix_data != NULL, "malloc");
    uint64_t rng = 5;
    size_t n = 0;
    for (unsigned i = 0; n < (1 << 20); i++) {
        make_line(g_mix_data + n, i);
        n += strlen(g_mix_data + n);
    }
    for (int i = 0; i < 40000; i++) {
        const char *w = words[rng_next(&rng) % 8];
        memcpy(g_mix_data + n, w, strlen(w));
        n += strlen(w);
    }
    for (unsigned i = 0; n < (5u << 19); i++) {
        make_line(g_mix_data + n, i);
        n += strlen(g_mix_data + n);
    }
    g_mix_len = n;
}

static char *g_mix_log[2];
static size_t g_mix_log_len[2];

static void *mix_reader(void *arg)
{
    int which = (int)(intptr_t)arg;
    FILE *in = stdin;
    char path[64];
    if (which == 1) {
        snprintf(path, sizeof path, "/tmp/t_stdio_std.mix.%d", (int)getpid());
        in = fopen(path, "w+");
        CHECK(in != NULL, "fopen %s", path);
        CHECK_EQ(fwrite(g_mix_data, 1, g_mix_len, in), g_mix_len);
        rewind(in);
    }
    FILE *out = open_memstream(&g_mix_log[which], &g_mix_log_len[which]);
    CHECK(out != NULL, "open_memstream");
    read_mix(in, out);
    CHECK(fclose(out) == 0, "fclose memstream");
    if (which == 1) {
        fclose(in);
        unlink(path);
    }
    return NULL;
}

static void stdin_mix(void)
{
    set_phase("stdin-mix: every read call, the pipe fed in odd pieces");
    make_mix_data();
    pthread_t t = spawn(mix_reader, (void *)0);
    uint64_t rng = 3;
    static const size_t pieces[] = {1, 7, 100, 4095, 4096, 4097, 20000, 65536};
    for (size_t k = 0; k < g_mix_len;) {
        size_t n = pieces[rng_next(&rng) % 8];
        if (n > g_mix_len - k) n = g_mix_len - k;
        write_exact(OTHER_END, g_mix_data + k, n, "mix piece");
        k += n;
        if (rng_next(&rng) % 16 == 0) {
            sleep_ms(20); /* the reader drains the pipe and waits */
            probe_expect(&g_probe, 2000, "the mix reader waiting for the next piece");
        }
    }
    close(OTHER_END);
    join_within(t, BULK_LIMIT_MS, "mix reader on the pipe");
    set_phase("stdin-mix: the same on a regular file");
    join(spawn(mix_reader, (void *)1));
    CHECK(g_mix_log_len[0] > 1000000, "mix log of %zu bytes only", g_mix_log_len[0]);
    CHECK(g_mix_log_len[0] == g_mix_log_len[1] && memcmp(g_mix_log[0], g_mix_log[1], g_mix_log_len[0]) == 0,
          "the pipe's log (%zu bytes) differs from the regular file's (%zu bytes)", g_mix_log_len[0],
          g_mix_log_len[1]);
}

/* ---- stdout on a pipe of one page --------------------------------------- */

static const char *g_out;
static size_t g_out_len;

static void *writer_printf(void *arg)
{
    (void)arg;
    pipe_event_set(&g_entering);
    int n = printf("%s", g_out);
    CHECK(n == (int)g_out_len, "printf returned %d, expected %zu", n, g_out_len);
    CHECK(fflush(stdout) == 0, "fflush");
    return NULL;
}

static void *writer_puts(void *arg)
{
    (void)arg;
    pipe_event_set(&g_entering);
    CHECK(puts(g_out) >= 0, "puts");
    CHECK(fflush(stdout) == 0, "fflush");
    return NULL;
}

static void *writer_fwrite(void *arg)
{
    (void)arg;
    pipe_event_set(&g_entering);
    CHECK_EQ(fwrite(g_out, 1, g_out_len, stdout), g_out_len);
    CHECK(fflush(stdout) == 0, "fflush");
    return NULL;
}

static void *writer_putchar(void *arg)
{
    (void)arg;
    pipe_event_set(&g_entering);
    for (size_t i = 0; i < g_out_len; i++) CHECK_EQ(putchar(g_out[i]), (unsigned char)g_out[i]);
    CHECK(fflush(stdout) == 0, "fflush");
    return NULL;
}

/* A buffer larger than PIPE_BUF: the flush is one large write. */
static void *writer_fflush_large(void *arg)
{
    (void)arg;
    CHECK_EQ(fwrite(g_out, 1, g_out_len, stdout), g_out_len);
    pipe_event_set(&g_entering);
    CHECK(fflush(stdout) == 0, "fflush of a 64 KiB buffer");
    return NULL;
}

static void *writer_dprintf(void *arg)
{
    (void)arg;
    pipe_event_set(&g_entering);
    int n = dprintf(1, "%s", g_out);
    CHECK(n == (int)g_out_len, "dprintf returned %d, expected %zu", n, g_out_len);
    return NULL;
}

/* Reads exactly the n bytes expected from the pipe behind stdout. */
static void drain_expect(const char *expect, size_t n, const char *what)
{
    static char buf[1 << 16];
    size_t got = 0;
    while (got < n) {
        size_t want = n - got < sizeof buf ? n - got : sizeof buf;
        ssize_t r = read(OTHER_END, buf, want);
        CHECK(r > 0, "%s: read of the pipe returned %zd after %zu of %zu bytes", what, r, got, n);
        CHECK(memcmp(buf, expect + got, (size_t)r) == 0, "%s: bytes %zu..%zu differ", what, got, got + (size_t)r);
        got += (size_t)r;
    }
}

static void run_writer(void *(*fn)(void *), const char *what)
{
    set_phase(what);
    pthread_t t = spawn(fn, NULL);
    expect_others_run(what);
    drain_expect(g_out, g_out_len, what);
    join(t);
}

static void stdout_pipe(void)
{
    static char text[40000];
    for (size_t i = 0; i < sizeof text - 1; i++) text[i] = (i % 61 == 60) ? '\n' : (char)('A' + i % 26);
    text[sizeof text - 1] = '\0';
    g_out = text;
    g_out_len = strlen(text);
    run_writer(writer_printf, "stdout-pipe: printf to a full pipe");
    run_writer(writer_fwrite, "stdout-pipe: fwrite to a full pipe");
    run_writer(writer_putchar, "stdout-pipe: putchar to a full pipe");
    run_writer(writer_dprintf, "stdout-pipe: dprintf to a full pipe");

    set_phase("stdout-pipe: puts");
    static char with_newline[sizeof text + 1];
    memcpy(with_newline, text, g_out_len);
    with_newline[g_out_len] = '\n';
    pthread_t t = spawn(writer_puts, NULL);
    expect_others_run("puts to a full pipe");
    drain_expect(with_newline, g_out_len + 1, "puts");
    join(t);

    CHECK(setvbuf(stdout, NULL, _IOLBF, 0) == 0, "setvbuf line-buffered");
    run_writer(writer_printf, "stdout-pipe: line-buffered printf to a full pipe");
    CHECK(setvbuf(stdout, NULL, _IONBF, 0) == 0, "setvbuf unbuffered");
    run_writer(writer_printf, "stdout-pipe: unbuffered printf to a full pipe");
    static char large[1 << 16];
    CHECK(setvbuf(stdout, large, _IOFBF, sizeof large) == 0, "setvbuf 64 KiB");
    run_writer(writer_fflush_large, "stdout-pipe: fflush of a 64 KiB buffer to a full pipe");

    set_phase("stdout-pipe: bulk printf");
    static char big[BULK + 1];
    uint64_t rng = 99;
    size_t len = 0;
    while (len + 300 < BULK) {
        char line[400];
        make_line(line, (unsigned)(rng_next(&rng) % 1000000));
        size_t n = strlen(line);
        memcpy(big + len, line, n);
        len += n;
    }
    big[len] = '\0';
    g_out = big;
    g_out_len = len;
    double t0 = now_ms();
    t = spawn(writer_printf, NULL);
    pipe_event_wait(&g_entering);
    drain_expect(big, len, "bulk printf");
    join_within(t, BULK_LIMIT_MS, "bulk printf");
    fprintf(stderr, "bulk printf: %zu bytes in %.0f ms\n", len, now_ms() - t0);
}

/* ---- stdout on a pipe: every write call, against a regular file --------- */

/* A random mix of every write call, in three buffering modes. */
static void write_mix(FILE *out)
{
    static char block[20000];
    for (size_t i = 0; i < sizeof block; i++) block[i] = (i % 70 == 69) ? '\n' : (char)('a' + i % 23);
    block[sizeof block - 1] = '\0';
    uint64_t rng = 31;
    for (int mode = 0; mode < 3; mode++) {
        if (mode) {
            CHECK(fflush(out) == 0, "fflush before setvbuf");
            CHECK(setvbuf(out, NULL, mode == 1 ? _IOLBF : _IONBF, 0) == 0, "setvbuf");
        }
        for (int it = 0; it < 3000; it++) {
            unsigned r = (unsigned)rng_next(&rng);
            switch (r % 9) {
            case 0: CHECK(fprintf(out, "%d %s|", it, "word") > 0, "fprintf"); break;
            case 1: CHECK(fprintf(out, "%.*s\n", (int)((r >> 4) % 3000), block) >= 1, "fprintf long"); break;
            case 2: CHECK(fputs("a line\n", out) >= 0, "fputs"); break;
            case 3: {
                size_t n = (r >> 4) % sizeof block;
                CHECK_EQ(fwrite(block, 1, n, out), n);
                break;
            }
            case 4: CHECK_EQ(fputc('A' + (int)(r % 26), out), 'A' + (int)(r % 26)); break;
            case 5:
                flockfile(out);
                for (int k = 0; k < 50; k++) putc_unlocked(k % 10 == 9 ? '\n' : '0' + k % 10, out);
                funlockfile(out);
                break;
            case 6: CHECK(fflush(out) == 0, "fflush"); break;
            case 7: CHECK(fputs(block + sizeof block - 1 - (r >> 4) % 5000, out) >= 0, "fputs long"); break;
            case 8: CHECK_EQ(putc('\n', out), '\n'); break;
            }
        }
    }
    CHECK(fflush(out) == 0, "final fflush");
}

static char *g_wmix_ref;
static size_t g_wmix_len;

static void *wmix_reference(void *arg)
{
    (void)arg;
    char path[64];
    snprintf(path, sizeof path, "/tmp/t_stdio_std.wmix.%d", (int)getpid());
    FILE *f = fopen(path, "w+");
    CHECK(f != NULL, "fopen %s", path);
    write_mix(f);
    g_wmix_len = (size_t)ftell(f);
    g_wmix_ref = malloc(g_wmix_len);
    CHECK(g_wmix_ref != NULL, "malloc");
    rewind(f);
    CHECK_EQ(fread(g_wmix_ref, 1, g_wmix_len, f), g_wmix_len);
    fclose(f);
    unlink(path);
    return NULL;
}

static void *wmix_stdout(void *arg)
{
    (void)arg;
    write_mix(stdout);
    return NULL;
}

static void stdout_mix(void)
{
    set_phase("stdout-mix: the reference on a regular file");
    join(spawn(wmix_reference, NULL));
    set_phase("stdout-mix: every write call to a one-page pipe read in odd pieces");
    pthread_t t = spawn(wmix_stdout, NULL);
    static char buf[70000];
    uint64_t rng = 8;
    size_t got = 0;
    while (got < g_wmix_len) {
        size_t want = 1 + rng_next(&rng) % sizeof buf;
        if (want > g_wmix_len - got) want = g_wmix_len - got;
        ssize_t r = read(OTHER_END, buf, want);
        CHECK(r > 0, "read of the pipe returned %zd after %zu of %zu bytes", r, got, g_wmix_len);
        CHECK(memcmp(buf, g_wmix_ref + got, (size_t)r) == 0, "bytes %zu..%zu differ from the regular file's", got,
              got + (size_t)r);
        got += (size_t)r;
        if (rng_next(&rng) % 64 == 0) {
            sleep_ms(20); /* the writer fills the pipe and waits */
            probe_expect(&g_probe, 2000, "the mix writer waiting for room");
        }
    }
    join_within(t, BULK_LIMIT_MS, "mix writer");
}

/* ---- stdin on a pty ----------------------------------------------------- */

static void stdin_pty(void)
{
    set_phase("stdin-pty: fgets");
    pthread_t t = spawn(reader_fgets, NULL);
    expect_others_run("fgets(stdin) on a tty waiting");
    feed("typed ");
    probe_expect(&g_probe, 2000, "fgets(stdin) on a tty with half a line typed");
    feed("line\n");
    join(t);
    CHECK(strcmp(g_line, "typed line\n") == 0, "fgets on the tty read '%s'", g_line);

    set_phase("stdin-pty: getc");
    t = spawn(reader_getc, NULL);
    expect_others_run("getc(stdin) on a tty waiting");
    feed("q\n");
    CHECK_EQ((intptr_t)join(t), 'q');
    CHECK_EQ(getc(stdin), '\n');
}

/* ---- stdin freopen()ed onto a FIFO ------------------------------------- */

static const char *g_fifo;

static void *reader_freopen_fgets(void *arg)
{
    (void)arg;
    CHECK(freopen(g_fifo, "r", stdin) == stdin, "freopen(%s, \"r\", stdin)", g_fifo);
    return reader_fgets(NULL);
}

static void stdin_fifo(void)
{
    set_phase("stdin-fifo: freopen then fgets");
    char path[64];
    snprintf(path, sizeof path, "/tmp/t_stdio_std.%d", (int)getpid());
    CHECK(mkfifo(path, 0600) == 0, "mkfifo %s", path);
    g_fifo = path;
    int w = open(path, O_RDWR); /* a writer from the start: freopen's open does not wait */
    CHECK(w >= 0, "open FIFO");
    CHECK(dup2(w, OTHER_END) == OTHER_END, "dup2");
    close(w);
    pthread_t t = spawn(reader_freopen_fgets, NULL);
    expect_others_run("fgets(stdin) on a FIFO waiting");
    feed("through the fifo\n");
    join(t);
    unlink(path);
    CHECK(strcmp(g_line, "through the fifo\n") == 0, "fgets on the FIFO read '%s'", g_line);
}

/* ---- the parent: one exec per set-up ------------------------------------ */

static void run_child(const char *role, int stream_fd, int target, int other)
{
    set_phase(role);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        if (stream_fd >= 0) dup2(stream_fd, target);
        dup2(other, OTHER_END);
        /* The child must hold no other copy of either end (EOF). */
        if (stream_fd >= 0 && stream_fd != target && stream_fd != OTHER_END) close(stream_fd);
        if (other != OTHER_END && other != target) close(other);
        execl("/proc/self/exe", "t_stdio_std", role, (char *)NULL);
        _exit(127);
    }
    if (stream_fd >= 0) close(stream_fd);
    close(other);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: child status %#x", role, status);
}

int main(int argc, char **argv)
{
    watchdog(argc > 1 ? 15 : 120);
    if (argc > 1) {
        pipe_event_init(&g_entering);
        probe_start(&g_probe);
        if (strcmp(argv[1], "stdin-pipe") == 0) stdin_pipe();
        else if (strcmp(argv[1], "stdout-pipe") == 0) stdout_pipe();
        else if (strcmp(argv[1], "stdin-pty") == 0) stdin_pty();
        else if (strcmp(argv[1], "stdin-fifo") == 0) stdin_fifo();
        else if (strcmp(argv[1], "stdin-mix") == 0) stdin_mix();
        else if (strcmp(argv[1], "stdout-mix") == 0) stdout_mix();
        else CHECK(0, "unknown role %s", argv[1]);
        probe_stop(&g_probe);
        return 0;
    }
    /* T_STDIO_STD_SKIP=N: begin with the N-th set-up (to look at one). */
    const char *skip_env = getenv("T_STDIO_STD_SKIP");
    int skip = skip_env ? atoi(skip_env) : 0;
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    if (skip <= 0) run_child("stdin-pipe", p[0], 0, p[1]);

    CHECK(pipe(p) == 0, "pipe");
    CHECK(fcntl(p[1], F_SETPIPE_SZ, 4096) == 4096, "F_SETPIPE_SZ");
    if (skip <= 1) run_child("stdout-pipe", p[1], 1, p[0]);

    int master = posix_openpt(O_RDWR | O_NOCTTY);
    CHECK(master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0, "posix_openpt");
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    CHECK(slave >= 0, "open %s", ptsname(master));
    struct termios tio;
    CHECK(tcgetattr(slave, &tio) == 0, "tcgetattr");
    tio.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
    tio.c_lflag |= ICANON;
    CHECK(tcsetattr(slave, TCSANOW, &tio) == 0, "tcsetattr");
    if (skip <= 2) run_child("stdin-pty", slave, 0, master);

    CHECK(pipe(p) == 0, "pipe");
    if (skip <= 3) run_child("stdin-fifo", -1, 0, p[1]);
    close(p[0]);

    CHECK(pipe(p) == 0, "pipe");
    if (skip <= 4) run_child("stdin-mix", p[0], 0, p[1]);

    CHECK(pipe(p) == 0, "pipe");
    CHECK(fcntl(p[1], F_SETPIPE_SZ, 4096) == 4096, "F_SETPIPE_SZ");
    if (skip <= 5) run_child("stdout-mix", p[1], 1, p[0]);
    puts("t_stdio_std: ok");
    return 0;
}
