/* Keeps the agent's reading thread out of the services' way while it keeps up with the ring.
 *
 * At nice 10 the reader still takes its share of a CPU in runs of a scheduler slice, and a
 * service thread that wakes meanwhile waits: at ~10,000 requests/s that added ~90 us to Node's
 * median latency. As SCHED_IDLE the reader runs only on a CPU nothing else wants, and any
 * waking thread preempts it at once (Node: -38 us, as without the agent). But on a saturated
 * host an idle thread hardly runs at all, the ring fills and records are lost.
 *
 * So a small thread of our own checks the reader every few milliseconds, and moves it to
 * SCHED_OTHER at the configured nice value when either
 * - the ring's backlog (its producer position less its consumer position, read from the map's
 *   memory) passes ``high`` bytes: the reader is falling behind the traffic; or
 * - the reader spent more than ``starved_ms`` of the last WINDOW_MS waiting on a run queue
 *   and ran for less than a quarter of that (/proc/<tid>/schedstat): the host is busy with
 *   something else, and a reader starved while it holds the GIL would stall the agent's other
 *   threads, the alert outbox among them;
 * and back to SCHED_IDLE once, for ``calm_ms``, the backlog has stayed at most ``low`` and the
 * reader has waited at most a tenth of ``starved_ms``, or at most twice as long as it ran.
 * It must not be Python: the starved reader may hold the GIL, and then no Python thread could
 * run to notice. stop() gives the reader its nice value back, so that the agent's shutdown is
 * never starved.
 *
 * Waiting alone is no sign of starvation. An idle reader that keeps up on a busy host is put
 * off its CPU at every wakeup of a service thread, and that is its purpose: at ~10,000
 * requests/s watched host-wide (nginx, this project's 2-core VMs) it ran ~24 ms and waited
 * ~23 ms of every 100 (up to 61), never less than 0.42 ms running per ms waiting. At nice 10
 * it still waited ~12 ms of 100. With waits alone as the test (over 50 ms of 100 raised it,
 * and at most 5 lowered it) such a reader was raised now and then and never lowered: in 3 of
 * 6 runs it stayed at nice 10 throughout, and nginx's median latency was ~150 us higher in
 * them.
 *
 * start(map_fd, tid, high, low, nice, period_ms, calm_ms, starved_ms), stop(), and counts() ->
 * (times raised, times lowered, idle now, errno of a failed switch or 0). One guard per process
 * (the agent reads one main ring). It works on any fd whose first two pages hold the two
 * positions, which is how tests/probe/test_priority.py drives it without a kernel ring.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* include/uapi/linux/sched/types.h; glibc 2.36 does not declare sched_setattr. */
struct bw_sched_attr {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime;
    uint64_t sched_deadline;
    uint64_t sched_period;
};

static struct {
    pthread_t thread;
    int running;
    atomic_int stop;
    void *consumer_page, *producer_page;
    size_t page;
    pid_t tid;
    uint64_t high, low;
    int nice;
    long period_ms, calm_ms, starved_ms;
    int schedstat_fd; /* /proc/<tid>/schedstat */
    atomic_ulong raised, lowered;
    atomic_int idle;
    atomic_int error; /* errno of a failed sched_setattr: the guard then stops switching */
} guard;

static int set_policy(pid_t tid, int idle, int nice) {
    struct bw_sched_attr attr = {
        .size = sizeof attr,
        .sched_policy = idle ? SCHED_IDLE : SCHED_OTHER,
        .sched_nice = nice,
    };
    return syscall(SYS_sched_setattr, tid, &attr, 0) == 0 ? 0 : errno;
}

static uint64_t position(void *page) {
    return atomic_load_explicit((_Atomic uint64_t *)page, memory_order_acquire);
}

