/* gate._fastscan: the rewriter's hot loop in C.
 *
 * boring_html(buf, pos) returns exactly what htmlstream.BORING_HTML.match(buf, pos).end() returns: the
 * end of the longest run, from pos, of text and of tags that need no decision. The regex stays the
 * definition (and the fallback when this module is not built); tests/test_fastscan.py checks that both
 * agree on generated input. Every index is checked against the buffer's length before it is read.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

typedef const unsigned char *bytes_t;

static int is_ws(unsigned char c) { return c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == ' '; }
static int is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static unsigned char lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c; }

/* ASCII case-insensitive: does buf[p:p+len] equal word (given in lower case)? */
static int eq_ci(bytes_t b, Py_ssize_t n, Py_ssize_t p, const char *word, Py_ssize_t len) {
    if (p + len > n) return 0;
    for (Py_ssize_t i = 0; i < len; i++)
        if (lower(b[p + i]) != (unsigned char)word[i]) return 0;
    return 1;
}

static const char *INTERESTING_START[] = {
    "script", "style", "noscript", "iframe", "frame", "frameset", "img", "image", "link", "source", "track",
    "embed", "object", "input", "video", "audio", "base", "meta", "textarea", "title", "xmp", "noembed",
    "noframes", "plaintext", "svg", "math", "select", "head", "body", "portal", "fencedframe", "applet", NULL};
static const char *INTERESTING_END[] = {"body", "html", "svg", "math", "select", NULL};
static const char *RISKY[] = {"style", "ping", "background", "src", "srcset", "poster", "data", "action",
                              "formaction", "xlink:href", "href", "content", "srcdoc", NULL};
static const char *SAFE_HREF[] = {"/", "#", "?", "http://", "https://", "mailto:", "tel:", "./", "../", NULL};

/* Is buf[p:p+len] one of words, compared case-insensitively and as a whole? */
static int in_list(bytes_t b, Py_ssize_t n, Py_ssize_t p, Py_ssize_t len, const char **words) {
    for (const char **w = words; *w; w++)
        if ((Py_ssize_t)strlen(*w) == len && eq_ci(b, n, p, *w, len)) return 1;
    return 0;
}

/* The regex's lookahead "(?!(?:names)[\t\n\f\r />])": a listed name followed by a delimiter. A name
 * that runs to the end of the buffer matches no alternative (the lookahead needs the delimiter). */
static int names_listed(bytes_t b, Py_ssize_t n, Py_ssize_t p, const char **words) {
    for (const char **w = words; *w; w++) {
        Py_ssize_t len = (Py_ssize_t)strlen(*w);
        if (eq_ci(b, n, p, *w, len) && p + len < n) {
            unsigned char d = b[p + len];
            if (is_ws(d) || d == '/' || d == '>') return 1;
        }
    }
    return 0;
}

/* NAME_REST: [^\t\n\f\r />=]*  */
static Py_ssize_t name_rest(bytes_t b, Py_ssize_t n, Py_ssize_t p) {
    while (p < n && !is_ws(b[p]) && b[p] != '/' && b[p] != '>' && b[p] != '=') p++;
    return p;
}

static Py_ssize_t skip_ws(bytes_t b, Py_ssize_t n, Py_ssize_t p) {
    while (p < n && is_ws(b[p])) p++;
    return p;
}

static Py_ssize_t skip_sep(bytes_t b, Py_ssize_t n, Py_ssize_t p) {
    while (p < n && (is_ws(b[p]) || b[p] == '/')) p++;
    return p;
}

/* _VALUE at p: "..." | '...' | (?!["'])[^\t\n\f\r >]* ; returns the end, or -1 (no match). */
static Py_ssize_t value(bytes_t b, Py_ssize_t n, Py_ssize_t p) {
    if (p < n && (b[p] == '"' || b[p] == '\'')) {
        const unsigned char *q = memchr(b + p + 1, b[p], (size_t)(n - p - 1));
        return q ? (Py_ssize_t)(q - b) + 1 : -1;
    }
    while (p < n && !is_ws(b[p]) && b[p] != '>') p++;
    return p;
}

/* _ASSIGN after a name: (?:ws*=ws*VALUE | (?!ws*=)) ; returns the end, or -1. */
static Py_ssize_t assign(bytes_t b, Py_ssize_t n, Py_ssize_t p) {
    Py_ssize_t q = skip_ws(b, n, p);
    if (q < n && b[q] == '=') return value(b, n, skip_ws(b, n, q + 1));
    return p;  /* no "=" follows: the attribute has no value */
}

