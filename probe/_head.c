/* The common case of probe.http.parse_head, in one pass over the bytes.
 *
 * Two HTTP heads are parsed per exchange, and in Python each costs about a microsecond, most of
 * it in separate passes over the header block (three counts, a copy and a lower-case copy) and
 * in the strings they allocate. This does the same checks in one pass and builds only the
 * strings the result holds.
 *
 * split_head(raw: bytes, end: int) returns a MessageHead (once probe.http has called configure;
 * a plain tuple of its fields before), or None whenever the Python parser might not accept the
 * head (it then decides, and says why). It never decides more than the Python parser:
 * tests/probe/test_head.py compares the two on random heads.
 *
 * header_framing(block: str) is probe.http.header_framing_in_python (what Content-Length and
 * Transfer-Encoding say of the body) for plain-digit lengths; any other length it leaves to
 * Python's int(). Two finds, two slices and an int() per head were 7 % of the agent's CPU.
 *
 * header_value(block: str, name: str) is probe.http.header_value_in_python, MessageHead.header's
 * lookup. Header names are compared lower-cased as they are read, so a head no longer carries a
 * lower-cased copy of its block: one string fewer per head.
 *
 * start_message(data, length, ts_ns, body_limit, response_to) is probe.http.start_in_python:
 * the syscall that starts a message, taken in one call (find the head, parse it, frame its body,
 * and build the whole message when the syscall carried all of it). In mypyc those were separate
 * calls, 20 % of the agent's CPU at 10,000 requests/s; here they measured 150 to 480 ns less
 * per message (a paired loop, 200 rounds). It answers the sentinel given to configure wherever
 * the reference must decide; tests/probe/test_head.py compares the two on random bytes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define MAX_HEADERS 100 /* probe.http.MAX_HEADERS */

/* The methods of probe.http._METHODS, the common ones first: they are tried in turn. */
static const char *const METHODS[] = {
    "GET",      "POST",      "PUT",   "DELETE", "HEAD", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    "PURGE",    "PROPFIND",  "MKCOL", "COPY",   "MOVE", "LOCK",  "UNLOCK",  "REPORT",
    "PROPPATCH"};
#define METHOD_COUNT (sizeof(METHODS) / sizeof(METHODS[0]))

/* Interned once: every request carries one of these, so none is allocated per head. */
static PyObject *method_names[METHOD_COUNT];
static PyObject *http_1_0, *http_1_1, *empty;

/* Where ``needle`` first occurs in ``s[:n]``, or NULL. Heads are short and the needles few: a
 * memchr for the first byte and a byte loop for the rest beat glibc's memmem, whose setup for
 * each call was a fifth of start_message's time, and memcmp, a call per CRLF for 2 to 4 bytes. */
static const char *find(const char *s, Py_ssize_t n, const char *needle, Py_ssize_t m) {
    const char *end = s + n - m + 1; /* past the last place the needle could start */
    for (const char *at = s; at < end; at++) {
        at = memchr(at, needle[0], (size_t)(end - at));
        if (at == NULL)
            return NULL;
        Py_ssize_t i = 1;
        while (i < m && at[i] == needle[i])
            i++;
        if (i == m)
            return at;
    }
    return NULL;
}

static Py_ssize_t find_crlf(const char *s, Py_ssize_t from, Py_ssize_t to) {
    const char *at = to - from >= 2 ? find(s + from, to - from, "\r\n", 2) : NULL;
    return at != NULL ? at - s : -1;
}

static Py_ssize_t find_blank_line(const char *s, Py_ssize_t n) {
    const char *at = n >= 4 ? find(s, n, "\r\n\r\n", 4) : NULL;
    return at != NULL ? at - s : -1;
}

/* Each latin-1 byte lower-cased as str.lower() does it: A-Z and U+00C0-U+00DE but U+00D7.
 * Filled at import; a table lookup per byte instead of three comparisons. */
static unsigned char lower_latin1[256];

static void fill_lower_latin1(void) {
    for (int c = 0; c < 256; c++) {
        int upper = (c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7);
        lower_latin1[c] = (unsigned char)(upper ? c + 32 : c);
    }
}

