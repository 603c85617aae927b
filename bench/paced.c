/* An open-loop HTTP/1.1 load at a fixed mean rate, with latency measured from each request's
 * planned time.
 *
 * wrk with a per-connection delay (the paced runs of bench/probe_overhead.py before this) is a
 * closed loop whose 100 connections' timers fire together: requests arrive in bursts, and each
 * one's latency is mostly the queue behind the others of its burst. Any per-request cost is then
 * multiplied by the burst's depth, and the p50 of a 30 us request came out at 500 us. Here
 * requests arrive as a Poisson process (independent, exponentially spaced: how many clients'
 * requests arrive), each on an idle keep-alive connection; one that finds none waits for one, and
 * its latency still counts from when it was due, so a stall is not hidden by the requests it
 * delays (what wrk2 calls coordinated omission).
 *
 *   paced HOST PORT PATH RATE SECONDS CONNECTIONS [SEED]
 *
 * Prints one line: "paced requests seconds rps p50_us p90_us p99_us max_us waited errors", where
 * waited counts requests that found every connection busy. Responses must carry Content-Length.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024
#define BUF 65536

struct conn {
    int fd;
    int busy;
    uint64_t due_ns; /* when the request in flight was planned */
    size_t have;     /* bytes of the response read so far */
    char buf[BUF];
};

static struct conn conns[MAX_CONNS];
/* Idle connections, least recently used first: each is used in turn, so none sits idle long
 * enough for the server's keep-alive timeout (Node's is 5 s) to close it. */
static int idle[MAX_CONNS], idle_head, idle_count;

static void idle_push(int i) { idle[(idle_head + idle_count++) % MAX_CONNS] = i; }

static int idle_pop(void) {
    int i = idle[idle_head];
    idle_head = (idle_head + 1) % MAX_CONNS;
    idle_count--;
    return i;
}
static char request[512];
static int request_len;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

/* Bytes of a whole response at the start of buf, 0 while incomplete, -1 if it has no length. */
static long response_size(const char *buf, size_t have) {
    const char *end = memmem(buf, have, "\r\n\r\n", 4);
    if (!end)
        return 0;
    size_t head = (size_t)(end - buf) + 4;
    long length = -1;
    for (const char *line = memchr(buf, '\n', head); line && line < end;
         line = memchr(line + 1, '\n', head - (size_t)(line + 1 - buf))) {
        if (strncasecmp(line + 1, "content-length:", 15) == 0) {
            length = strtol(line + 16, NULL, 10);
            break;
        }
    }
    if (length < 0)
        return -1;
    return have >= head + (size_t)length ? (long)(head + (size_t)length) : 0;
}

static void send_request(struct conn *c, uint64_t due) {
    c->busy = 1;
    c->due_ns = due;
    c->have = 0;
    if (write(c->fd, request, (size_t)request_len) != request_len)
        die("write");
}

static int by_value(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static double percentile_us(const uint64_t *sorted, size_t n, double p) {
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)sorted[i] / 1000.0;
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: paced HOST PORT PATH RATE SECONDS CONNECTIONS [SEED]\n");
        return 2;
    }
    const char *host = argv[1], *path = argv[3];
    int port = atoi(argv[2]), n_conns = atoi(argv[6]);
    double rate = atof(argv[4]), seconds = atof(argv[5]);
    unsigned seed = argc > 7 ? (unsigned)atoi(argv[7]) : 1;
    if (n_conns < 1 || n_conns > MAX_CONNS || rate <= 0 || seconds <= 0) {
        fprintf(stderr, "paced: 1..%d connections and a positive rate and duration\n", MAX_CONNS);
        return 2;
    }
    /* Sleeps end when asked, not up to 50 us later: arrivals are planned to the microsecond. */
    prctl(PR_SET_TIMERSLACK, 1UL);
    request_len = snprintf(request, sizeof(request),
                           "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: paced\r\n\r\n", path,
                           host, port);

    int ep = epoll_create1(0);
    if (ep < 0)
        die("epoll_create1");
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &to.sin_addr) != 1) {
        fprintf(stderr, "paced: HOST must be an IPv4 address\n");
        return 2;
    }
    for (int i = 0; i < n_conns; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        if (fd < 0 || connect(fd, (struct sockaddr *)&to, sizeof(to)) < 0)
            die("connect");
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        conns[i].fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
            die("epoll_ctl");
        idle_push(i);
    }

    size_t cap = (size_t)(rate * seconds * 1.5) + 1024, done = 0, waited = 0, errors = 0;
    uint64_t *latencies = malloc(cap * sizeof(*latencies));
    /* Requests due while every connection was busy, oldest first (a ring of due times). */
    uint64_t *backlog = malloc(cap * sizeof(*backlog));
    size_t back_head = 0, back_tail = 0;
    if (!latencies || !backlog)
        die("malloc");

    srand48(seed);
    uint64_t start = now_ns(), end = start + (uint64_t)(seconds * 1e9);
    uint64_t next_due = start;
    struct epoll_event events[64];
    for (;;) {
        uint64_t now = now_ns();
        while (next_due <= now && next_due < end) {
            if (idle_count > 0)
                send_request(&conns[idle_pop()], next_due);
            else if (back_tail - back_head < cap)
                backlog[back_tail++ % cap] = next_due, waited++;
            next_due += (uint64_t)(-log(1.0 - drand48()) / rate * 1e9);
        }
        if (now >= end && idle_count == n_conns && back_head == back_tail)
            break;
        if (now >= end + 5000000000ull) { /* a response that never came */
            errors += (size_t)(n_conns - idle_count);
            break;
        }
        uint64_t wake = next_due < end ? next_due : end + 5000000000ull;
        struct timespec timeout = {0};
        if (wake > now) {
            timeout.tv_sec = (time_t)((wake - now) / 1000000000u);
            timeout.tv_nsec = (long)((wake - now) % 1000000000u);
        }
        int n = epoll_pwait2(ep, events, 64, &timeout, NULL);
        if (n < 0 && errno != EINTR)
            die("epoll_pwait2");
        for (int e = 0; e < n; e++) {
            int i = (int)events[e].data.u32;
            struct conn *c = &conns[i];
            ssize_t got = read(c->fd, c->buf + c->have, BUF - c->have);
            if (got <= 0) {
                fprintf(stderr, "paced: connection %d closed by the server\n", i);
                return 1;
            }
            c->have += (size_t)got;
            long size = response_size(c->buf, c->have);
            if (size < 0) {
                fprintf(stderr, "paced: a response without Content-Length\n");
                return 1;
            }
            if (size == 0)
                continue;
            if (!c->busy || (size_t)size != c->have) {
                errors++; /* unasked-for or extra bytes: the count below would be wrong */
                c->have = 0;
            }
            uint64_t at = now_ns();
            if (c->busy && done < cap)
                latencies[done++] = at - c->due_ns;
            c->busy = 0;
            if (back_head != back_tail)
                send_request(c, backlog[back_head++ % cap]);
            else
                idle_push(i);
        }
    }
    double took = (double)(now_ns() - start) / 1e9;
    qsort(latencies, done, sizeof(*latencies), by_value);
    printf("paced %zu %.3f %.1f %.1f %.1f %.1f %.1f %zu %zu\n", done, took,
           (double)done / seconds, percentile_us(latencies, done, 0.50),
           percentile_us(latencies, done, 0.90), percentile_us(latencies, done, 0.99),
           done ? (double)latencies[done - 1] / 1000.0 : 0.0, waited, errors);
    return errors ? 1 : 0;
}