/* The reader to SCHED_IDLE (idle) or to its nice value; 0 when the kernel refused. */
static int switch_reader(int idle) {
    int err = set_policy(guard.tid, idle, guard.nice);
    if (err) {
        atomic_store(&guard.error, err);
        return 0;
    }
    atomic_store(&guard.idle, idle);
    atomic_fetch_add(idle ? &guard.lowered : &guard.raised, 1);
    return 1;
}

/* Nanoseconds the thread has spent on a CPU, and runnable but waiting for one. */
struct sched_times {
    uint64_t ran, waited;
};

/* The reader's sched_times into *t; 0, with *t as it was, when /proc could not be read. */
static int read_sched_times(struct sched_times *t) {
    char text[96];
    ssize_t n = pread(guard.schedstat_fd, text, sizeof text - 1, 0);
    if (n <= 0)
        return 0;
    text[n] = 0;
    char *after_cputime = NULL;
    t->ran = strtoull(text, &after_cputime, 10);
    t->waited = strtoull(after_cputime, NULL, 10);
    return 1;
}

#define WINDOW_MS 100
#define MAX_WINDOW_CHECKS 100

static void *watch(void *unused) {
    (void)unused;
    struct timespec period = {.tv_sec = guard.period_ms / 1000,
                              .tv_nsec = (guard.period_ms % 1000) * 1000000L};
    long calm_needed = guard.calm_ms / guard.period_ms, calm = 0;
    long checks = WINDOW_MS / guard.period_ms;
    if (checks < 1)
        checks = 1;
    if (checks > MAX_WINDOW_CHECKS)
        checks = MAX_WINDOW_CHECKS;
    /* The reader's run time and run-queue waits over the last WINDOW_MS, one slot per check. */
    uint64_t runs[MAX_WINDOW_CHECKS] = {0}, waits[MAX_WINDOW_CHECKS] = {0}, ran = 0, waited = 0;
    struct sched_times last = {0, 0};
    read_sched_times(&last);
    uint64_t starved_ns = (uint64_t)guard.starved_ms * 1000000u;
    for (long slot = 0; !atomic_load(&guard.stop); slot = (slot + 1) % checks) {
        nanosleep(&period, NULL);
        struct sched_times now = last;
        uint64_t run = 0, wait = 0; /* an unreadable check counts as neither */
        if (read_sched_times(&now)) {
            run = now.ran > last.ran ? now.ran - last.ran : 0;
            wait = now.waited > last.waited ? now.waited - last.waited : 0;
            last = now;
        }
        ran += run - runs[slot];
        runs[slot] = run;
        waited += wait - waits[slot];
        waits[slot] = wait;
        uint64_t backlog = position(guard.producer_page) - position(guard.consumer_page);
        int idle = atomic_load(&guard.idle);
        int starved = waited > starved_ns && ran * 4 < waited;
        if (idle && (backlog >= guard.high || starved)) {
            if (!switch_reader(0))
                break;
            calm = 0;
        } else if (!idle) {
            int unhurried = waited <= starved_ns / 10 || waited <= ran * 2;
            calm = backlog <= guard.low && unhurried ? calm + 1 : 0;
            if (calm >= calm_needed) {
                if (!switch_reader(1))
                    break;
                calm = 0;
            }
        }
    }
    return NULL;
}

static void release(void) {
    if (guard.schedstat_fd >= 0)
        close(guard.schedstat_fd);
    guard.schedstat_fd = -1;
    if (guard.consumer_page != NULL && guard.consumer_page != MAP_FAILED)
        munmap(guard.consumer_page, guard.page);
    if (guard.producer_page != NULL && guard.producer_page != MAP_FAILED)
        munmap(guard.producer_page, guard.page);
    guard.consumer_page = guard.producer_page = NULL;
}

static PyObject *stop(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    if (guard.running) {
        atomic_store(&guard.stop, 1);
        Py_BEGIN_ALLOW_THREADS
        pthread_join(guard.thread, NULL);
        Py_END_ALLOW_THREADS
        guard.running = 0;
        if (atomic_load(&guard.idle))
            set_policy(guard.tid, 0, guard.nice);
        release();
    }
    Py_RETURN_NONE;
}