/* Whether s[:m], lower-cased, is ``lower``. */
static int equal_lowered(const unsigned char *s, const char *lower, Py_ssize_t m) {
    for (Py_ssize_t i = 0; i < m; i++) {
        if (lower_latin1[s[i]] != (unsigned char)lower[i])
            return 0;
    }
    return 1;
}

/* Where ``lower`` first occurs in s[:n] lower-cased, or NULL: str.lower() then str.find(). */
static const unsigned char *find_lowered(const unsigned char *s, Py_ssize_t n, const char *lower,
                                         Py_ssize_t m) {
    for (Py_ssize_t at = 0; at + m <= n; at++) {
        if (lower_latin1[s[at]] == (unsigned char)lower[0] && equal_lowered(s + at, lower, m))
            return s + at;
    }
    return NULL;
}

/* Where "\r\n" + ``name`` first occurs in s[:n] lower-cased, or NULL. Only a CRLF can start
 * it, so only CRLFs are visited (a head has a few), each a memchr away from the last. */
static const unsigned char *find_header_lowered(const unsigned char *s, Py_ssize_t n,
                                                const char *name, Py_ssize_t m) {
    for (Py_ssize_t at = 0; at + 2 + m <= n;) {
        const char *crlf = find((const char *)s + at, n - at - m, "\r\n", 2);
        if (crlf == NULL)
            return NULL;
        const unsigned char *line = (const unsigned char *)crlf;
        if (equal_lowered(line + 2, name, m))
            return line;
        at = line - s + 1;
    }
    return NULL;
}

/* A str of latin-1 bytes, in CPython's canonical form (ASCII kind when every byte is ASCII). */
static PyObject *latin1_text(const unsigned char *s, Py_ssize_t n, int ascii) {
    PyObject *text = PyUnicode_New(n, ascii ? 127 : 255);
    if (text == NULL)
        return NULL;
    memcpy(PyUnicode_1BYTE_DATA(text), s, (size_t)n);
    return text;
}

static PyObject *method_name(const char *s, Py_ssize_t n) {
    for (size_t i = 0; i < METHOD_COUNT; i++) {
        if ((Py_ssize_t)strlen(METHODS[i]) == n && memcmp(s, METHODS[i], (size_t)n) == 0)
            return method_names[i];
    }
    return NULL;
}

/* The type split_head builds (probe.http.MessageHead, set by configure), or plain tuples. Built
 * here in place, the head is not copied again into a NamedTuple by Python. */
static PyTypeObject *head_type = &PyTuple_Type;
/* The type start_message builds (probe.http.HttpMessage) and its answer meaning "ask the Python
 * reference", both set by configure. */
static PyTypeObject *message_type;
static PyObject *undecided;
/* probe.http.header_value_in_python, set by configure: header_value's answer for what no parser
 * makes (a block or a name beyond latin-1). */
static PyObject *header_value_reference;

static PyObject *new_head(int is_request, PyObject *method, PyObject *target, long status,
                          PyObject *version, PyObject *block, Py_ssize_t size) {
    PyObject *head = head_type->tp_alloc(head_type, 7);
    if (head == NULL)
        return NULL;
    PyObject *status_int = PyLong_FromLong(status), *size_int = PyLong_FromSsize_t(size);
    if (status_int == NULL || size_int == NULL) {
        Py_XDECREF(status_int);
        Py_XDECREF(size_int);
        Py_DECREF(head);
        return NULL;
    }
    PyTuple_SET_ITEM(head, 0, Py_NewRef(is_request ? Py_True : Py_False));
    PyTuple_SET_ITEM(head, 1, Py_NewRef(method));
    PyTuple_SET_ITEM(head, 2, Py_NewRef(target));
    PyTuple_SET_ITEM(head, 3, status_int);
    PyTuple_SET_ITEM(head, 4, Py_NewRef(version));
    PyTuple_SET_ITEM(head, 5, Py_NewRef(block));
    PyTuple_SET_ITEM(head, 6, size_int);
    return head;
}

