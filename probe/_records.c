/* probe.abi.decode_records in C: a ring-buffer record to probe.abi.Record tuples.
 *
 * Decoding is the agent's first step for every record. In mypyc-compiled Python it took 18 % of
 * the agent's CPU on recorded nginx traffic: a struct unpack into 24 objects, three enum lookups
 * in dicts, a split and decode of the thread name, and a NamedTuple built from a tuple. Here
 * the fields are read straight from struct bw_event, the kernel's own definition, and each
 * Record is allocated once with its final values. Thread names repeat, so their strings are
 * kept in a small cache.
 *
 * probe.abi.decode_records_in_python stays the reference: tests/probe/test_records.py compares
 * the two on valid and random records, exceptions and their messages included.
 *
 * drain() reads a ring buffer's memory map and decodes as it goes. The agent's reader did this
 * as a loop of struct unpacks in mypyc making a bytes object per record, then a call per record
 * to decode it: 11 % of its CPU at 10,000 requests/s watched host-wide (a perf profile), and
 * bench/ring_drain.py measures 943 -> 460 ns per PAIR record. The reference is the two steps
 * (probe.ringbuf.MappedRingBuffer.drain, then decode_records_in_python):
 * tests/probe/test_ringbuf.py compares them on the same bytes.
 *
 * configure(record_type, kinds, directions, roles, error_type) is called once by probe.abi
 * before any decode: the enum tuples are indexed by value (None where no member has it).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <linux/types.h>
#include <stddef.h>
#include <string.h>

#include "http_event.h"

#define HEADER_SIZE offsetof(struct bw_event, data)
#define RECORD_FIELDS 19 /* probe.abi.Record's */

static PyTypeObject *record_type;
static PyObject *kinds, *directions, *roles, *error_type;
static PyObject *msg_start; /* the int a PAIR's request carries as its flags */

/* Thread names, direct-mapped by a hash of their 16 raw bytes. */
#define COMM_CACHE 64
static struct {
    char raw[BW_COMM_LEN];
    PyObject *text;
} comm_cache[COMM_CACHE];

static PyObject *thread_name(const char *raw) {
    unsigned hash = 2166136261u;
    for (int i = 0; i < BW_COMM_LEN; i++)
        hash = (hash ^ (unsigned char)raw[i]) * 16777619u;
    unsigned slot = hash % COMM_CACHE;
    if (comm_cache[slot].text != NULL && memcmp(comm_cache[slot].raw, raw, BW_COMM_LEN) == 0) {
        Py_INCREF(comm_cache[slot].text);
        return comm_cache[slot].text;
    }
    const char *nul = memchr(raw, 0, BW_COMM_LEN);
    PyObject *text = PyUnicode_DecodeUTF8(raw, nul ? nul - raw : BW_COMM_LEN, "replace");
    if (text == NULL)
        return NULL;
    Py_XSETREF(comm_cache[slot].text, Py_NewRef(text));
    memcpy(comm_cache[slot].raw, raw, BW_COMM_LEN);
    return text;
}

/* The member of ``members`` (a tuple indexed by value) for ``value``, borrowed; NULL if none. */
static PyObject *member(PyObject *members, unsigned value) {
    if ((Py_ssize_t)value >= PyTuple_GET_SIZE(members))
        return NULL;
    PyObject *m = PyTuple_GET_ITEM(members, value);
    return m == Py_None ? NULL : m;
}

/* Field values for one Record, in its order; ``thread`` and enum members are borrowed. */
struct fields {
    PyObject *kind, *direction, *role;
    unsigned long long flags, tgid, tid;
    long long fd;
    unsigned long long conn_id, ts_ns, in_bytes, in_last_ns, out_bytes, out_last_ns, length;
    unsigned long long local_port, remote_port, seq;
    const char *data;
    Py_ssize_t data_len;
};

/* ``like`` (with its fields ``like_f``), when given, is a record decoded just before: a field
 * with the same value takes its int object instead of a new one. A PAIR's response shares its
 * ids, ports and the request direction's totals with its request: seven ints of fourteen.
 * Fields equal to an earlier one of the same record share its object too (NUMBER_OR_SAME). */
