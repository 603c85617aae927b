/* Which of a few byte strings occur in a body, in one pass: probe.semantics' pre-check.
 *
 * Before a 2xx JSON body is parsed, probe.semantics looks for the words a business error needs
 * ("rror", "fail", ...): a dozen substring tests, each a pass over the body. On a 3 KiB body,
 * the probe's capture, that was ~3 to 9 us, more than the rest of the agent's work on the
 * exchange. Here the body is read once, 16 bytes at a time where SSE2 is there (every x86-64):
 * each needle's first two bytes are compared at all 16 positions at once, and only where they
 * match is the rest of a needle compared.
 *
 * configure(needles: tuple[bytes, ...]) sets up to 64 needles of 2 to 64 bytes.
 * present(data: bytes, stop: int) returns a mask with bit k set when needles[k] occurs in data;
 * it may return early, once a needle in the mask `stop` is found, with only some bits set.
 * probe.semantics.worth_parsing_in_python is the reference; tests/probe/test_semantics.py
 * compares the two on random bodies.
 *
 * shallow(data: bytes, stop: int) is present() counting only the needles that begin where the
 * detectors look: JSON whose every container but the outermost is an object. A word inside a
 * list of records ({"items": [{"code": ...}]}) cannot make a detector fire, and there a cut
 * 1 KiB list took ~30 us to parse for nothing. It lexes the body byte by byte (strings and
 * their escapes, brackets), so it runs only once present() has found a word. Nesting deeper
 * than MAX_DEPTH counts as looked at. probe.semantics.shallow_needles_in_python is its
 * reference.
 *
 * outline(data: bytes) is the other side of the same rule: the body with each list below its
 * outermost container reduced to [0], or [] when empty, or left open when the body is cut
 * inside it, so that json.loads builds the objects the detectors read and not the records
 * they skip. None when nothing was reduced, or on what the cut-JSON scan would read
 * differently (see probe.semantics.outline_in_python, its reference).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define MAX_NEEDLES 64
#define MAX_NEEDLE_LEN 64

static struct {
    unsigned char bytes[MAX_NEEDLE_LEN];
    Py_ssize_t len;
} needles[MAX_NEEDLES];
static uint8_t starts_pair[65536 / 8];     /* bit (a << 8 | b): a needle begins with a, b */
static uint8_t by_first[256][MAX_NEEDLES]; /* the needles that begin with each byte */
static uint8_t by_first_count[256];
/* The distinct first two bytes of the needles, and each repeated across a vector. */
static unsigned char pair_first[MAX_NEEDLES], pair_second[MAX_NEEDLES];
static int pair_count;
#if defined(__SSE2__)
static __m128i first_vector[MAX_NEEDLES], second_vector[MAX_NEEDLES];
#endif

/* Adds to `found` the needles that occur at data[i]; nonzero when one in `stop` did. */
static inline int match_at(const unsigned char *data, Py_ssize_t n, Py_ssize_t i, uint64_t *found,
                           uint64_t stop) {
    const uint8_t *candidates = by_first[data[i]];
    for (int c = 0; c < by_first_count[data[i]]; c++) {
        int k = candidates[c];
        Py_ssize_t len = needles[k].len;
        if (!(*found >> k & 1) && i + len <= n &&
            memcmp(data + i + 1, needles[k].bytes + 1, (size_t)len - 1) == 0) {
            *found |= (uint64_t)1 << k;
            if (*found & stop)
                return 1;
        }
    }
    return 0;
}