static PyObject *configure(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *head, *message, *sentinel, *reference;
    if (!PyArg_ParseTuple(args, "O!O!OO:configure", &PyType_Type, &head, &PyType_Type, &message,
                          &sentinel, &reference))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)head, &PyTuple_Type) ||
        !PyType_IsSubtype((PyTypeObject *)message, &PyTuple_Type) || !PyCallable_Check(reference)) {
        PyErr_SetString(PyExc_TypeError, "configure wants two tuple types (probe.http's "
                                         "MessageHead and HttpMessage), a sentinel and "
                                         "header_value_in_python");
        return NULL;
    }
    /* Kept for the life of the process. */
    head_type = (PyTypeObject *)Py_NewRef(head);
    message_type = (PyTypeObject *)Py_NewRef(message);
    undecided = Py_NewRef(sentinel);
    header_value_reference = Py_NewRef(reference);
    Py_RETURN_NONE;
}

/* The head of raw[:end + 4] (end < 0: where the first blank line is), or None (a new
 * reference either way) when the Python parser might not accept it; NULL on an error. */
static PyObject *parse_head_at(const unsigned char *raw, Py_ssize_t size, Py_ssize_t end) {
    const char *text = (const char *)raw;
    if (end < 0)
        end = find_blank_line(text, size);
    else if (end > size - 4 || memcmp(raw + end, "\r\n\r\n", 4) != 0)
        Py_RETURN_NONE; /* not where a blank line is: leave it to the Python parser */
    if (end < 0)
        Py_RETURN_NONE;
    Py_ssize_t head_end = end + 2; /* the head's text: through the last header's CRLF */
    Py_ssize_t line_end = find_crlf(text, 0, head_end);

    /* The start line, split at its first two spaces (str.split(" ", 2)). */
    const char *space = memchr(text, ' ', (size_t)line_end);
    if (space == NULL)
        Py_RETURN_NONE;
    Py_ssize_t first = space - text;
    space = memchr(text + first + 1, ' ', (size_t)(line_end - first - 1));
    Py_ssize_t second = space == NULL ? -1 : space - text;

    int is_request;
    long status = 0;
    PyObject *method, *version;
    Py_ssize_t target_at = 0, target_len = 0;
    if (first >= 7 && memcmp(text, "HTTP/1.", 7) == 0) {
        if (first != 8 || (text[7] != '0' && text[7] != '1'))
            Py_RETURN_NONE;
        Py_ssize_t code_end = second < 0 ? line_end : second;
        if (code_end - first - 1 != 3)
            Py_RETURN_NONE;
        for (Py_ssize_t i = first + 1; i < code_end; i++) {
            if (text[i] < '0' || text[i] > '9')
                Py_RETURN_NONE;
            status = status * 10 + (text[i] - '0');
        }
        is_request = 0;
        method = empty;
        version = text[7] == '1' ? http_1_1 : http_1_0;
    } else {
        if (second < 0 || line_end - second - 1 != 8)
            Py_RETURN_NONE;
        method = method_name(text, first);
        if (method == NULL)
            Py_RETURN_NONE;
        if (memcmp(text + second + 1, "HTTP/1.1", 8) == 0)
            version = http_1_1;
        else if (memcmp(text + second + 1, "HTTP/1.0", 8) == 0)
            version = http_1_0;
        else
            Py_RETURN_NONE;
        target_at = first + 1;
        target_len = second - first - 1;
        if (target_len == 0)
            Py_RETURN_NONE;
        for (Py_ssize_t i = target_at; i < second; i++) {
            if (raw[i] < 0x20 || raw[i] > 0x7E)
                Py_RETURN_NONE; /* visible ASCII only, as str.isascii() and isprintable() */
        }
        is_request = 1;
    }

    /* The header block, from the start line's CRLF through the last header's: every line holds
     * a colon (counted as a whole, as the Python parser does), no NUL and no bare LF. */
    Py_ssize_t crlfs = 0, colons = 0, newlines = 0;
    int ascii = 1;
    for (Py_ssize_t i = line_end; i < head_end; i++) {
        unsigned char c = raw[i];
        if (c == '\n') {
            newlines++;
            if (i > line_end && raw[i - 1] == '\r')
                crlfs++;
        } else if (c == ':') {
            colons++;
        } else if (c == 0) {
            Py_RETURN_NONE;
        } else if (c >= 0x80) {
            ascii = 0;
        }
    }
    Py_ssize_t lines = crlfs - 1;
    if (colons < lines || newlines != lines + 1 || lines > MAX_HEADERS)
        Py_RETURN_NONE;

    Py_ssize_t block_len = head_end - line_end;
    PyObject *target = NULL, *block = NULL, *fields = NULL;
    if (is_request) {
        target = latin1_text(raw + target_at, target_len, 1);
    } else {
        target = Py_NewRef(empty);
    }
    if (target == NULL)
        goto fail;
    block = latin1_text(raw + line_end, block_len, ascii);
    if (block == NULL)
        goto fail;
    fields = new_head(is_request, method, target, status, version, block, end + 4);
fail:
    Py_XDECREF(target);
    Py_XDECREF(block);
    return fields;
}

