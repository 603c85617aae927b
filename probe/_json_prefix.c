/* Where a cut JSON document can be closed: probe.body.scan_in_python, in one pass in C.
 *
 * A response body longer than the capture reaches the agent cut, and probe.body.parse_json_prefix
 * keeps what ended before the cut. To know where that is, the reference lexes the text with a
 * regular expression and walks its tokens in Python: about 300 us for a cut 3 KiB list of
 * records, a hundred times the agent's whole per-exchange budget. This walks the same tokens
 * (complete strings, a quote that opens a string never closed, brackets and commas; everything
 * else is skipped) over the str's own code units.
 *
 * scan(text: str) returns None where the reference does: a closing bracket that does not match,
 * or one that closes the first value (a document that is complete, which json.loads must then
 * judge). Otherwise (safe_end, safe_depth, closers, in_string): text[:safe_end] closed with the
 * first safe_depth of closers (the brackets the open containers need, outermost first) is the
 * longest prefix made of whole members and elements; in_string says the text ends inside a
 * string. tests/probe/test_body.py compares the two on random and cut documents.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* The end of the complete string whose opening quote is at `start`, as the reference's pattern
 * "[^"\\]*(?:\\.[^"\\]*)*" matches it (`.` takes any code unit but a newline), or -1. */
static Py_ssize_t string_end(int kind, const void *data, Py_ssize_t n, Py_ssize_t start) {
    for (Py_ssize_t i = start + 1; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c == '"')
            return i + 1;
        if (c == '\\') {
            if (i + 1 >= n || PyUnicode_READ(kind, data, i + 1) == '\n')
                return -1;
            i++;
        }
    }
    return -1;
}

static PyObject *scan(PyObject *module, PyObject *text) {
    (void)module;
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "scan(text: str)");
        return NULL;
    }
    if (PyUnicode_READY(text) < 0) /* a no-op for every str Python 3.11 makes itself */
        return NULL;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    char *stack = PyMem_Malloc(n > 0 ? (size_t)n : 1); /* no deeper than the text is long */
    if (stack == NULL)
        return PyErr_NoMemory();
    Py_ssize_t depth = 0, safe_end = 0, safe_depth = 0;
    int in_string = 0;
    PyObject *out = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        switch (c) {
        case '"': {
            Py_ssize_t end = string_end(kind, data, n, i);
            if (end < 0) {
                in_string = 1;
                goto done;
            }
            i = end - 1;
            break;
        }
        case '{':
        case '[':
            stack[depth++] = c == '{' ? '}' : ']';
            safe_end = i + 1;
            safe_depth = depth;
            break;
        case ',':
            safe_end = i;
            safe_depth = depth;
            break;
        case '}':
        case ']':
            if (depth == 0 || stack[depth - 1] != (char)c || --depth == 0) {
                out = Py_NewRef(Py_None); /* mismatched, or the first value is complete */
                goto free;
            }
            safe_end = i + 1;
            safe_depth = depth;
            break;
        }
    }
done: {
    PyObject *closers = PyUnicode_FromStringAndSize(stack, depth);
    if (closers != NULL) {
        out = Py_BuildValue("nnOO", safe_end, safe_depth, closers, in_string ? Py_True : Py_False);
        Py_DECREF(closers);
    }
}
free:
    PyMem_Free(stack);
    return out;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_O,
     "Where a cut JSON document can be closed (probe.body.scan_in_python)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef json_prefix_module = {
    PyModuleDef_HEAD_INIT, "probe._json_prefix",
    "Where a cut JSON document can be closed: probe.body.scan_in_python in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__json_prefix(void) { return PyModule_Create(&json_prefix_module); }
