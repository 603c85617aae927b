/* bytewatch's kernel side: HTTP/1.x triage at the exit of syscalls.
 *
 * Only tracepoint arguments, the saved user registers of a syscall, user memory and BPF helpers
 * are read, never kernel structs, so the same source runs on any 5.8+ kernel (ring buffer) without
 * kprobes. A connection is tracked from the first read or write that starts an HTTP/1.x message;
 * from then on every syscall on it is counted, and bytes are copied out only until the message's
 * capture budget is spent. That keeps the common case to one record per request and response.
 *
 * Compile-time sizes come from the loader as -D flags; everything else is in the config map.
 * BW_TASK_BTF is set where tracepoint programs may use the current task as a BTF pointer (task
 * storage since 5.12, bpf_task_pt_regs since 5.15); the loader falls back to a build without.
 */
#include <uapi/linux/ptrace.h>
#include <asm/unistd.h>
#include "http_event.h"

#ifndef BW_RINGBUF_PAGES
#define BW_RINGBUF_PAGES 2048
#endif
#ifndef BW_MAX_CONNS
#define BW_MAX_CONNS 65536
#endif
#ifndef BW_SPILL_PAGES
#define BW_SPILL_PAGES 256
#endif
#define BW_MAX_IOV 8
#define BW_EMIT_ATTEMPTS 16
#define BW_SPILL_ATTEMPTS 4
#define BW_PEEK 16
#define BW_EINPROGRESS 115
#define BW_EBADF 9
#define BW_AF_INET 2
#define BW_AF_INET6 10

/* The arguments of a read or write that moved bytes: a syscall's own registers, read at its exit,
 * or an SSL call's, remembered at its entry. */
struct bw_io_args {
    __u64 buf;   /* the buffer, or the iovec array when vectored */
    __u64 vlen;  /* iovec count when vectored */
    __u64 pid_tgid; /* the caller's, taken once per call: helpers are not free */
    __s32 fd;
    __u8 vectored;
    __u8 direction;
    __u8 _pad[2];
};

/* The scratch record has room for one payload past its end, so that masked offsets and
 * lengths stay provably inside the map value when several iovecs are copied in a row. */
struct bw_scratch {
    struct bw_event ev;
    __u8 spill[BW_DATA_MAX];
};

BPF_ARRAY(config, struct bw_config, 1);
BPF_PERCPU_ARRAY(counters, __u64, BW_COUNTER_MAX);
BPF_HASH(filter_pids, __u32, __u8, 4096);
BPF_HASH(filter_comms, struct bw_comm_key, __u8, 256);
BPF_HASH(filter_ports, __u16, __u8, 1024);
BPF_HASH(listen_ports, struct bw_conn_key, __u16, 16384);
BPF_TABLE("lru_hash", struct bw_conn_key, struct bw_conn, conns, BW_MAX_CONNS);
BPF_PERCPU_ARRAY(scratch, struct bw_scratch, 1);
BPF_TABLE("lru_hash", struct bw_conn_key, struct bw_stash, stash, 8192);
BPF_PERCPU_ARRAY(stash_scratch, struct bw_stash, 1);
BPF_RINGBUF_OUTPUT(events, BW_RINGBUF_PAGES);
/* Where a record goes when the main ring refuses it (see emit): a second ring has its own lock.
 * User space reads both and puts each connection's records back in sequence order. */
BPF_RINGBUF_OUTPUT(spill, BW_SPILL_PAGES);

static __always_inline void count(__u32 which) {
    __u64 *v = counters.lookup(&which);
    if (v)
        *v += 1;
}

#ifdef BW_TLS
/* A thread inside SSL_read or SSL_write: the call's arguments, and the socket that the syscalls
 * the library makes meanwhile reveal. */
struct bw_tls_call {
    __u64 ssl;
    __u64 buf;
    __u64 done_ptr; /* SSL_*_ex: where the library stores the byte count */
    __s32 fd;       /* -1 until a syscall inside the call shows the socket */
    __s32 last_read_fd; /* the thread's last read outside SSL calls, -1 when none (see below) */
    __u8 direction;
    __u8 ex;
    __u8 live;
    __u8 _pad[5];
};

struct bw_tls_key {
    __u64 ssl;
    __u32 tgid;
    __u32 _pad;
};

/* The socket each SSL object was last seen using, for calls served from OpenSSL's own buffer. */
BPF_TABLE("lru_hash", struct bw_tls_key, __s32, tls_sockets, 65536);
#ifdef BW_TASK_BTF
BPF_TASK_STORAGE(tls_calls, struct bw_tls_call);
#else
BPF_HASH(tls_calls, __u64, struct bw_tls_call, 16384);
#endif