static PyObject *split_head(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2 || !PyBytes_Check(args[0]) || !PyLong_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "split_head(raw: bytes, end: int)");
        return NULL;
    }
    Py_ssize_t end = PyLong_AsSsize_t(args[1]);
    if (end == -1 && PyErr_Occurred())
        return NULL;
    return parse_head_at((const unsigned char *)PyBytes_AS_STRING(args[0]),
                         PyBytes_GET_SIZE(args[0]), end);
}

/* probe.http's framing constants. */
#define CHUNKED -1
#define UNTIL_CLOSE -2
#define NO_LENGTH -4
#define ASK -5 /* a Content-Length value other than plain digits: Python's int() decides */

/* Where the line that starts at ``at`` ends, as Python's block[at : block.find("\r\n", at)]
 * would cut it (find's -1 cuts before the last character). */
static Py_ssize_t line_end_from(const char *s, Py_ssize_t n, Py_ssize_t at) {
    const char *crlf = n - at >= 2 ? find(s + at, n - at, "\r\n", 2) : NULL;
    return crlf != NULL ? crlf - s : n - 1;
}

/* probe.http.header_framing_in_python for the usual values of the header block s[:n] (latin-1
 * bytes), ASK for the rest. Names and "chunked" are compared lower-cased, as the reference
 * compares them in its lower-cased copy; a length has no letters. */
static long long block_framing(const unsigned char *s, Py_ssize_t n) {
    const unsigned char *te = find_header_lowered(s, n, "transfer-encoding:", 18);
    if (te != NULL) {
        Py_ssize_t at = te - s + 20, end = line_end_from((const char *)s, n, at);
        if (end - at >= 7 && find_lowered(s + at, end - at, "chunked", 7) != NULL)
            return CHUNKED;
    }
    const unsigned char *cl = find_header_lowered(s, n, "content-length:", 15);
    if (cl == NULL)
        return NO_LENGTH;
    Py_ssize_t at = cl - s + 17, end = line_end_from((const char *)s, n, at);
    while (at < end && (s[at] == ' ' || s[at] == '\t'))
        at++;
    while (end > at && (s[end - 1] == ' ' || s[end - 1] == '\t'))
        end--;
    if (end == at || end - at > 18)
        return ASK;
    long long length = 0;
    for (Py_ssize_t i = at; i < end; i++) {
        if (s[i] < '0' || s[i] > '9')
            return ASK;
        length = length * 10 + (s[i] - '0');
    }
    return length;
}

/* block_framing of a header block str; ASK for one that is not latin-1 text. */
static long long text_framing(PyObject *block) {
    if (PyUnicode_KIND(block) != PyUnicode_1BYTE_KIND)
        return ASK;
    return block_framing(PyUnicode_1BYTE_DATA(block), PyUnicode_GET_LENGTH(block));
}