static PyObject *configure(PyObject *module, PyObject *arg) {
    (void)module;
    if (!PyTuple_Check(arg) || PyTuple_GET_SIZE(arg) > MAX_NEEDLES) {
        PyErr_SetString(PyExc_ValueError, "configure wants a tuple of at most 64 needles");
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(arg);
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *needle = PyTuple_GET_ITEM(arg, k);
        if (!PyBytes_Check(needle) || PyBytes_GET_SIZE(needle) < 2 ||
            PyBytes_GET_SIZE(needle) > MAX_NEEDLE_LEN) {
            PyErr_SetString(PyExc_ValueError, "each needle is bytes of 2 to 64 bytes");
            return NULL;
        }
    }
    memset(starts_pair, 0, sizeof starts_pair);
    memset(by_first_count, 0, sizeof by_first_count);
    pair_count = 0;
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *needle = PyTuple_GET_ITEM(arg, k);
        const unsigned char *bytes = (const unsigned char *)PyBytes_AS_STRING(needle);
        needles[k].len = PyBytes_GET_SIZE(needle);
        memcpy(needles[k].bytes, bytes, (size_t)needles[k].len);
        unsigned pair = (unsigned)bytes[0] << 8 | bytes[1];
        if (!(starts_pair[pair >> 3] & (1u << (pair & 7)))) {
            pair_first[pair_count] = bytes[0];
            pair_second[pair_count++] = bytes[1];
        }
        starts_pair[pair >> 3] |= (uint8_t)(1u << (pair & 7));
        by_first[bytes[0]][by_first_count[bytes[0]]++] = (uint8_t)k;
    }
#if defined(__SSE2__)
    for (int p = 0; p < pair_count; p++) {
        first_vector[p] = _mm_set1_epi8((char)pair_first[p]);
        second_vector[p] = _mm_set1_epi8((char)pair_second[p]);
    }
#endif
    Py_RETURN_NONE;
}

/* The (data: bytes, stop: int) arguments of present and shallow; 0 with an exception set. */
static int body_and_stop(PyObject *const *args, Py_ssize_t nargs, const char *usage,
                         const unsigned char **data, Py_ssize_t *n, uint64_t *stop) {
    if (nargs != 2 || !PyBytes_Check(args[0]) || !PyLong_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, usage);
        return 0;
    }
    *stop = PyLong_AsUnsignedLongLongMask(args[1]);
    if (*stop == (uint64_t)-1 && PyErr_Occurred())
        return 0;
    *data = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    *n = PyBytes_GET_SIZE(args[0]);
    return 1;
}

static PyObject *present(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    const unsigned char *data;
    Py_ssize_t n;
    uint64_t stop, found = 0;
    if (!body_and_stop(args, nargs, "present(data: bytes, stop: int)", &data, &n, &stop))
        return NULL;
    Py_ssize_t i = 0;
#if defined(__SSE2__)
    /* Blocks of 16 positions whose two bytes are all inside the body. */
    for (; i + 17 <= n; i += 16) {
        __m128i at = _mm_loadu_si128((const __m128i *)(data + i));
        __m128i next = _mm_loadu_si128((const __m128i *)(data + i + 1));
        __m128i any = _mm_setzero_si128();
        for (int p = 0; p < pair_count; p++) {
            __m128i first = _mm_cmpeq_epi8(at, first_vector[p]);
            any = _mm_or_si128(any, _mm_and_si128(first, _mm_cmpeq_epi8(next, second_vector[p])));
        }
        for (unsigned hits = (unsigned)_mm_movemask_epi8(any); hits; hits &= hits - 1)
            if (match_at(data, n, i + __builtin_ctz(hits), &found, stop))
                return PyLong_FromUnsignedLongLong(found);
    }
#endif
    for (; i + 1 < n; i++) {
        unsigned pair = (unsigned)data[i] << 8 | data[i + 1];
        if ((starts_pair[pair >> 3] & (1u << (pair & 7))) && match_at(data, n, i, &found, stop))
            return PyLong_FromUnsignedLongLong(found);
    }
    return PyLong_FromUnsignedLongLong(found);
}

#define MAX_DEPTH 256