static PyObject *start(PyObject *module, PyObject *args) {
    int fd, tid, nice;
    unsigned long long high, low;
    long period_ms, calm_ms, starved_ms;
    if (!PyArg_ParseTuple(args, "iiKKilll:start", &fd, &tid, &high, &low, &nice, &period_ms,
                          &calm_ms, &starved_ms))
        return NULL;
    if (period_ms <= 0 || period_ms > WINDOW_MS || calm_ms < 0 || starved_ms <= 0 ||
        low > high || nice < -20 || nice > 19) {
        PyErr_SetString(PyExc_ValueError,
                        "start wants 0 < period_ms <= 100, calm_ms >= 0, starved_ms > 0, "
                        "low <= high, -20 <= nice <= 19");
        return NULL;
    }
    if (stop(module, NULL) == NULL)
        return NULL;
    Py_DECREF(Py_None);
    guard.page = (size_t)sysconf(_SC_PAGESIZE);
    /* The ring's layout (kernel/bpf/ringbuf.c): the consumer position on the first page, the
     * producer position on the second. */
    char schedstat[64];
    snprintf(schedstat, sizeof schedstat, "/proc/%d/schedstat", tid);
    guard.schedstat_fd = open(schedstat, O_RDONLY | O_CLOEXEC);
    guard.consumer_page = mmap(NULL, guard.page, PROT_READ, MAP_SHARED, fd, 0);
    guard.producer_page = mmap(NULL, guard.page, PROT_READ, MAP_SHARED, fd, (off_t)guard.page);
    if (guard.schedstat_fd < 0 || guard.consumer_page == MAP_FAILED ||
        guard.producer_page == MAP_FAILED) {
        int err = errno;
        release();
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    guard.tid = tid;
    guard.high = high;
    guard.low = low;
    guard.nice = nice;
    guard.period_ms = period_ms;
    guard.calm_ms = calm_ms;
    guard.starved_ms = starved_ms;
    atomic_store(&guard.stop, 0);
    atomic_store(&guard.idle, 1);
    atomic_store(&guard.error, 0);
    atomic_store(&guard.raised, 0);
    atomic_store(&guard.lowered, 0);
    /* The watcher must not inherit SCHED_IDLE from a caller that already has it. */
    pthread_attr_t attr;
    struct sched_param normal = {.sched_priority = 0};
    pthread_attr_init(&attr);
    pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
    pthread_attr_setschedpolicy(&attr, SCHED_OTHER);
    pthread_attr_setschedparam(&attr, &normal);
    int err = pthread_create(&guard.thread, &attr, watch, NULL);
    pthread_attr_destroy(&attr);
    if (err == 0) {
        guard.running = 1;
        err = set_policy(tid, 1, nice);
        if (err && stop(module, NULL) != NULL)
            Py_DECREF(Py_None);
    }
    if (err) {
        release();
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static PyObject *counts(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    return Py_BuildValue("(kkOi)", atomic_load(&guard.raised), atomic_load(&guard.lowered),
                         guard.running && atomic_load(&guard.idle) ? Py_True : Py_False,
                         atomic_load(&guard.error));
}

static PyMethodDef methods[] = {
    {"start", start, METH_VARARGS,
     "Watch the ring behind map_fd and switch thread tid between SCHED_IDLE and nice."},
    {"stop", stop, METH_NOARGS, "Stop watching; the thread gets its nice value back."},
    {"counts", counts, METH_NOARGS, "(times raised, times lowered, idle now, errno or 0)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef priority_module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "probe._priority",
    .m_doc = "The reading thread's scheduling policy, following the ring's backlog.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__priority(void) {
    guard.schedstat_fd = -1;
    return PyModule_Create(&priority_module);
}