static PyObject *header_framing(PyObject *module, PyObject *block) {
    (void)module;
    if (!PyUnicode_Check(block)) {
        PyErr_SetString(PyExc_TypeError, "header_framing(block: str)");
        return NULL;
    }
    return PyLong_FromLongLong(text_framing(block));
}

/* probe.http.header_value_in_python: the first value of header ``name`` in ``block``, names
 * compared lower-cased, or None. */
static PyObject *header_value(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "header_value(block: str, name: str)");
        return NULL;
    }
    PyObject *block = args[0], *name = args[1];
    if (PyUnicode_KIND(name) != PyUnicode_1BYTE_KIND ||
        PyUnicode_KIND(block) != PyUnicode_1BYTE_KIND) {
        if (header_value_reference == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "probe._head.configure was not called");
            return NULL;
        }
        return PyObject_Vectorcall(header_value_reference, args, 2, NULL);
    }
    const unsigned char *s = PyUnicode_1BYTE_DATA(block);
    Py_ssize_t n = PyUnicode_GET_LENGTH(block);
    const char *wanted = (const char *)PyUnicode_1BYTE_DATA(name);
    Py_ssize_t m = PyUnicode_GET_LENGTH(name);
    char short_name[64];
    char *name_colon =
        m < (Py_ssize_t)sizeof(short_name) ? short_name : PyMem_Malloc((size_t)m + 1);
    if (name_colon == NULL)
        return PyErr_NoMemory();
    memcpy(name_colon, wanted, (size_t)m);
    name_colon[m] = ':';
    const unsigned char *line = find_header_lowered(s, n, name_colon, m + 1);
    if (name_colon != short_name)
        PyMem_Free(name_colon);
    if (line == NULL)
        Py_RETURN_NONE;
    Py_ssize_t at = line - s + 2 + m + 1;
    Py_ssize_t end = line_end_from((const char *)s, n, at);
    if (end < at)
        end = at; /* the reference's slice is empty there */
    while (at < end && (s[at] == ' ' || s[at] == '\t'))
        at++;
    while (end > at && (s[end - 1] == ' ' || s[end - 1] == '\t'))
        end--;
    return PyUnicode_Substring(block, at, end);
}

/* probe.http.framing_of: how the body of ``head`` ends. ASK when Python must decide; -100
 * with an exception set when ``response_to`` raised. */
#define FRAMING_ERROR -100
static long long framing_of(PyObject *head, PyObject *response_to) {
    if (PyTuple_GET_ITEM(head, 0) == Py_False) { /* a response */
        long status = PyLong_AsLong(PyTuple_GET_ITEM(head, 3));
        if ((status >= 100 && status < 200) || status == 204 || status == 304)
            return 0;
        if (response_to != Py_None) {
            PyObject *method = PyObject_CallNoArgs(response_to);
            if (method == NULL)
                return FRAMING_ERROR;
            int no_body = 0;
            if (PyUnicode_Check(method)) {
                no_body = PyUnicode_CompareWithASCIIString(method, "HEAD") == 0 ||
                          (PyUnicode_CompareWithASCIIString(method, "CONNECT") == 0 &&
                           status >= 200 && status < 300);
            }
            Py_DECREF(method);
            if (no_body)
                return 0;
        }
    }
    long long framing = text_framing(PyTuple_GET_ITEM(head, 5));
    if (framing == NO_LENGTH)
        return PyTuple_GET_ITEM(head, 0) == Py_True ? 0 : UNTIL_CLOSE;
    return framing;
}

/* probe.http.start_in_python for what this module can decide; ``undecided`` for the rest (a
 * head split_head leaves to Python, a length Python's int() must read). */