static PyObject *shallow(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    const unsigned char *data;
    Py_ssize_t n;
    uint64_t stop, found = 0;
    if (!body_and_stop(args, nargs, "shallow(data: bytes, stop: int)", &data, &n, &stop))
        return NULL;
    char lists[MAX_DEPTH]; /* 1 where the container at that depth is a list */
    Py_ssize_t depth = 0, lists_inside = 0; /* lists below the outermost container */
    int in_string = 0, escaped = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = data[i];
        if (lists_inside == 0 && i + 1 < n) {
            unsigned pair = (unsigned)c << 8 | data[i + 1];
            if ((starts_pair[pair >> 3] & (1u << (pair & 7))) &&
                match_at(data, n, i, &found, stop))
                break;
        }
        if (in_string) {
            if (escaped)
                escaped = 0;
            else if (c == '\\')
                escaped = 1;
            else if (c == '"')
                in_string = 0;
            continue;
        }
        if (c == '"') {
            in_string = 1;
        } else if (c == '{' || c == '[') {
            int list = c == '[';
            if (depth < MAX_DEPTH)
                lists[depth] = (char)list;
            if (depth > 0 && depth < MAX_DEPTH)
                lists_inside += list;
            depth++;
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
            if (depth > 0 && depth < MAX_DEPTH)
                lists_inside -= lists[depth];
        }
    }
    return PyLong_FromUnsignedLongLong(found);
}

static int json_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static PyObject *outline(PyObject *module, PyObject *arg) {
    (void)module;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "outline(data: bytes)");
        return NULL;
    }
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(arg);
    Py_ssize_t n = PyBytes_GET_SIZE(arg);
    /* Never longer than data: a reduced list is at most as long as it was ([x] to [0]). */
    PyObject *result = PyBytes_FromStringAndSize(NULL, n);
    if (result == NULL)
        return NULL;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    Py_ssize_t written = 0, copied = 0, depth = 0;
    unsigned char inside[MAX_DEPTH]; /* closers the list being reduced needs, its own first */
    int open = 0, holds = 0, reduced = 0, in_string = 0, escaped = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = data[i];
        if (in_string) {
            if (escaped) {
                if (c == '\n')
                    goto unchanged;
                escaped = 0;
            } else if (c == '\\') {
                escaped = 1;
            } else if (c == '"') {
                in_string = 0;
            }
        } else if (open > 0) {
            if (c == ']' || c == '}') {
                if (inside[--open] != c)
                    goto unchanged;
                if (open == 0) {
                    if (holds)
                        out[written++] = '0';
                    out[written++] = ']';
                    copied = i + 1;
                }
            } else if (!json_space(c)) {
                holds = 1;
                if (c == '"') {
                    in_string = 1;
                } else if (c == '[' || c == '{') {
                    if (open == MAX_DEPTH)
                        goto unchanged;
                    inside[open++] = (unsigned char)(c + 2); /* ] is [ + 2, } is { + 2 */
                }
            }
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '[' && depth > 0) {
            memcpy(out + written, data + copied, (size_t)(i + 1 - copied));
            written += i + 1 - copied;
            copied = i + 1;
            inside[open++] = ']';
            holds = 0;
            reduced = 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        }
    }
    if (!reduced)
        goto unchanged;
    if (open == 0) {
        memcpy(out + written, data + copied, (size_t)(n - copied));
        written += n - copied;
    }
    if (_PyBytes_Resize(&result, written) < 0)
        return NULL;
    return result;
unchanged:
    Py_DECREF(result);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_O, "Set the needles (a tuple of up to 64 bytes objects)."},
    {"present", (PyCFunction)(void (*)(void))present, METH_FASTCALL,
     "A mask of the needles that occur in data (early, once one in `stop` is found)."},
    {"shallow", (PyCFunction)(void (*)(void))shallow, METH_FASTCALL,
     "present(), counting only the needles where every container but the outermost is an "
     "object."},
    {"outline", outline, METH_O,
     "data with each list below its outermost container reduced to [0] or [], or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef needles_module = {
    PyModuleDef_HEAD_INIT, "probe._needles",
    "Which of a few byte strings occur in a body, in one pass.", -1, methods,
};

PyMODINIT_FUNC PyInit__needles(void) { return PyModule_Create(&needles_module); }