static PyObject *new_record(const struct fields *f, PyObject *thread, PyObject *flags,
                            const struct fields *like_f, PyObject *like) {
    PyObject *r = record_type->tp_alloc(record_type, RECORD_FIELDS);
    if (r == NULL)
        return NULL;
    /* tp_alloc zeroes the items: a failure part way leaves NULLs, which dealloc skips. */
#define SET(i, value)                                                                          \
    do {                                                                                       \
        PyObject *v_ = (value);                                                                \
        if (v_ == NULL)                                                                        \
            goto fail;                                                                         \
        PyTuple_SET_ITEM(r, i, v_);                                                            \
    } while (0)
#define NUMBER(i, field, from)                                                                 \
    SET(i, like != NULL && like_f->field == f->field ? Py_NewRef(PyTuple_GET_ITEM(like, i))   \
                                                     : from(f->field))
/* The same value as field j of this record: a thread that is its process's main thread has the
 * process's id, and a record's own direction was last active at the record's own time. */
#define NUMBER_OR_SAME(i, field, from, j, other)                                               \
    SET(i, f->field == f->other ? Py_NewRef(PyTuple_GET_ITEM(r, j))                           \
           : like != NULL && like_f->field == f->field ? Py_NewRef(PyTuple_GET_ITEM(like, i)) \
                                                      : from(f->field))
    SET(0, Py_NewRef(f->kind));
    SET(1, Py_NewRef(f->direction));
    SET(2, Py_NewRef(f->role));
    SET(3, flags != NULL ? Py_NewRef(flags) : PyLong_FromUnsignedLongLong(f->flags));
    NUMBER(4, tgid, PyLong_FromUnsignedLongLong);
    NUMBER_OR_SAME(5, tid, PyLong_FromUnsignedLongLong, 4, tgid);
    NUMBER(6, fd, PyLong_FromLongLong);
    NUMBER(7, conn_id, PyLong_FromUnsignedLongLong);
    NUMBER(8, ts_ns, PyLong_FromUnsignedLongLong);
    NUMBER(9, in_bytes, PyLong_FromUnsignedLongLong);
    NUMBER_OR_SAME(10, in_last_ns, PyLong_FromUnsignedLongLong, 8, ts_ns);
    NUMBER(11, out_bytes, PyLong_FromUnsignedLongLong);
    NUMBER_OR_SAME(12, out_last_ns, PyLong_FromUnsignedLongLong, 8, ts_ns);
    NUMBER(13, length, PyLong_FromUnsignedLongLong);
    NUMBER(14, local_port, PyLong_FromUnsignedLongLong);
    NUMBER(15, remote_port, PyLong_FromUnsignedLongLong);
    NUMBER(16, seq, PyLong_FromUnsignedLongLong);
    SET(17, Py_NewRef(thread));
    SET(18, PyBytes_FromStringAndSize(f->data, f->data_len));
#undef NUMBER
#undef NUMBER_OR_SAME
#undef SET
    return r;
fail:
    Py_DECREF(r);
    return NULL;
}

/* The records in the ``size`` bytes at ``buf``, one or, for a PAIR, two (the request first):
 * stored in ``out`` as new references, their number returned. -1 with an exception set when the
 * bytes are not a record (error_type) or memory ran out. */
static int decode_into(PyObject *out[2], const char *buf, Py_ssize_t size) {
    if (size < (Py_ssize_t)HEADER_SIZE) {
        PyErr_Format(error_type, "record of %zd bytes is shorter than its %zu-byte header", size,
                     HEADER_SIZE);
        return -1;
    }
    struct bw_event ev; /* copied, not cast: the buffer has no alignment promise */
    memcpy(&ev, buf, HEADER_SIZE);
    PyObject *kind = member(kinds, ev.kind);
    PyObject *direction = member(directions, ev.direction);
    PyObject *role = member(roles, ev.role);
    if (kind == NULL || direction == NULL || role == NULL) {
        PyErr_Format(error_type, "unknown kind/direction/role %u/%u/%u", ev.kind, ev.direction,
                     ev.role);
        return -1;
    }
    if (ev.captured > BW_DATA_MAX || (Py_ssize_t)(HEADER_SIZE + ev.captured) > size ||
        ev.req_len > ev.captured) {
        PyErr_Format(error_type, "record claims %u payload bytes but carries %zd", ev.captured,
                     size - (Py_ssize_t)HEADER_SIZE);
        return -1;
    }
    PyObject *thread = thread_name(ev.comm);
    if (thread == NULL)
        return -1;
    const char *payload = buf + HEADER_SIZE;
    struct fields f = {
        .kind = kind,
        .direction = direction,
        .role = role,
        .flags = ev.flags,
        .tgid = ev.tgid,
        .tid = ev.tid,
        .fd = ev.fd,
        .conn_id = ev.conn_id,
        .ts_ns = ev.ts_ns,
        .in_bytes = ev.in_bytes,
        .in_last_ns = ev.in_last_ns,
        .out_bytes = ev.out_bytes,
        .out_last_ns = ev.out_last_ns,
        .length = ev.len,
        .local_port = ev.local_port,
        .remote_port = ev.remote_port,
        .seq = ev.seq,
        .data = payload,
        .data_len = ev.captured,
    };
    int count = -1;
    PyObject *request = NULL, *record = NULL;
    struct fields req = f;
    if (ev.kind == BW_KIND_PAIR) {
        /* The request's own direction has not moved since it passed; the other direction's
         * totals were as the kernel kept them (see bpf/http_event.h). */
        req.kind = member(kinds, BW_KIND_DATA);
        req.ts_ns = ev.req_ts_ns;
        req.length = ev.req_len;
        req.seq = ev.req_seq;
        req.data_len = ev.req_len;
        if (ev.direction == BW_EGRESS) {
            req.direction = member(directions, BW_INGRESS);
            req.out_bytes = ev.req_other_bytes;
            req.out_last_ns = ev.req_other_last_ns;
        } else {
            req.direction = member(directions, BW_EGRESS);
            req.in_bytes = ev.req_other_bytes;
            req.in_last_ns = ev.req_other_last_ns;
        }
        if (req.kind == NULL || req.direction == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "probe._records was configured without DATA, "
                                                "INGRESS or EGRESS");
            goto done;
        }
        request = new_record(&req, thread, msg_start, NULL, NULL);
        if (request == NULL)
            goto done;
        f.kind = req.kind;
        f.data = payload + ev.req_len;
        f.data_len = ev.captured - ev.req_len;
    }
    record = new_record(&f, thread, NULL, request != NULL ? &req : NULL, request);
    if (record == NULL)
        goto done;
    if (request != NULL) {
        out[0] = request;
        out[1] = record;
        count = 2;
    } else {
        out[0] = record;
        count = 1;
    }
    request = record = NULL; /* moved to out */
