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
 * outermost container (opened fewer than MAX_DEPTH levels deep) reduced to [0], or [] when
 * empty, or left open when the body is cut inside it. json.loads then builds the objects the
 * detectors read and not the records they skip, and present() on the outline finds what
 * shallow() finds on the body: one pass over the body serves both. data itself when there is
 * nothing to reduce; None where the lexer gives up (see probe.semantics.outline_in_python, its
 * reference).
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

/* outline()'s lexer: what it has written to `out`, and where it is in the body. */
struct outliner {
    const unsigned char *data;
    unsigned char *out;
    Py_ssize_t written, copied; /* data[:copied] is in out, or left out */
    Py_ssize_t depth;           /* containers open outside the list being reduced */
    int open;                   /* brackets open in the list being reduced, its own first */
    int holds, reduced, in_string, escaped;
    unsigned char inside[MAX_DEPTH]; /* the closers those need */
};

/* A bracket outside any string, at data[i]; 0 where the lexer gives up. */
static inline int outline_bracket(struct outliner *x, Py_ssize_t i, unsigned char c) {
    if (x->open > 0) {
        if (c == ']' || c == '}') {
            if (x->inside[--x->open] != c)
                return 0;
            if (x->open == 0) {
                if (x->holds)
                    x->out[x->written++] = '0';
                x->out[x->written++] = ']';
                x->copied = i + 1;
            }
        } else {
            x->holds = 1;
            if (x->open == MAX_DEPTH)
                return 0;
            x->inside[x->open++] = (unsigned char)(c + 2); /* ] is [ + 2, } is { + 2 */
        }
    } else if (c == '[' && x->depth > 0 && x->depth < MAX_DEPTH) {
        memcpy(x->out + x->written, x->data + x->copied, (size_t)(i + 1 - x->copied));
        x->written += i + 1 - x->copied;
        x->copied = i + 1;
        x->inside[x->open++] = ']';
        x->holds = 0;
        x->reduced = 1;
    } else if (c == '{' || c == '[') {
        x->depth++;
    } else if (x->depth > 0) {
        x->depth--;
    }
    return 1;
}

/* Any byte, at data[i]; 0 where the lexer gives up. */
static inline int outline_byte(struct outliner *x, Py_ssize_t i, unsigned char c) {
    if (x->in_string) {
        if (x->escaped) {
            if (c == '\n')
                return 0;
            x->escaped = 0;
        } else if (c == '\\') {
            x->escaped = 1;
        } else if (c == '"') {
            x->in_string = 0;
        }
        return 1;
    }
    if (c == '[' || c == ']' || c == '{' || c == '}')
        return outline_bracket(x, i, c);
    if (x->open > 0 && !json_space(c))
        x->holds = 1;
    if (c == '"')
        x->in_string = 1;
    return 1;
}

#if defined(__SSE2__)
/* Bit k set where an odd number of bits 0..k of m are. */
static inline unsigned prefix_xor16(unsigned m) {
    m ^= m << 1;
    m ^= m << 2;
    m ^= m << 4;
    m ^= m << 8;
    return m & 0xFFFF;
}

static inline unsigned mask_of(__m128i block, char c) {
    return (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(block, _mm_set1_epi8(c)));
}

/* The 16 bytes at data[i], none of them a backslash nor escaped by one: the quotes say which
 * bytes lie in strings, and only the brackets outside them are taken one by one. */
static inline int outline_block(struct outliner *x, Py_ssize_t i, __m128i block) {
    unsigned quotes = mask_of(block, '"');
    unsigned brackets =
        mask_of(block, '[') | mask_of(block, ']') | mask_of(block, '{') | mask_of(block, '}');
    unsigned space =
        mask_of(block, ' ') | mask_of(block, '\t') | mask_of(block, '\r') | mask_of(block, '\n');
    unsigned strings = prefix_xor16(quotes) ^ (x->in_string ? 0xFFFFu : 0u);
    unsigned bytes_since = 0xFFFF; /* the bytes after the last bracket taken */
    for (unsigned events = brackets & ~strings; events; events &= events - 1) {
        int k = __builtin_ctz(events);
        if (x->open > 0 && (~space & bytes_since & ((1u << k) - 1)))
            x->holds = 1;
        if (!outline_bracket(x, i + k, x->data[i + k]))
            return 0;
        bytes_since = 0xFFFFu & ~((2u << k) - 1);
    }
    if (x->open > 0 && (~space & bytes_since))
        x->holds = 1;
    x->in_string ^= __builtin_popcount(quotes) & 1;
    return 1;
}
#endif

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
    struct outliner x = {.data = data, .out = (unsigned char *)PyBytes_AS_STRING(result)};
    Py_ssize_t i = 0;
#if defined(__SSE2__)
    /* JSON text is mostly letters between brackets and quotes: 16 bytes at a time, the bytes
     * that matter picked out, where the byte loop took ~3 ns a byte (3 us a KiB). */
    while (i + 16 <= n) {
        if (x.escaped) { /* the byte after a backslash: the loop's */
            if (!outline_byte(&x, i, data[i]))
                goto give_up;
            i++;
            continue;
        }
        __m128i block = _mm_loadu_si128((const __m128i *)(data + i));
        if (mask_of(block, '\\')) {
            for (Py_ssize_t end = i + 16; i < end; i++)
                if (!outline_byte(&x, i, data[i]))
                    goto give_up;
            continue;
        }
        if (!outline_block(&x, i, block))
            goto give_up;
        i += 16;
    }
#endif
    for (; i < n; i++)
        if (!outline_byte(&x, i, data[i]))
            goto give_up;
    if (!x.reduced) {
        Py_DECREF(result);
        Py_INCREF(arg);
        return arg;
    }
    if (x.open == 0) {
        memcpy(x.out + x.written, data + x.copied, (size_t)(n - x.copied));
        x.written += n - x.copied;
    }
    if (_PyBytes_Resize(&result, x.written) < 0)
        return NULL;
    return result;
give_up:
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
     "data with each list below its outermost container reduced to [0] or [] (data itself "
     "when none is), or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef needles_module = {
    PyModuleDef_HEAD_INIT, "probe._needles",
    "Which of a few byte strings occur in a body, in one pass.", -1, methods,
};

PyMODINIT_FUNC PyInit__needles(void) { return PyModule_Create(&needles_module); }