/* One _ATTR (any name) from p; returns its end, or -1. */
static Py_ssize_t any_attr(bytes_t b, Py_ssize_t n, Py_ssize_t p) {
    p = skip_sep(b, n, p);
    if (p >= n || b[p] == '>') return -1;  /* NAME_FIRST excludes ws, "/" and ">" (skip_sep ate the rest) */
    return assign(b, n, name_rest(b, n, p + 1));
}

/* One _SAFE_ATTR from p; returns its end, or -1. */
static Py_ssize_t safe_attr(bytes_t b, Py_ssize_t n, Py_ssize_t p) {
    p = skip_sep(b, n, p);
    if (p >= n || b[p] == '>') return -1;
    /* the href branch: a plainly navigating value, then a delimiter must follow */
    if (eq_ci(b, n, p, "href", 4)) {
        Py_ssize_t q = skip_ws(b, n, p + 4);
        if (q < n && b[q] == '=') {
            q = skip_ws(b, n, q + 1);
            Py_ssize_t v = q, end = -1;
            if (v < n && (b[v] == '"' || b[v] == '\'')) v++;
            for (const char **s = SAFE_HREF; *s; s++) {
                Py_ssize_t len = (Py_ssize_t)strlen(*s);
                if (eq_ci(b, n, v, *s, len)) { end = 0; break; }
            }
            if (end == 0) {
                if (v > q) {  /* quoted: to the closing quote */
                    const unsigned char *c = memchr(b + v, b[q], (size_t)(n - v));
                    end = c ? (Py_ssize_t)(c - b) + 1 : -1;
                } else {
                    end = v;
                    while (end < n && !is_ws(b[end]) && b[end] != '>') end++;
                }
                if (end >= 0 && end < n && (is_ws(b[end]) || b[end] == '/' || b[end] == '>')) return end;
            }
        }
    }
    /* the general branch: a name that is not risky */
    Py_ssize_t name_end = name_rest(b, n, p + 1);
    Py_ssize_t len = name_end - p;
    int delimited = name_end < n;  /* the regex's (?=[\t\n\f\r />=]) needs a character */
    if (delimited && ((len >= 2 && lower(b[p]) == 'o' && lower(b[p + 1]) == 'n') || in_list(b, n, p, len, RISKY)))
        return -1;
    /* a name starting with "on" or a risky word that the buffer cuts off is not yet risky for the regex
       either; the tag cannot complete in this buffer anyway */
    return assign(b, n, name_end);
}

/* A tag from p (at "<"): start (safe attributes) or end (any attributes). Returns its end, or -1. */
static Py_ssize_t boring_tag(bytes_t b, Py_ssize_t n, Py_ssize_t p) {
    int end_tag = b[p + 1] == '/';
    Py_ssize_t q = p + 1 + end_tag;
    if (q >= n || !is_alpha(b[q])) return -1;
    if (names_listed(b, n, q, end_tag ? INTERESTING_END : INTERESTING_START)) return -1;
    while (q < n && !is_ws(b[q]) && b[q] != '/' && b[q] != '>') q++;  /* the tag name */
    for (;;) {
        Py_ssize_t a = end_tag ? any_attr(b, n, q) : safe_attr(b, n, q);
        if (a < 0) break;
        q = a;
    }
    q = skip_sep(b, n, q);
    return (q < n && b[q] == '>') ? q + 1 : -1;
}

static Py_ssize_t boring_html(bytes_t b, Py_ssize_t n, Py_ssize_t p) {
    while (p < n) {
        if (b[p] != '<') {
            const unsigned char *lt = memchr(b + p, '<', (size_t)(n - p));
            if (!lt) return n;
            p = (Py_ssize_t)(lt - b);
            continue;
        }
        if (p + 1 >= n) return p;
        unsigned char c = b[p + 1];
        if (!is_alpha(c) && c != '!' && c != '/' && c != '?') { p += 1; continue; }  /* "<" as text */
        if (c == '!' || c == '?') return p;
        Py_ssize_t e = boring_tag(b, n, p);
        if (e < 0) return p;
        p = e;
    }
    return p;
}

static PyObject *py_boring_html(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t pos;
    if (!PyArg_ParseTuple(args, "y*n", &view, &pos)) return NULL;
    Py_ssize_t n = view.len;
    if (pos < 0) pos = 0;
    Py_ssize_t end = pos >= n ? pos : boring_html((bytes_t)view.buf, n, pos);
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(end);
}

static PyMethodDef methods[] = {
    {"boring_html", py_boring_html, METH_VARARGS,
     "boring_html(buf, pos) -> int: the end of htmlstream.BORING_HTML.match(buf, pos)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "gate._fastscan", NULL, -1, methods};

PyMODINIT_FUNC PyInit__fastscan(void) { return PyModule_Create(&module); }