done:
    Py_DECREF(thread);
    Py_XDECREF(request);
    Py_XDECREF(record);
    return count;
}

static int configured(void) {
    if (record_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "probe._records.configure was not called");
        return 0;
    }
    return 1;
}

static PyObject *decode_records(PyObject *module, PyObject *raw) {
    if (!configured())
        return NULL;
    if (!PyBytes_Check(raw)) {
        PyErr_Format(PyExc_TypeError, "a record is bytes, not %.50s", Py_TYPE(raw)->tp_name);
        return NULL;
    }
    PyObject *records[2];
    int count = decode_into(records, PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw));
    if (count < 0)
        return NULL;
    PyObject *out = PyTuple_New(count);
    if (out == NULL) {
        for (int i = 0; i < count; i++)
            Py_DECREF(records[i]);
        return NULL;
    }
    for (int i = 0; i < count; i++)
        PyTuple_SET_ITEM(out, i, records[i]);
    return out;
}

/* The kernel's ring-buffer layout (kernel/bpf/ringbuf.c, stable ABI): each record starts with
 * an 8-byte header whose first word is its length and these two bits. */
#define RINGBUF_BUSY (1u << 31)
#define RINGBUF_DISCARD (1u << 30)
#define RINGBUF_HEADER 8

/* drain(data, consumer, mask[, limit]): what probe.ringbuf.MappedRingBuffer.drain and
 * decode_records do for every record, in one pass over the ring's memory and without a bytes
 * object per record. ``data`` is the producer page followed by the data area mapped twice,
 * ``consumer`` the page we write. Returns (records, undecodable): a record that is not one is
 * counted and skipped, as the agent does with decode_records' error. Stops at a record still
 * being written, or once ``limit`` records are decoded (0: no limit; a PAIR's two records are
 * never split, so one more may come); the rest stays in the ring for the next call. */