static __always_inline struct bw_tls_call *tls_call(int create) {
#ifdef BW_TASK_BTF
    return tls_calls.task_storage_get((struct task_struct *)bpf_get_current_task_btf(), 0,
                                      create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
#else
    __u64 id = bpf_get_current_pid_tgid();
    if (!create)
        return tls_calls.lookup(&id);
    struct bw_tls_call empty = {};
    return tls_calls.lookup_or_try_init(&id, &empty);
#endif
}

static __always_inline void tls_call_done(struct bw_tls_call *call) {
    call->live = 0;
#ifndef BW_TASK_BTF
    __u64 id = bpf_get_current_pid_tgid();
    tls_calls.delete(&id);
#endif
}

/* Inside SSL_read/SSL_write a read or write moves ciphertext: note its socket and skip it.
 * Outside, remember the thread's last read: libraries with memory BIOs (Node, asyncio) read the
 * ciphertext from the socket and then, on the same thread, call SSL_read to decrypt it. */
static __always_inline int inside_tls_call(__s32 fd, __u8 dir) {
    struct bw_tls_call *call = tls_call(0);
    if (!call)
        return 0;
    if (!call->live) {
        if (dir == BW_INGRESS)
            call->last_read_fd = fd;
        return 0;
    }
    call->fd = fd;
    return 1;
}
#endif

/* Is this process one the user asked to watch? The agent never watches itself. */
static __always_inline int wanted(__u32 tgid) {
    __u32 zero = 0;
    struct bw_config *cfg = config.lookup(&zero);
    if (!cfg || tgid == cfg->self_tgid)
        return 0;
    if (!cfg->filter_pids)
        return 1;
    if (filter_pids.lookup(&tgid))
        return 1;
    /* Every other process's reads and writes come this far: without names to match, the name
     * (a helper call) and its lookup are skipped. */
    if (!cfg->filter_comms)
        return 0;
    struct bw_comm_key key = {};
    bpf_get_current_comm(&key.comm, sizeof(key.comm));
    return filter_comms.lookup(&key) != 0;
}

/* Whether the first bytes are HTTP/2's connection preface, "PRI * HTTP/2.0" (RFC 9113 section
 * 3.4), which a client sends first, cleartext (h2c) or inside TLS alike. */
static __always_inline int http2_preface(const __u8 *p, __u32 n) {
    return n >= 14 && p[0] == 'P' && p[1] == 'R' && p[2] == 'I' && p[3] == ' ' && p[4] == '*' &&
           p[5] == ' ' && p[6] == 'H' && p[7] == 'T' && p[8] == 'T' && p[9] == 'P' &&
           p[10] == '/' && p[11] == '2' && p[12] == '.' && p[13] == '0';
}

#define BW_U64(a, b, c, d, e, f, g, h)                                                         \
    ((__u64)(a) | (__u64)(b) << 8 | (__u64)(c) << 16 | (__u64)(d) << 24 | (__u64)(e) << 32 |     \
     (__u64)(f) << 40 | (__u64)(g) << 48 | (__u64)(h) << 56)
#define BW_PREFIX_MAX 7 /* a start line is told by its first 8 bytes at most */
#define BW_BEGINS 3     /* start_token: not a start line yet, but the beginning of one */

/* What the first `n` bytes of `bytes` (little-endian) are: a request line's start (1), a status
 * line's (2), too few to tell but the beginning of one (BW_BEGINS), or nothing (0). A method
 * token and its space are enough: what follows is user space's to judge, so that garbage after
 * a method is counted as a parse error rather than silently ignored. Straight-line code on one
 * word: it also judges bytes joined from several syscalls (start_after_prefix), where a
 * byte-by-byte parse was too much for the verifier in the raw sys_exit build. */
#define BW_LETTER(c) (1U << ((c) - 'A'))
#define BW_RARE_FIRST_LETTERS                                                                  \
    (BW_LETTER('P') | BW_LETTER('M') | BW_LETTER('C') | BW_LETTER('L') | BW_LETTER('U') |     \
     BW_LETTER('R'))

static __always_inline int start_token(__u64 bytes, __u32 n) {
    if (n == 0)
        return 0;
    __u64 mask = n > BW_PREFIX_MAX ? ~0ULL : (1ULL << (8 * n)) - 1;
    __u64 seen = bytes & mask;
#define BW_TOKEN(kind, len, a, b, c, d, e, f, g, h)                                            \
    if (((BW_U64(a, b, c, d, e, f, g, h) ^ seen) & mask &                                      \
         (((len) > BW_PREFIX_MAX) ? ~0ULL : (1ULL << (8 * (len))) - 1)) == 0)                  \
        return n >= (len) ? (kind) : BW_BEGINS;
    BW_TOKEN(1, 4, 'G', 'E', 'T', ' ', 0, 0, 0, 0)
    BW_TOKEN(1, 4, 'P', 'U', 'T', ' ', 0, 0, 0, 0)
    BW_TOKEN(1, 5, 'P', 'O', 'S', 'T', ' ', 0, 0, 0)
    BW_TOKEN(1, 6, 'P', 'A', 'T', 'C', 'H', ' ', 0, 0)
    BW_TOKEN(1, 5, 'H', 'E', 'A', 'D', ' ', 0, 0, 0)
    BW_TOKEN(1, 7, 'D', 'E', 'L', 'E', 'T', 'E', ' ', 0)
    BW_TOKEN(1, 8, 'O', 'P', 'T', 'I', 'O', 'N', 'S', ' ')
    BW_TOKEN(1, 8, 'C', 'O', 'N', 'N', 'E', 'C', 'T', ' ')
    BW_TOKEN(1, 6, 'T', 'R', 'A', 'C', 'E', ' ', 0, 0)
    BW_TOKEN(2, 7, 'H', 'T', 'T', 'P', '/', '1', '.', 0)
    /* Caches' PURGE, and WebDAV's (file sync: Nextcloud's clients are mostly PROPFIND), CalDAV's
     * and CardDAV's methods, tried only after a first letter one of them has: a status line or a
     * body does not pay for them. The two longer than a word are told by their first 8 bytes. */
    __u32 letter = (__u32)(seen & 0xff) - 'A';
    if (letter >= 26 || !((BW_RARE_FIRST_LETTERS >> letter) & 1))
        return 0;
    BW_TOKEN(1, 6, 'P', 'U', 'R', 'G', 'E', ' ', 0, 0)
    BW_TOKEN(1, 8, 'P', 'R', 'O', 'P', 'F', 'I', 'N', 'D')
    BW_TOKEN(1, 8, 'P', 'R', 'O', 'P', 'P', 'A', 'T', 'C')
    BW_TOKEN(1, 6, 'M', 'K', 'C', 'O', 'L', ' ', 0, 0)
    BW_TOKEN(1, 5, 'C', 'O', 'P', 'Y', ' ', 0, 0, 0)
    BW_TOKEN(1, 5, 'M', 'O', 'V', 'E', ' ', 0, 0, 0)
    BW_TOKEN(1, 5, 'L', 'O', 'C', 'K', ' ', 0, 0, 0)
    BW_TOKEN(1, 7, 'U', 'N', 'L', 'O', 'C', 'K', ' ', 0)
    BW_TOKEN(1, 7, 'R', 'E', 'P', 'O', 'R', 'T', ' ', 0)
#undef BW_TOKEN
    return 0;
}

/* The first 8 bytes at `p` (readable, whatever `n`) as start_token's word. */
static __always_inline __u64 first_word(const __u8 *p) {
    __u64 word = 0;
    __builtin_memcpy(&word, p, sizeof(word));
    return word;
}

/* 0: not an HTTP/1.x start line; 1: a request line; 2: a status line. Only the first bytes
 * are looked at: user space parses properly and counts what turns out to be garbage. */
static __always_inline int http_start(const __u8 *p, __u32 n) {
    int kind = start_token(first_word(p), n);
    return kind == BW_BEGINS ? 0 : kind;
}

/* The first bytes a syscall moved, for triage. */
static __always_inline __u32 peek(__u8 *out, const struct bw_io_args *a, __u32 total) {
    __u64 base = a->buf;
    __u64 len = total;
    if (a->vectored) {
        struct { __u64 base; __u64 len; } iov = {};
        if (bpf_probe_read_user(&iov, sizeof(iov), (void *)a->buf))
            return 0;
        base = iov.base;
        len = iov.len < total ? iov.len : total;
    }
    __u32 n = len < BW_PEEK ? (__u32)len : BW_PEEK;
    if (n == 0 || bpf_probe_read_user(out, n & (BW_PEEK * 2 - 1), (void *)base))
        return 0;
    return n;
}

/* Copy up to `limit` of the bytes the syscall moved into the record's data[] from `base` on
 * (after a stashed request); returns how many. */
static __always_inline __u32 copy_payload(struct bw_scratch *s, const struct bw_io_args *a,
                                          __u64 base, __u64 limit) {
    asm volatile("" : "+r"(limit));
    if (limit > BW_DATA_MAX)
        limit = BW_DATA_MAX;
    base &= BW_STASH_MAX * 2 - 1;
    if (!a->vectored) {
        if (bpf_probe_read_user(&s->ev.data[base], limit, (void *)a->buf))
            return 0;
        return limit;
    }
    __u64 off = 0;
#pragma unroll
    for (int i = 0; i < BW_MAX_IOV; i++) {
        if (i >= a->vlen || off >= limit)
            break;
        struct { __u64 base; __u64 len; } iov = {};
        if (bpf_probe_read_user(&iov, sizeof(iov), (void *)(a->buf + i * sizeof(iov))))
            break;
        __u64 n = iov.len < (limit - off) ? iov.len : limit - off;
        if (n == 0)
            continue;
        /* Masks the verifier can follow: base + off < BW_DATA_MAX (it always is: the limit
         * leaves room for the base) and n <= BW_DATA_MAX, and the scratch value has
         * BW_DATA_MAX spare bytes past data[]. */
        off &= BW_DATA_MAX - 1;
        asm volatile("" : "+r"(n));
        if (n > BW_DATA_MAX)
            n = BW_DATA_MAX;
        if (bpf_probe_read_user(&s->ev.data[(base + off) & (BW_DATA_MAX - 1)], n,
                                (void *)iov.base))
            break;
        off += n;
    }
    return off;
}

static __always_inline void stamp(struct bw_event *ev, __u8 kind, const struct bw_conn_key *key,
                                  struct bw_conn *c, __u64 now, __u64 id) {
    ev->kind = kind;
    ev->role = c->role;
    ev->tgid = key->tgid;
    ev->tid = (__u32)id;
    ev->fd = key->fd;
    ev->conn_id = c->conn_id;
    ev->ts_ns = now;
    ev->in_bytes = c->in_bytes;
    ev->in_last_ns = c->in_last_ns;
    ev->out_bytes = c->out_bytes;
    ev->out_last_ns = c->out_last_ns;
    ev->local_port = c->local_port;
    ev->remote_port = c->remote_port;
    /* Not atomic: BCC's default BPF target cannot use an atomic add's result, and two CPUs
     * emitting for one connection in the same instant is rare; user space tolerates it. */
    ev->seq = c->seq;
    c->seq = ev->seq + 1;
    /* User space names a connection after its first record's thread (and by its process's name
     * from /proc first of all), and the helper is not free: with it removed outright,
     * bench.kernel_programs on nginx went from 5,934 to 5,310 ns of program time per request. */
    if (!c->named) {
        bpf_get_current_comm(&ev->comm, sizeof(ev->comm));
        c->named = 1;
    } else {
        __builtin_memset(&ev->comm, 0, sizeof(ev->comm));
    }
    ev->req_ts_ns = 0;
    ev->req_other_bytes = 0;
    ev->req_other_last_ns = 0;
    ev->req_len = 0;
    ev->req_seq = 0;
}

static __always_inline void emit(struct bw_scratch *s, __u32 captured) {
    __u64 size = sizeof(struct bw_event) - BW_DATA_MAX + (captured & (BW_DATA_MAX * 2 - 1));
    if (size > sizeof(struct bw_event))
        size = sizeof(struct bw_event);
    /* A reservation can fail with room to spare. Since 6.15 the ring's lock is a resilient
     * spinlock that can give up instead of waiting, and on our 6.18 VMs it does so now and then
     * while the other CPU holds it. Counted per attempt (a debug build, wrk on nginx and Node,
     * host-wide), failures come in two kinds of runs:
     * - short ones, which the next 1 to 16 attempts get through (about 20 in 2.3 million
     *   records; with 4 attempts some of them were lost);
     * - long ones, which outlast even 256 attempts (12 us): 30 of 865,000 records with Node,
     *   none with nginx. Retrying longer would not save them, only stall the syscall.
     * So 16 attempts, then the spill ring, whose lock nobody else is holding. On rings that are
     * really full (the agent has fallen behind) every record pays all attempts, about 1 us, and
     * is counted as lost. 64-bit counters: before 5.16 a 32-bit value spilled to the stack
     * loses its bounds. */
    __u64 main_attempts = BW_EMIT_ATTEMPTS;
#ifdef BW_SPILL_EVERY
    /* Tests only: send every Nth record of a connection the rare way. */
    if (s->ev.seq % BW_SPILL_EVERY == BW_SPILL_EVERY - 1)
        main_attempts = 0;
#endif
#pragma clang loop unroll(disable)
    for (__u64 attempt = 0; attempt < main_attempts; attempt++) {
        if (!events.ringbuf_output(&s->ev, size, 0)) {
            count(BW_COUNTER_RECORDS);
            return;
        }
    }
#pragma clang loop unroll(disable)
    for (__u64 attempt = 0; attempt < BW_SPILL_ATTEMPTS; attempt++) {
        if (!spill.ringbuf_output(&s->ev, size, 0)) {
            count(BW_COUNTER_RECORDS);
            count(BW_COUNTER_SPILLED);
            return;
        }
    }
    count(BW_COUNTER_LOST);
}

static __always_inline __u8 request_direction(const struct bw_conn *c) {
    return c->role == BW_ROLE_CLIENT ? BW_EGRESS : BW_INGRESS;
}

/* Send a stashed request on its own: something other than its response came first. */
static __always_inline void flush_stash(struct bw_conn_key *key, struct bw_conn *c) {
    c->stashed = 0;
    struct bw_stash *st = stash.lookup(key);
    if (!st)
        return;
    __u32 zero = 0;
    struct bw_scratch *s = scratch.lookup(&zero);
    if (s) {
        __u32 seq = c->seq;
        stamp(&s->ev, BW_KIND_DATA, key, c, st->ts_ns, bpf_get_current_pid_tgid());
        c->seq = seq; /* stamp took a number; the request already had one */
        __u8 dir = request_direction(c);
        s->ev.direction = dir;
        s->ev.flags = BW_FLAG_MSG_START;
        s->ev.seq = st->seq;
        if (dir == BW_INGRESS) {
            s->ev.out_bytes = st->other_bytes;
            s->ev.out_last_ns = st->other_last_ns;
        } else {
            s->ev.in_bytes = st->other_bytes;
            s->ev.in_last_ns = st->other_last_ns;
        }
        __u32 len = st->len & (BW_STASH_MAX * 2 - 1);
        if (len > BW_STASH_MAX)
            len = BW_STASH_MAX;
        s->ev.len = len;
        s->ev.captured = len;
        bpf_probe_read_kernel(s->ev.data, len, st->data);
        emit(s, len);
    }
}

/* A connection's stash slot, created on its first stashed request and written in place from
 * then on: an update per request copied the whole 1 KiB value into a new element under the LRU
 * map's lock, and the delete after its response took the lock again (the two were ~0.3 us of
 * the ~4.7 us of program time a keep-alive request cost, bpf_stats on saturated nginx). Whether
 * the slot holds a request is c->stashed; close_conn deletes it. */
static __always_inline struct bw_stash *stash_slot(struct bw_conn_key *key) {
    struct bw_stash *st = stash.lookup(key);
    if (st)
        return st;
    __u32 zero = 0;
    struct bw_stash *blank = stash_scratch.lookup(&zero);
    if (!blank || stash.update(key, blank))
        return 0;
    return stash.lookup(key);
}

/* Whether a request can wait in the stash: one whole buffer that fits the slot and the budget. */
static __always_inline int stashable(const struct bw_io_args *a, long ret,
                                     const struct bw_config *cfg) {
    return !a->vectored && ret <= BW_STASH_MAX && ret <= cfg->capture_bytes;
}

/* The connection's stash slot with this call's bytes read into it, or 0. */
static __always_inline struct bw_stash *read_into_stash(struct bw_conn_key *key,
                                                        const struct bw_io_args *a, long ret) {
    struct bw_stash *st = stash_slot(key);
    if (!st)
        return 0;
    __u64 len = ret;
    asm volatile("" : "+r"(len));
    if (len > BW_STASH_MAX || bpf_probe_read_user(st->data, len, (void *)a->buf))
        return 0;
    return st;
}

/* The request just read into `st` waits there until its response starts. */
static __always_inline void keep_request(struct bw_stash *st, struct bw_conn *c, __u8 dir,
                                         long ret, __u64 now) {
    st->ts_ns = now;
    st->len = (__u32)ret;
    if (dir == BW_INGRESS) {
        st->other_bytes = c->out_bytes;
        st->other_last_ns = c->out_last_ns;
    } else {
        st->other_bytes = c->in_bytes;
        st->other_last_ns = c->in_last_ns;
    }
    st->seq = c->seq;
    c->seq = st->seq + 1;
    c->stashed = 1;
}

/* The connection ends: its stashed request and a CLOSE record leave, its state goes. */
static __always_inline void close_conn(struct bw_conn_key *key) {
    struct bw_conn *c = conns.lookup(key);
    if (!c)
        return;
    if (c->tracked && !c->ignored) {
        if (c->stashed)
            flush_stash(key, c);
        __u32 zero = 0;
        struct bw_scratch *s = scratch.lookup(&zero);
        if (s) {
            stamp(&s->ev, BW_KIND_CLOSE, key, c, bpf_ktime_get_ns(),
                  bpf_get_current_pid_tgid());
            s->ev.direction = 0;
            s->ev.flags = 0;
            s->ev.len = 0;
            s->ev.captured = 0;
            emit(s, 0);
        }
    }
    conns.delete(key);
    stash.delete(key);
    listen_ports.delete(key);
}

/* A new socket on this fd: a TLS stream left from an earlier socket on it ended unseen. */
static __always_inline void end_tls_stream(const struct bw_conn_key *key) {
#ifdef BW_TLS
    if (key->fd < 0 || key->fd > BW_TLS_FD_MASK)
        return;
    struct bw_conn_key tls = {.tgid = key->tgid, .fd = key->fd | BW_TLS_FD};
    close_conn(&tls);
#endif
}

static __always_inline int port_allowed(struct bw_config *cfg, struct bw_conn *c) {
    if (!cfg->filter_ports)
        return 1;
    __u16 port = c->role == BW_ROLE_SERVER ? c->local_port : c->remote_port;
    /* An unknown port is let through; user space applies the filter once it knows. */
    return port == 0 || filter_ports.lookup(&port) != 0;
}

/* A budget's top bit: its direction's current message has been counted as truncated. Budgets
 * are at most 4096 bytes (probe/loader.py), so the bit is free. */
#define BW_CUT_COUNTED 0x80000000u

static __always_inline __u32 budget_left(__u32 budget) {
    return budget & ~BW_CUT_COUNTED;
}

/* Count a read or write into its direction's totals and capture budget; returns how many of its
 * bytes the budget lets through. A message start renews the budgets of both directions: the
 * other direction's next message (the response to a request, the request after a response)
 * begins with that direction's next bytes, and those may be too few to tell a start line by,
 * "H" and then "TTP/1.1 200 OK...". With budget they are copied, and user space joins them.
 * A message is counted as truncated once, at the first of its bytes left uncopied: a renewal
 * from the other direction (a pipelined request read while a large response is written) lets
 * more of it be copied but does not make it a new message, and a budget that ran out exactly
 * where a syscall ended is counted at the next one. */
static __always_inline __u32 account(struct bw_conn *c, const struct bw_io_args *a, long ret,
                                     __u64 now, int start, const struct bw_config *cfg) {
    __u32 *budget;
    if (a->direction == BW_INGRESS) {
        __sync_fetch_and_add(&c->in_bytes, ret);
        c->in_last_ns = now;
        budget = &c->in_budget;
    } else {
        __sync_fetch_and_add(&c->out_bytes, ret);
        c->out_last_ns = now;
        budget = &c->out_budget;
    }
    if (start) {
        /* This direction's message is new; the other's goes on, counted or not. */
        c->in_budget = cfg->capture_bytes |
                       (a->direction == BW_INGRESS ? 0 : c->in_budget & BW_CUT_COUNTED);
        c->out_budget = cfg->capture_bytes |
                        (a->direction == BW_EGRESS ? 0 : c->out_budget & BW_CUT_COUNTED);
    }
    __u32 counted = *budget & BW_CUT_COUNTED;
    __u32 left = budget_left(*budget);
    __u32 want = ret < left ? (__u32)ret : left;
    if ((__u32)ret > want && !counted) {
        count(BW_COUNTER_TRUNCATED);
        counted = BW_CUT_COUNTED;
    }
    *budget = (left - want) | counted;
    return want;
}

/* Fill in and send the record of a read or write whose first `got` payload bytes are in data[]
 * from `base` on, after the stashed request `st` it answers (none: a DATA record). */
static __always_inline void send_message(struct bw_scratch *s, const struct bw_io_args *a,
                                         struct bw_conn_key *key, struct bw_conn *c, __u64 now,
                                         long ret, int start, const struct bw_stash *st,
                                         __u64 base, __u32 got) {
    stamp(&s->ev, st ? BW_KIND_PAIR : BW_KIND_DATA, key, c, now, a->pid_tgid);
    s->ev.direction = a->direction;
    /* A PAIR's base is its request; a DATA record's is bytes of its own message (a prefix). */
    __u32 own = st ? got : (__u32)base + got;
    s->ev.flags = (start ? BW_FLAG_MSG_START : 0) | ((__u32)ret > own ? BW_FLAG_CUT : 0);
    s->ev.len = (__u32)ret;
    s->ev.captured = (__u32)base + got;
    if (st) {
        s->ev.req_ts_ns = st->ts_ns;
        s->ev.req_other_bytes = st->other_bytes;
        s->ev.req_other_last_ns = st->other_last_ns;
        s->ev.req_len = (__u32)base;
        s->ev.req_seq = st->seq;
    }
    c->stashed = 0;
    emit(s, (__u32)base + got);
}

/* The same work as on_data below for a connection already tracked, with the bytes copied first
 * and judged after: the 16-byte peek (and a vectored call's first iovec) read on their own cost a
 * user-memory read each, as much as the copy that follows them. So a keep-alive request or
 * response is read once, straight to where it goes: a whole small request into its stash slot,
 * anything else into the record. When the guess about where fails (a request body, a pipelined
 * request while one is stashed), nothing has changed yet and on_data does it the slow way; and a
 * call past its message's budget (a large body) is only peeked, as before. 1 when done. */
static __always_inline int on_tracked_data(struct bw_io_args *a, long ret, struct bw_config *cfg,
                                           struct bw_conn_key *key, struct bw_conn *c,
                                           __u64 now) {
    __u8 asks = a->direction == request_direction(c);
    if (asks && !c->stashed && stashable(a, ret, cfg)) {
        struct bw_stash *st = read_into_stash(key, a, ret);
        if (!st)
            return 0;
        if (http_start(st->data, ret < BW_PEEK ? (__u32)ret : BW_PEEK) != 1)
            return 0; /* a request body: on_data sends it as data */
        account(c, a, ret, now, 1, cfg);
        keep_request(st, c, a->direction, ret, now);
        return 1;
    }

    __u32 zero = 0;
    struct bw_scratch *s = scratch.lookup(&zero);
    if (!s)
        return 0;
    struct bw_stash *st = 0;
    __u64 base = 0;
    if (c->stashed) {
        st = stash.lookup(key);
        if (!st)
            return 0;
        base = st->len & (BW_STASH_MAX * 2 - 1);
        if (base > BW_STASH_MAX)
            base = BW_STASH_MAX;
    }
    __u64 room = BW_DATA_MAX - base;
    __u64 guess = (__u64)ret < room ? (__u64)ret : room;
    if (budget_left(a->direction == BW_INGRESS ? c->in_budget : c->out_budget) < guess)
        return 0;
    __u32 got = copy_payload(s, a, base, guess);
    if (got == 0)
        return 0;
    int start = http_start(&s->ev.data[base & (BW_STASH_MAX * 2 - 1)],
                           got < BW_PEEK ? got : BW_PEEK);
    int answers = st && start == 2 && !asks;
    if (st && !answers)
        return 0; /* the stashed request must leave first, by itself */
    if (start == 1 && asks && stashable(a, ret, cfg))
        return 0; /* a request to stash, which the branch above could not */

    __u32 want = account(c, a, ret, now, start, cfg);
    if (got > want)
        got = want;
    if (st) /* it answers st: any other case has gone to on_data */
        bpf_probe_read_kernel(s->ev.data, base, st->data);
    send_message(s, a, key, c, now, ret, start, st, base, got);
    return 1;
}

/* A start line can come in syscalls too short to tell it by: a client that writes "G" and then
 * "ET / HTTP/1.1...", or "GET" and then the rest. On a socket seen accepted or connected (`c`,
 * not tracked yet), such bytes at the very start of a direction wait in its entry (`prefix`),
 * and the next syscall in that direction is judged with them in front. Returns what they make
 * together, with *joined set to how many waiting bytes come first; when that is nothing, keeps
 * this syscall's bytes if they still begin a start line. Only a direction's first bytes, and
 * only on such sockets: a shell reading a pipe or a terminal byte by byte is not HTTP. On a
 * tracked connection, short writes are copied as they come and user space joins them. */
static __always_inline int start_after_prefix(struct bw_conn *c, const struct bw_io_args *a,
                                              __u64 first, int token, long ret, __u64 now,
                                              __u32 *joined) {
    __u8 bit = 1 << (a->direction & 1);
    __u8 moved = c->moved;
    if (!(moved & bit))
        c->moved = moved | bit;
    __u32 n = ret < 8 ? (__u32)ret : 8;
    if (c->prefix_len && c->prefix_dir == a->direction) {
        __u32 waiting = c->prefix_len & BW_PREFIX_MAX;
        __u64 both = c->prefix | (first << (8 * waiting));
        int kind = start_token(both, waiting + n);
        if (kind == 1 || kind == 2) {
            *joined = waiting;
            return kind;
        }
        c->prefix_len = 0;
        if (kind == BW_BEGINS) {
            c->prefix = both;
            c->prefix_len = waiting + n;
        }
        return 0;
    }
    if ((moved & bit) || token != BW_BEGINS)
        return 0;
    c->prefix = first;
    c->prefix_len = n;
    c->prefix_dir = a->direction;
    c->prefix_ns = now;
    return 0;
}

static __always_inline int on_data(struct bw_io_args *a, long ret) {
    if (ret <= 0 || a->fd < 0)
        return 0;
    __u64 now = bpf_ktime_get_ns();
    __u32 zero = 0;
    struct bw_config *cfg = config.lookup(&zero);
    if (!cfg)
        return 0;
    struct bw_conn_key key = {.tgid = a->pid_tgid >> 32, .fd = a->fd};
    struct bw_conn *c = conns.lookup(&key);
    if (c && c->tracked) {
        if (c->ignored)
            return 0;
        if (on_tracked_data(a, ret, cfg, &key, c, now))
            return 0;
    }

    __u8 head[BW_PEEK * 2] = {};
    int start = 0;
    __u32 joined = 0; /* bytes of earlier syscalls this message starts with */
    __u64 prefix = 0, prefix_ns = 0;
    __u32 peeked = peek(head, a, (__u32)ret);
    __u64 first = first_word(head);
    int token = peeked ? start_token(first, ret < BW_PEEK ? (__u32)ret : BW_PEEK) : 0;
    if (token != BW_BEGINS)
        start = token;
    if (!c || !c->tracked) {
        if (!start && peeked && c) {
            start = start_after_prefix(c, a, first, token, ret, now, &joined);
            if (joined) { /* c is replaced below: its prefix is read first */
                prefix = c->prefix;
                prefix_ns = c->prefix_ns;
            }
        }
        if (!start) {
            /* HTTP/2 is not decoded: such a connection is counted, so that its traffic is not
             * missing without a word, and then ignored, so that it costs no more peeks. */
            if (http2_preface(head, ret < BW_PEEK ? (__u32)ret : BW_PEEK)) {
                if (c) { /* known from accept or connect: marked where it is */
                    c->tracked = 1;
                    c->ignored = 1;
                } else {
                    struct bw_conn ignored = {.conn_id = now, .tracked = 1, .ignored = 1};
                    conns.update(&key, &ignored);
                }
                count(BW_COUNTER_HTTP2);
            }
            return 0;
        }
        struct bw_conn fresh = {};
        if (c) {
            fresh.conn_id = c->conn_id;
            fresh.local_port = c->local_port;
            fresh.remote_port = c->remote_port;
        } else {
            fresh.conn_id = now;
#ifdef BW_TLS
            if ((a->fd & BW_TLS_FD) && !(a->fd & BW_TLS_SSL)) {
                struct bw_conn_key socket = {.tgid = key.tgid, .fd = a->fd & BW_TLS_FD_MASK};
                struct bw_conn *plain = conns.lookup(&socket);
                if (plain) {
                    fresh.local_port = plain->local_port;
                    fresh.remote_port = plain->remote_port;
                }
            }
#endif
        }
        /* Reading a request or writing a response makes this process the server. */
        int reads = a->direction == BW_INGRESS;
        fresh.role = (start == 1) == reads ? BW_ROLE_SERVER : BW_ROLE_CLIENT;
        fresh.tracked = 1;
        fresh.ignored = !port_allowed(cfg, &fresh);
        conns.update(&key, &fresh);
        c = conns.lookup(&key);
        if (!c)
            return 0;
        count(BW_COUNTER_CONNS);
    }
    if (c->ignored)
        return 0;

    /* A stashed request leaves with its response, or on its own before anything else. */
    int answers = c->stashed && start == 2 && a->direction != request_direction(c);
    if (c->stashed && !answers)
        flush_stash(&key, c);

    __u32 want = account(c, a, ret + joined, now, start, cfg);
    if (want == 0) {
        if (a->direction == BW_EGRESS && !a->vectored && ret >= 8) {
            __u64 tail = 0;
            bpf_probe_read_user(&tail, sizeof(tail), (void *)(a->buf + ret - 8));
            c->out_tail = tail;
        }
        return 0;
    }

    if (start == 1 && !answers && !joined && a->direction == request_direction(c) &&
        stashable(a, ret, cfg)) {
        struct bw_stash *kept = read_into_stash(&key, a, ret);
        if (kept) {
            keep_request(kept, c, a->direction, ret, now);
            return 0;
        }
    }

    struct bw_scratch *s = scratch.lookup(&zero);
    if (!s)
        return 0;
    __u64 base = 0;
    struct bw_stash *st = 0;
    if (joined) { /* a fresh connection: nothing is stashed on it */
        __builtin_memcpy(s->ev.data, &prefix, sizeof(prefix));
        base = joined;
        want = want > joined ? want - joined : 0;
    } else if (answers) {
        st = stash.lookup(&key);
        if (st) {
            base = st->len & (BW_STASH_MAX * 2 - 1);
            if (base > BW_STASH_MAX)
                base = BW_STASH_MAX;
            bpf_probe_read_kernel(s->ev.data, base, st->data);
        }
    }
    __u64 room = BW_DATA_MAX - base;
    __u32 got = copy_payload(s, a, base, want < room ? want : room);
    /* A request starts with its first byte; the end of anything else is now. */
    __u64 stamped = joined && start == 1 ? prefix_ns : now;
    send_message(s, a, &key, c, stamped, ret + joined, start, st, base, got);
    return 0;
}

/* ---- syscalls: seen at their exits only ----
 *
 * A syscall's arguments are still in the registers it saved on entry when it returns, so its exit
 * sees everything an entry program would have, and nothing has to be carried from one to the
 * other. Entry tracepoints were the dearer half: each call fills a perf buffer with all six
 * arguments before the program runs. Empty programs, bench/pingpong.c pinned, 20 alternating
 * rounds, CPU added per request of four syscalls: 1.57 us on the entry and exit tracepoints of
 * our 12 syscalls, 0.52 us on their exits only.
 *
 * Where tracepoint programs may hold the current task as a BTF pointer (the kernels with task
 * storage, 5.15+ for bpf_task_pt_regs), each syscall's exit tracepoint finds the registers
 * through its task. Elsewhere one raw tracepoint at the exit of every syscall gets them as an
 * argument, at the price of running for all the host's syscalls: ~110 ns of program time each
 * (bpf_stats), 1.5 us per request on nginx, which makes ~13 syscalls per request.
 *
 * The registers are the architecture's saved user registers (the ABI of its syscall entry),
 * not a kernel struct whose layout moves between versions. */

struct bw_syscall {
    __u64 nr;
    __u64 arg0;
    __u64 arg1;
    __u64 arg2;
    __u64 pid_tgid;
    __u32 tgid;
    __u32 _pad;
};

#if defined(__x86_64__)
#define BW_USER_CS 0x33 /* a 64-bit process; ia32 ones use other syscall numbers */
/* The registers from dx to cs, in the order of the saved-register frame. */
struct bw_regs_tail {
    __u64 dx, si, di, orig_ax, ip, cs;
};
_Static_assert(offsetof(struct pt_regs, cs) - offsetof(struct pt_regs, dx) ==
               offsetof(struct bw_regs_tail, cs), "x86-64 saved registers from dx to cs");

static __always_inline int syscall_args(struct pt_regs *regs, struct bw_syscall *s) {
    struct bw_regs_tail r;
    if (bpf_probe_read_kernel(&r, sizeof(r), &regs->dx))
        return 0;
    if (r.cs != BW_USER_CS)
        return 0;
    s->nr = r.orig_ax;
    s->arg0 = r.di;
    s->arg1 = r.si;
    s->arg2 = r.dx;
    return 1;
}
#elif defined(__aarch64__)
/* Not run on this project's machines. The return value overwrites x0, so the first argument is
 * the copy the entry code keeps in orig_x0. */
static __always_inline int syscall_args(struct pt_regs *regs, struct bw_syscall *s) {
    __u64 pstate = 0;
    if (bpf_probe_read_kernel(&pstate, sizeof(pstate), &regs->pstate) || (pstate & 0x10))
        return 0; /* PSR_MODE32_BIT: a 32-bit task */
    if (bpf_probe_read_kernel(&s->nr, sizeof(s->nr), &regs->syscallno) ||
        bpf_probe_read_kernel(&s->arg0, sizeof(s->arg0), &regs->orig_x0) ||
        bpf_probe_read_kernel(&s->arg1, sizeof(s->arg1), &regs->regs[1]) ||
        bpf_probe_read_kernel(&s->arg2, sizeof(s->arg2), &regs->regs[2]))
        return 0;
    return 1;
}
#else
#error "bytewatch reads syscall arguments from saved registers on x86-64 and arm64 only"
#endif

/* Whether a syscall that returned `ret` can change what the probe knows. Reads that found
 * nothing (EAGAIN, mostly) are the common case, and cost no register read. */
static __always_inline int outcome_matters(__u64 nr, long ret) {
    switch (nr) {
    case __NR_read: case __NR_recvfrom: case __NR_readv: case __NR_recvmsg:
    case __NR_write: case __NR_sendto: case __NR_writev: case __NR_sendmsg:
    case __NR_sendfile:
        return ret > 0;
    case __NR_accept: case __NR_accept4:
        return ret >= 0;
    case __NR_connect:
        return ret == 0 || ret == -BW_EINPROGRESS;
    case __NR_bind:
        return ret == 0;
    case __NR_close:
        return ret != -BW_EBADF; /* Linux releases the fd whatever else close returns */
    }
    return 0;
}

/* Whether the calling process is one to look at: close and sendfile act on tracked
 * connections only, which exist for watched processes alone. */
static __always_inline int watched(__u64 nr, __u32 tgid) {
    return nr == __NR_close || nr == __NR_sendfile || wanted(tgid);
}

static __always_inline int data_exit(const struct bw_syscall *s, long ret, __u8 vectored,
                                     __u8 dir) {
    if ((__s32)s->arg0 < 0) /* an int: the register's upper half is not the caller's */
        return 0;
#ifdef BW_TLS
    if (inside_tls_call((__s32)s->arg0, dir))
        return 0;
#endif
    struct bw_io_args a = {.buf = s->arg1, .vlen = vectored ? s->arg2 : 0,
                           .pid_tgid = s->pid_tgid, .fd = (__s32)s->arg0,
                           .vectored = vectored, .direction = dir};
    return on_data(&a, ret);
}

/* user_msghdr is user-space ABI: msg_iov at offset 16, msg_iovlen at 24 on 64-bit. A sendmsg's
 * or recvmsg's arguments become a vectored call's: the iovec array and its length. */
static __always_inline int msg_args(struct bw_syscall *s) {
    __u64 hdr[4] = {};
    if (bpf_probe_read_user(hdr, sizeof(hdr), (void *)s->arg1))
        return 0;
    s->arg1 = hdr[2];
    s->arg2 = hdr[3];
    return 1;
}

/* sendfile moves a response body without a user buffer: counted, never copied. */
static __always_inline int sendfile_exit(const struct bw_syscall *s, long ret) {
    struct bw_conn_key key = {.tgid = s->tgid, .fd = (__s32)s->arg0};
    struct bw_conn *c = conns.lookup(&key);
    if (!c || !c->tracked || c->ignored)
        return 0;
    __sync_fetch_and_add(&c->out_bytes, ret);
    c->out_last_ns = bpf_ktime_get_ns();
    return 0;
}

/* ---- connection life ---- */

static __always_inline __u16 sockaddr_port(__u64 addr) {
    __u16 family_port[2] = {};
    if (!addr || bpf_probe_read_user(family_port, sizeof(family_port), (void *)addr))
        return 0;
    if (family_port[0] != BW_AF_INET && family_port[0] != BW_AF_INET6)
        return 0;
    return (__u16)((family_port[1] >> 8) | (family_port[1] << 8));
}

/* A tracked connection's fd now names a new socket: whatever was stashed on the old one still
 * counts (its close went unseen), and the new one starts from `fresh`. */
static __always_inline void new_conn(struct bw_conn_key *key, struct bw_conn *fresh) {
    struct bw_conn *old = conns.lookup(key);
    if (old && old->stashed)
        flush_stash(key, old);
    conns.update(key, fresh);
    end_tls_stream(key);
}

static __always_inline int accept_exit(const struct bw_syscall *s, long ret) {
    __u32 tgid = s->tgid;
    struct bw_conn_key listen = {.tgid = tgid, .fd = (__s32)s->arg0};
    __u16 *port = listen_ports.lookup(&listen);
    struct bw_conn c = {.conn_id = bpf_ktime_get_ns(), .role = BW_ROLE_SERVER};
    c.local_port = port ? *port : 0;
    c.remote_port = sockaddr_port(s->arg1); /* the peer's address, filled in by the call */
    struct bw_conn_key key = {.tgid = tgid, .fd = (__s32)ret};
    new_conn(&key, &c);
    return 0;
}

static __always_inline int connect_exit(const struct bw_syscall *s) {
    __u16 port = sockaddr_port(s->arg1);
    if (port == 0)
        return 0;
    struct bw_conn c = {.conn_id = bpf_ktime_get_ns(), .role = BW_ROLE_CLIENT,
                        .remote_port = port};
    struct bw_conn_key key = {.tgid = s->tgid, .fd = (__s32)s->arg0};
    new_conn(&key, &c);
    return 0;
}

static __always_inline int bind_exit(const struct bw_syscall *s) {
    __u16 port = sockaddr_port(s->arg1);
    if (port == 0)
        return 0;
    struct bw_conn_key key = {.tgid = s->tgid, .fd = (__s32)s->arg0};
    listen_ports.update(&key, &port);
    return 0;
}

/* Seen at the exit, another thread of the process may already have been given the same fd: its
 * accept, if it beat us here, loses its ports to this close, and its connection is tracked from
 * its first message on. */
static __always_inline int close_exit(const struct bw_syscall *s) {
    struct bw_conn_key key = {.tgid = s->tgid, .fd = (__s32)s->arg0};
    close_conn(&key);
    end_tls_stream(&key);
    return 0;
}

/* The data syscalls share one data_exit: where `nr` is a constant (each syscall's own tracepoint)
 * the compiler keeps only its case, and in the raw sys_exit build one copy of the data path is
 * what keeps the program within the verifier's limits. */
static __always_inline int syscall_exit(const struct bw_syscall *s, long ret) {
    struct bw_syscall v = *s;
    __u8 vectored = 0, dir = BW_INGRESS;
    switch (s->nr) {
    case __NR_read: case __NR_recvfrom:
        break;
    case __NR_readv:
        vectored = 1;
        break;
    case __NR_recvmsg:
        if (!msg_args(&v))
            return 0;
        vectored = 1;
        break;
    case __NR_write: case __NR_sendto:
        dir = BW_EGRESS;
        break;
    case __NR_writev:
        vectored = 1;
        dir = BW_EGRESS;
        break;
    case __NR_sendmsg:
        if (!msg_args(&v))
            return 0;
        vectored = 1;
        dir = BW_EGRESS;
        break;
    case __NR_sendfile: return sendfile_exit(s, ret);
    case __NR_accept: return accept_exit(s, ret);
    case __NR_accept4: return accept_exit(s, ret);
    case __NR_connect: return connect_exit(s);
    case __NR_bind: return bind_exit(s);
    case __NR_close: return close_exit(s);
    default: return 0;
    }
    return data_exit(&v, ret, vectored, dir);
}

#ifdef BW_TASK_BTF
/* The registers as the BTF pointer bpf_task_pt_regs returns: the verifier lets a program load
 * from it directly, and the JIT makes each load a plain move guarded against faults, where
 * bpf_probe_read_kernel is a helper call that checks and copies (with bpf_get_current_task_btf
 * and bpf_task_pt_regs, ~10 % of the programs' time in a perf profile of saturated nginx). */
static __always_inline int task_syscall_args(struct bw_syscall *s) {
    struct pt_regs *regs =
        (struct pt_regs *)bpf_task_pt_regs((struct task_struct *)bpf_get_current_task_btf());
    if (!regs)
        return 0;
#if defined(__x86_64__)
    if (regs->cs != BW_USER_CS)
        return 0;
    s->arg0 = regs->di;
    s->arg1 = regs->si;
    s->arg2 = regs->dx;
    return 1;
#else
    return syscall_args(regs, s);
#endif
}

/* `nr` is the tracepoint's own syscall, so each program keeps only its own case. */
static __always_inline int exit_of(__u64 nr, long ret) {
    __u64 id = bpf_get_current_pid_tgid();
    __u32 tgid = id >> 32;
    if (!outcome_matters(nr, ret) || !watched(nr, tgid))
        return 0;
    struct bw_syscall s = {};
    if (!task_syscall_args(&s))
        return 0;
    s.nr = nr;
    s.pid_tgid = id;
    s.tgid = tgid;
    return syscall_exit(&s, ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_read) { return exit_of(__NR_read, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_recvfrom) { return exit_of(__NR_recvfrom, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_readv) { return exit_of(__NR_readv, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_recvmsg) { return exit_of(__NR_recvmsg, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_write) { return exit_of(__NR_write, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_sendto) { return exit_of(__NR_sendto, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_writev) { return exit_of(__NR_writev, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_sendmsg) { return exit_of(__NR_sendmsg, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_sendfile64) { return exit_of(__NR_sendfile, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_accept) { return exit_of(__NR_accept, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_accept4) { return exit_of(__NR_accept4, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_connect) { return exit_of(__NR_connect, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_bind) { return exit_of(__NR_bind, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_close) { return exit_of(__NR_close, args->ret); }
#else
RAW_TRACEPOINT_PROBE(sys_exit) {
    struct bw_syscall s = {};
    if (!syscall_args((struct pt_regs *)ctx->args[0], &s))
        return 0;
    long ret = (long)ctx->args[1];
    s.pid_tgid = bpf_get_current_pid_tgid();
    s.tgid = s.pid_tgid >> 32;
    if (!outcome_matters(s.nr, ret) || !watched(s.nr, s.tgid))
        return 0;
    return syscall_exit(&s, ret);
}
#endif

#ifdef BW_IO_URING
/* io_uring moves bytes without the syscalls above, so its traffic is not decoded. Its socket
 * operations are counted, so that such traffic is not missing without a word; its reads and
 * writes are not, since they may be of files. Opcodes are ABI (include/uapi/linux/io_uring.h):
 * SENDMSG 9, RECVMSG 10, ACCEPT 13, CONNECT 16, SEND 26, RECV 27, SEND_ZC 47, SENDMSG_ZC 48. */
TRACEPOINT_PROBE(io_uring, io_uring_submit_req) {
    switch (args->opcode) {
    case 9: case 10: case 13: case 16: case 26: case 27: case 47: case 48:
        if (wanted(bpf_get_current_pid_tgid() >> 32))
            count(BW_COUNTER_IO_URING);
    }
    return 0;
}
#endif

#ifdef BW_TLS
/* ---- TLS: OpenSSL's plaintext through uprobes on SSL_read/SSL_write and their _ex forms ----
 *
 * A TLS stream is a connection of its own, keyed by its socket's fd with BW_TLS_FD set, so its
 * byte totals never mix with the ciphertext's. Libraries that move the ciphertext themselves,
 * outside the SSL call (Node's memory BIOs), never show the socket: their streams are keyed by
 * the SSL object instead (BW_TLS_SSL), with no ports and no close, which user space tolerates. */

static __always_inline int tls_enter(struct pt_regs *ctx, __u8 dir, __u8 ex) {
    if (!wanted(bpf_get_current_pid_tgid() >> 32))
        return 0;
    struct bw_tls_call *call = tls_call(1);
    if (!call) {
        count(BW_COUNTER_ARGS_FULL);
        return 0;
    }
    if (!call->ssl && !call->live)
        call->last_read_fd = -1; /* a new slot: no read seen yet */
    call->ssl = PT_REGS_PARM1(ctx);
    call->buf = PT_REGS_PARM2(ctx);
    call->done_ptr = ex ? PT_REGS_PARM4(ctx) : 0;
    call->fd = -1;
    call->direction = dir;
    call->ex = ex;
    call->live = 1;
    return 0;
}

/* SSL_free: a stream keyed by its SSL object ends here, and the object's address may be reused
 * by the next connection's. A stream keyed by its socket ends when the socket is closed. */
int tls_free(struct pt_regs *ctx) {
    __u64 ssl = PT_REGS_PARM1(ctx);
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    struct bw_tls_key tk = {.ssl = ssl, .tgid = tgid};
    tls_sockets.delete(&tk);
    struct bw_conn_key key = {.tgid = tgid,
                              .fd = BW_TLS_FD | BW_TLS_SSL | (__s32)((ssl >> 4) & BW_TLS_FD_MASK)};
    close_conn(&key);
    return 0;
}

int tls_read_enter(struct pt_regs *ctx) { return tls_enter(ctx, BW_INGRESS, 0); }
int tls_write_enter(struct pt_regs *ctx) { return tls_enter(ctx, BW_EGRESS, 0); }
int tls_read_ex_enter(struct pt_regs *ctx) { return tls_enter(ctx, BW_INGRESS, 1); }
int tls_write_ex_enter(struct pt_regs *ctx) { return tls_enter(ctx, BW_EGRESS, 1); }

int tls_return(struct pt_regs *ctx) {
    struct bw_tls_call *call = tls_call(0);
    if (!call || !call->live)
        return 0;
    struct bw_tls_call c = *call;
    tls_call_done(call);
    long ret = (int)PT_REGS_RC(ctx); /* the calls return int: -1 arrives as 0xffffffff */
    if (c.ex) {
        __u64 done = 0;
        if (ret != 1 || bpf_probe_read_user(&done, sizeof(done), (void *)c.done_ptr))
            return 0;
        ret = (long)done;
    }
    if (ret <= 0)
        return 0;
    __u64 id = bpf_get_current_pid_tgid();
    struct bw_tls_key tk = {.ssl = c.ssl, .tgid = id >> 32};
    __s32 fd = c.fd;
    if (fd < 0) {
        __s32 *known = tls_sockets.lookup(&tk);
        if (known)
            fd = *known;
        else if (c.direction == BW_INGRESS)
            fd = c.last_read_fd; /* the ciphertext this call decrypted came from there */
    }
    if (fd >= 0)
        tls_sockets.update(&tk, &fd);
    struct bw_io_args a = {.buf = c.buf, .pid_tgid = id, .direction = c.direction};
    if (fd >= 0 && fd <= BW_TLS_FD_MASK)
        a.fd = BW_TLS_FD | fd;
    else
        a.fd = BW_TLS_FD | BW_TLS_SSL | (__s32)((c.ssl >> 4) & BW_TLS_FD_MASK);
    return on_data(&a, ret);
}
#endif