static PyObject *start_message(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 5 || !PyBytes_Check(args[0]) || !PyLong_Check(args[1]) ||
        !PyLong_Check(args[2]) || !PyLong_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "start_message(data: bytes, length: int, ts_ns: int, "
                                         "body_limit: int, response_to)");
        return NULL;
    }
    if (message_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "probe._head.configure was not called");
        return NULL;
    }
    const unsigned char *raw = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t captured = PyBytes_GET_SIZE(args[0]);
    long long length = PyLong_AsLongLong(args[1]);
    long long body_limit = PyLong_AsLongLong(args[3]);
    if ((length == -1 || body_limit == -1) && PyErr_Occurred())
        return NULL;
    Py_ssize_t blank = find_blank_line((const char *)raw, captured);
    if (blank < 0)
        Py_RETURN_NONE;
    PyObject *head = parse_head_at(raw, captured, blank);
    if (head == NULL)
        return NULL;
    if (head == Py_None) {
        Py_DECREF(head);
        return Py_NewRef(undecided);
    }
    long long framing = framing_of(head, args[4]);
    if (framing == FRAMING_ERROR || framing == ASK) {
        Py_DECREF(head);
        return framing == ASK ? Py_NewRef(undecided) : NULL;
    }
    Py_ssize_t size = PyLong_AsSsize_t(PyTuple_GET_ITEM(head, 6));
    PyObject *out = NULL;
    if (framing >= 0 && size + framing == length) {
        /* The whole message passed in this syscall, its body perhaps cut by the capture. */
        Py_ssize_t room = body_limit < 0 ? 0 : (Py_ssize_t)body_limit;
        Py_ssize_t body_len = captured - size < room ? captured - size : room;
        PyObject *body = PyBytes_FromStringAndSize((const char *)raw + size, body_len);
        PyObject *message = body == NULL ? NULL : message_type->tp_alloc(message_type, 7);
        if (message != NULL) { /* (head, start_ns, end_ns, size, body, truncated, complete) */
            PyTuple_SET_ITEM(message, 0, Py_NewRef(head));
            PyTuple_SET_ITEM(message, 1, Py_NewRef(args[2]));
            PyTuple_SET_ITEM(message, 2, Py_NewRef(args[2]));
            PyTuple_SET_ITEM(message, 3, Py_NewRef(args[1]));
            PyTuple_SET_ITEM(message, 4, Py_NewRef(body));
            PyTuple_SET_ITEM(message, 5, Py_NewRef(framing > body_len ? Py_True : Py_False));
            PyTuple_SET_ITEM(message, 6, Py_NewRef(Py_True));
        }
        Py_XDECREF(body);
        out = message;
    } else {
        PyObject *framing_int = PyLong_FromLongLong(framing);
        if (framing_int != NULL) {
            out = PyTuple_Pack(2, head, framing_int);
            Py_DECREF(framing_int);
        }
    }
    Py_DECREF(head);
    return out;
}

static PyMethodDef methods[] = {
    {"header_framing", header_framing, METH_O,
     "What a header block says of the body: a length, -1 chunked, -4 neither, "
     "-5 for Python to decide."},
    {"header_value", (PyCFunction)(void (*)(void))header_value, METH_FASTCALL,
     "The first value of header ``name`` in a header block (names compared lower-cased), or "
     "None."},
    {"configure", configure, METH_VARARGS,
     "Build heads and messages of these tuple types (probe.http.MessageHead, HttpMessage); "
     "answer the sentinel where Python must decide."},
    {"start_message", (PyCFunction)(void (*)(void))start_message, METH_FASTCALL,
     "probe.http.start_in_python, or the sentinel to leave it to Python."},
    {"split_head", (PyCFunction)(void (*)(void))split_head, METH_FASTCALL,
     "The MessageHead of raw[:end + 4], or None to leave the head to Python."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef head_module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "probe._head",
    .m_doc = "The common case of probe.http.parse_head, in C.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__head(void) {
    fill_lower_latin1();
    for (size_t i = 0; i < METHOD_COUNT; i++) {
        method_names[i] = PyUnicode_InternFromString(METHODS[i]);
        if (method_names[i] == NULL)
            return NULL;
    }
    http_1_0 = PyUnicode_InternFromString("HTTP/1.0");
    http_1_1 = PyUnicode_InternFromString("HTTP/1.1");
    empty = PyUnicode_InternFromString("");
    if (http_1_0 == NULL || http_1_1 == NULL || empty == NULL)
        return NULL;
    return PyModule_Create(&head_module);
}