static PyObject *drain(PyObject *module, PyObject *args) {
    PyObject *data_obj, *consumer_obj;
    unsigned long long mask;
    Py_ssize_t limit = 0;
    if (!PyArg_ParseTuple(args, "OOK|n:drain", &data_obj, &consumer_obj, &mask, &limit))
        return NULL;
    if (!configured())
        return NULL;
    Py_buffer data, consumer;
    if (PyObject_GetBuffer(data_obj, &data, PyBUF_SIMPLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(consumer_obj, &consumer, PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    PyObject *out = NULL, *records = NULL;
    long long undecodable = 0;
    Py_ssize_t page = consumer.len;
    if (consumer.len < 8 || (Py_ssize_t)(mask + 1) * 2 + page > data.len || (mask & (mask + 1))) {
        PyErr_SetString(PyExc_ValueError, "drain: the maps are not laid out like a ring buffer");
        goto done;
    }
    records = PyList_New(0);
    if (records == NULL)
        goto done;
    const char *base = (const char *)data.buf;
    unsigned long long *consumer_pos = (unsigned long long *)consumer.buf;
    /* Acquire: the producer position is read before the headers it covers, and each header's
     * length (its BUSY bit clear) before the record's bytes. */
    unsigned long long pos = __atomic_load_n(consumer_pos, __ATOMIC_RELAXED);
    unsigned long long producer =
        __atomic_load_n((const unsigned long long *)base, __ATOMIC_ACQUIRE);
    int failed = 0;
    while (pos < producer && (limit <= 0 || PyList_GET_SIZE(records) < limit)) {
        const char *at = base + page + (pos & mask);
        unsigned header = __atomic_load_n((const unsigned *)at, __ATOMIC_ACQUIRE);
        if (header & RINGBUF_BUSY)
            break;
        unsigned size = header & ~(RINGBUF_BUSY | RINGBUF_DISCARD);
        if (!(header & RINGBUF_DISCARD)) {
            if ((unsigned long long)size > mask + 1) {
                /* A length no record can have (the kernel never writes one): what follows it
                 * cannot be found, so the rest is skipped, counted, and the ring stays usable. */
                undecodable++;
                pos = producer;
                break;
            }
            PyObject *decoded[2];
            int count = decode_into(decoded, at + RINGBUF_HEADER, size);
            if (count < 0) {
                if (!PyErr_ExceptionMatches(error_type)) {
                    failed = 1;
                    break;
                }
                PyErr_Clear();
                undecodable++;
            }
            for (int i = 0; i < count; i++) {
                if (!failed && PyList_Append(records, decoded[i]) < 0)
                    failed = 1;
                Py_DECREF(decoded[i]);
            }
            if (failed)
                break;
        }
        pos += (size + RINGBUF_HEADER + 7) & ~7ull;
    }
    /* Release: the kernel may reuse the space only after we are done reading it. After a
     * failure (memory) nothing is consumed: the next drain reads the same records again. */
    if (!failed) {
        out = Py_BuildValue("(OL)", records, undecodable);
        if (out != NULL)
            __atomic_store_n(consumer_pos, pos, __ATOMIC_RELEASE);
    }
done:
    Py_XDECREF(records);
    PyBuffer_Release(&consumer);
    PyBuffer_Release(&data);
    return out;
}

/* build(cls, *fields): a tuple of type ``cls`` (a NamedTuple) holding ``fields``, made in one
 * allocation. tuple.__new__(cls, fields), which the pipeline used to skip a NamedTuple's keyword
 * parsing, is a generic call that packs its arguments into a tuple and copies ``fields`` into a
 * third: ~150 ns per exchange record on this project's machines, four records per exchange.
 * Like tuple.__new__, it does not check the number of fields against the type's. */
static PyObject *build(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs < 1 || !PyType_Check(args[0]) ||
        !PyType_IsSubtype((PyTypeObject *)args[0], &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "build(cls, *fields) wants a tuple type first");
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)args[0];
    PyObject *built = type->tp_alloc(type, nargs - 1);
    if (built == NULL)
        return NULL;
    for (Py_ssize_t i = 1; i < nargs; i++)
        PyTuple_SET_ITEM(built, i - 1, Py_NewRef(args[i]));
    return built;
}

static PyObject *configure(PyObject *module, PyObject *args) {
    PyObject *type, *k, *d, *r, *err;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!:configure", &PyType_Type, &type, &PyTuple_Type, &k,
                          &PyTuple_Type, &d, &PyTuple_Type, &r, &PyType_Type, &err))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)type, &PyTuple_Type) ||
        !PyType_IsSubtype((PyTypeObject *)err, (PyTypeObject *)PyExc_Exception)) {
        PyErr_SetString(PyExc_TypeError, "configure wants a tuple type and an exception type");
        return NULL;
    }
    Py_XSETREF(record_type, (PyTypeObject *)Py_NewRef(type));
    Py_XSETREF(kinds, Py_NewRef(k));
    Py_XSETREF(directions, Py_NewRef(d));
    Py_XSETREF(roles, Py_NewRef(r));
    Py_XSETREF(error_type, Py_NewRef(err));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"build", (PyCFunction)(void (*)(void))build, METH_FASTCALL,
     "A NamedTuple of type cls holding the fields, in one allocation."},
    {"configure", configure, METH_VARARGS,
     "Set the Record type, the enum members by value and the exception to raise."},
    {"decode_records", decode_records, METH_O,
     "The records in one ring-buffer record: one, or two for a PAIR."},
    {"drain", drain, METH_VARARGS,
     "The complete records in a memory-mapped ring buffer (up to a limit, if given), decoded: "
     "(records, undecodable)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef records_module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "probe._records",
    .m_doc = "probe.abi.decode_records in C.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__records(void) {
    msg_start = PyLong_FromLong(BW_FLAG_MSG_START);
    if (msg_start == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&records_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "HEADER_SIZE", (long)HEADER_SIZE) < 0 ||
        PyModule_AddIntConstant(m, "DATA_MAX", BW_DATA_MAX) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
