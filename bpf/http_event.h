/* The one definition of what crosses from the kernel to bytewatch.
 *
 * probe/abi.py mirrors these layouts with ctypes; tests/probe/test_abi.py compiles this header
 * with the host compiler and checks that sizes and offsets agree. Fixed-size fields come first,
 * padding is explicit, and every record starts with its kind byte.
 */
#ifndef BYTEWATCH_HTTP_EVENT_H
#define BYTEWATCH_HTTP_EVENT_H

#define BW_DATA_MAX 4096 /* payload bytes one record can carry (a power of two) */
#define BW_STASH_MAX 1024 /* a request this small waits in the kernel for its response */
#define BW_COMM_LEN 16

/* A TLS stream's plaintext (see the uprobes in http_probe.bpf.c) is a connection of its own:
 * its fd field is the socket's fd with BW_TLS_FD set or, when the socket is unknown, BW_TLS_FD
 * and BW_TLS_SSL set over bits of the library's SSL object address. */
#define BW_TLS_FD 0x40000000
#define BW_TLS_SSL 0x20000000
#define BW_TLS_FD_MASK 0x1fffffff

enum bw_kind {
    BW_KIND_DATA = 1,  /* bytes read or written on a tracked connection */
    BW_KIND_CLOSE = 2, /* a tracked connection was closed */
    BW_KIND_PAIR = 3,  /* a response's first bytes, preceded by the request it answers */
};

enum bw_direction {
    BW_INGRESS = 0, /* read by the process */
    BW_EGRESS = 1,  /* written by the process */
};

enum bw_role {
    BW_ROLE_UNKNOWN = 0,
    BW_ROLE_SERVER = 1, /* the process answers requests on this connection */
    BW_ROLE_CLIENT = 2, /* the process sends requests on this connection */
};

enum bw_flag {
    BW_FLAG_MSG_START = 1, /* the syscall's bytes begin with an HTTP/1.x start line */
    BW_FLAG_CUT = 2,       /* the syscall moved more bytes than the record carries */
};

enum bw_counter {
    BW_COUNTER_RECORDS = 0,   /* records written to the ring buffer */
    BW_COUNTER_LOST = 1,      /* records dropped because the ring buffer was full */
    BW_COUNTER_TRUNCATED = 2, /* messages whose capture budget ran out */
    BW_COUNTER_CONNS = 3,     /* connections that started being tracked */
    BW_COUNTER_ARGS_FULL = 4, /* TLS calls missed because the in-flight table was full */
    BW_COUNTER_SPILLED = 5,   /* records written to the spill ring (also counted in RECORDS) */
    BW_COUNTER_HTTP2 = 6,     /* connection ends that began with HTTP/2's preface: not decoded */
    BW_COUNTER_IO_URING = 7,  /* socket operations submitted through io_uring: not decoded */
    BW_COUNTER_MAX = 8,
};

/* One record per read/write that starts an HTTP message or falls within a message's capture
 * budget, and one per close of a tracked connection. Byte totals are per connection and
 * direction and include this record's own syscall, so user space can place every record in
 * its stream and learn about bytes that were counted but not copied.
 *
 * A request that fits in one read (or write, for a client) waits in the kernel until the
 * response starts, and both leave as one PAIR record: data[] holds the request's req_len bytes
 * and then the response's. The request's own direction has not moved since (anything on it
 * would have sent the request on its own), so its totals are this record's; the other
 * direction's, as they were then, are req_other_*. This halves the records of a plain
 * request/response, which is most of what user space pays for. */
struct bw_event {
    __u8 kind;
    __u8 direction;
    __u8 role;
    __u8 flags;
    __u32 tgid;
    __u32 tid;
    __s32 fd;
    __u64 conn_id;     /* distinguishes successive connections that reuse one fd */
    __u64 ts_ns;       /* CLOCK_MONOTONIC when the syscall returned (or close was called) */
    __u64 in_bytes;    /* bytes read on this connection so far */
    __u64 in_last_ns;  /* when the last of them was read */
    __u64 out_bytes;   /* bytes written on this connection so far */
    __u64 out_last_ns; /* when the last of them was written */
    __u32 len;         /* bytes moved by this syscall */
    __u32 captured;    /* valid bytes in data[] */
    __u16 local_port;  /* 0 when unknown */
    __u16 remote_port; /* 0 when unknown */
    __u32 seq;         /* per connection, counting every record the kernel tried to send:
                        * a gap tells user space that records of this connection were lost */
    char comm[BW_COMM_LEN]; /* the calling thread's name, in a connection's first record only;
                             * zeros after (see stamp in http_probe.bpf.c) */
    /* PAIR records only (zero otherwise): the request stashed until this response */
    __u64 req_ts_ns;
    __u64 req_other_bytes;   /* the response direction's total when the request passed */
    __u64 req_other_last_ns;
    __u32 req_len;           /* the request's bytes at the start of data[] */
    __u32 req_seq;           /* the request's sequence number */
    __u8 data[BW_DATA_MAX];
};

/* Written once by the loader before attaching. */
struct bw_config {
    __u32 self_tgid;     /* the agent itself: never observed */
    __u32 capture_bytes; /* bytes copied per HTTP message and direction (headers and body) */
    __u8 filter_pids;    /* 1: only tgids in filter_pids (or thread names in filter_comms) */
    __u8 filter_ports;   /* 1: only connections whose known port is in filter_ports */
    __u8 filter_comms;   /* 1: filter_comms holds names (else a pid filter alone is asked for) */
    __u8 _pad0[5];
};

/* Keys and values of the maps user space reads or writes. */
struct bw_conn_key {
    __u32 tgid;
    __s32 fd;
};

struct bw_comm_key {
    char comm[BW_COMM_LEN];
};

struct bw_conn {
    __u64 conn_id;
    __u64 in_bytes;
    __u64 in_last_ns;
    __u64 out_bytes;
    __u64 out_last_ns;
    __u64 out_tail;    /* the last 8 bytes written, for ends of chunked bodies beyond the budget */
    __u32 in_budget;   /* capture bytes left inbound: a message start either way renews it; its
                        * top bit: the current message was counted as truncated */
    __u32 out_budget;  /* the same outbound */
    __u32 seq;         /* the next record's sequence number */
    __u16 local_port;
    __u16 remote_port;
    __u8 role;
    __u8 tracked;      /* an HTTP start line has been seen */
    __u8 ignored;      /* excluded by a filter */
    __u8 stashed;      /* a request waits in the stash map for its response */
    __u8 named;        /* a record has carried the thread's name */
    __u8 prefix_len;   /* untracked: bytes in `prefix`, 0 when none */
    __u8 prefix_dir;   /* untracked: the direction they moved in */
    __u8 moved;        /* untracked: a bit (1 << direction) for each direction bytes moved in */
    __u64 prefix;      /* untracked: the first bytes of what may be a start line, written or read
                        * in syscalls too short to tell (little-endian, at most 7) */
    __u64 prefix_ns;   /* when the first of them moved */
};

/* A request waiting for its response (see BW_KIND_PAIR). No thread name is kept: a record
 * carries one only when it is its connection's first. */
struct bw_stash {
    __u64 ts_ns;
    __u64 other_bytes;
    __u64 other_last_ns;
    __u32 len;
    __u32 seq;
    __u8 data[BW_STASH_MAX];
};

#endif /* BYTEWATCH_HTTP_EVENT_H */
