/* gate._fastscan: the rewriter's hot loop in C.
 *
 * boring_html(buf, pos) returns exactly what htmlstream.BORING_HTML.match(buf, pos).end() returns: the
 * end of the longest run, from pos, of text and of tags that need no decision. The regex stays the
 * definition (and the fallback when this module is not built); tests/test_fastscan.py checks that both
 * agree on generated input. Every index is checked against the buffer's length before it is read.
 *
 * inert_html(buf, pos) is boring_html that also passes start tags which can reach no host but the page's
 * own (gate/inert.py has the definition, INERT_HTML, and says when the rewriter may use it).
 *
 * read_tag(buf, pos) reads the complete tag at pos into an htmlstream.Tag (htmlstream.read_tag_py has the
 * definition: the TAG regex and its groups).
 *
 * word_positions(text, words) finds where any of a registry's words (ASCII, lower case) stands in a
 * script or attribute text, ASCII letters compared case-insensitively: the candidates where a
 * signature is tried (vendors.Registry). vendors._word_positions_py is the definition.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

typedef const unsigned char *bytes_t;

/* Byte classes, one table lookup where a loop would compare a byte with up to five characters. Filled
 * by classify() at import. */
enum { C_WS = 1, C_NAME_STOP = 2, C_TAG_NAME_STOP = 4, C_VALUE_STOP = 8 };
static unsigned char CLASS[256];

static void classify(void) {
    const char *ws = "\t\n\f\r ";
    for (const char *c = ws; *c; c++) CLASS[(unsigned char)*c] = C_WS | C_NAME_STOP | C_TAG_NAME_STOP | C_VALUE_STOP;
    CLASS['/'] |= C_NAME_STOP | C_TAG_NAME_STOP;
    CLASS['>'] |= C_NAME_STOP | C_TAG_NAME_STOP | C_VALUE_STOP;
    CLASS['='] |= C_NAME_STOP;
}

static inline int is_ws(unsigned char c) { return CLASS[c] & C_WS; }
static int is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static unsigned char lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c; }

/* ASCII case-insensitive: does buf[p:p+len] equal word (given in lower case)? */
static int eq_ci(bytes_t b, Py_ssize_t n, Py_ssize_t p, const char *word, Py_ssize_t len) {
    if (p + len > n) return 0;
    for (Py_ssize_t i = 0; i < len; i++)
        if (lower(b[p + i]) != (unsigned char)word[i]) return 0;
    return 1;
}

/* Word lists, each word in lower case with its length. A token is compared only with words of its
 * own length and first letter (a strcmp over every word of every tag cost more than the rest of the
 * scan). */
typedef struct { const char *w; Py_ssize_t len; } word_t;
#define W(s) {s, sizeof(s) - 1}
static const word_t INTERESTING_START[] = {
    W("script"), W("style"), W("noscript"), W("iframe"), W("frame"), W("frameset"), W("img"), W("image"),
    W("link"), W("source"), W("track"), W("embed"), W("object"), W("input"), W("video"), W("audio"),
    W("base"), W("meta"), W("textarea"), W("title"), W("xmp"), W("noembed"), W("noframes"), W("plaintext"),
    W("svg"), W("math"), W("select"), W("head"), W("body"), W("portal"), W("fencedframe"), W("applet"),
    W("template"), {NULL, 0}};
static const word_t INTERESTING_END[] = {W("body"),   W("html"),     W("svg"), W("math"),
                                         W("select"), W("template"), {NULL, 0}};
static const word_t RISKY[] = {W("style"), W("ping"), W("background"), W("src"), W("srcset"), W("poster"),
                               W("data"), W("action"), W("formaction"), W("xlink:href"), W("href"),
                               W("content"), W("srcdoc"), {NULL, 0}};
/* inert.py's INERT_NAMES and URL_ATTRS */
static const word_t INERT_NAMES[] = {W("img"), W("source"), W("video"), W("audio"), W("track"), {NULL, 0}};
static const word_t URL_ATTRS[] = {W("src"), W("srcset"), W("poster"), W("href"), W("data"), W("background"),
                                   W("codebase"), W("xlink:href"), W("action"), W("formaction"), {NULL, 0}};
#undef W
static const char *SAFE_HREF[] = {"/", "#", "?", "http://", "https://", "mailto:", "tel:", "./", "../", NULL};
#define LONGEST_WORD 15 /* longer than every listed word */

/* A word list with two filters filled by index_words() at import: bit k of lengths is set when some word
 * is k long, and bit c of firsts[k] when some word of length k starts with the letter 'a' + c. Most names
 * a page holds ("span", "class", "li") fail one of the two bit tests and are never compared. */
typedef struct {
    const word_t *words;
    unsigned int lengths;
    unsigned int firsts[LONGEST_WORD + 1];
} wordset_t;
static wordset_t START_SET = {INTERESTING_START}, END_SET = {INTERESTING_END}, RISKY_SET = {RISKY},
                 INERT_SET = {INERT_NAMES}, URL_SET = {URL_ATTRS};

static void index_words(wordset_t *set) {
    for (const word_t *w = set->words; w->w; w++) {
        set->lengths |= 1u << w->len;
        set->firsts[w->len] |= 1u << (w->w[0] - 'a');  /* every listed word starts with a-z */
    }
}

/* Is buf[p:p+len] one of the set's words, compared case-insensitively and whole? */
static int in_list(bytes_t b, Py_ssize_t n, Py_ssize_t p, Py_ssize_t len, const wordset_t *set) {
    if (len <= 0 || len > LONGEST_WORD || p + len > n || !(set->lengths & (1u << len))) return 0;
    unsigned char first = lower(b[p]);
    if (first < 'a' || first > 'z' || !(set->firsts[len] & (1u << (first - 'a')))) return 0;
    unsigned char low[LONGEST_WORD];
    for (Py_ssize_t i = 0; i < len; i++) low[i] = lower(b[p + i]);
    for (const word_t *w = set->words; w->w; w++)
        if (w->len == len && (unsigned char)w->w[0] == first && memcmp(low, w->w, (size_t)len) == 0) return 1;
    return 0;
}

/* NAME_REST: [^\t\n\f\r />=]*  */
static Py_ssize_t name_rest(bytes_t b, Py_ssize_t n, Py_ssize_t p) {
    while (p < n && !(CLASS[b[p]] & C_NAME_STOP)) p++;
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
    while (p < n && !(CLASS[b[p]] & C_VALUE_STOP)) p++;
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
                    while (end < n && !(CLASS[b[end]] & C_VALUE_STOP)) end++;
                }
                if (end >= 0 && end < n && (is_ws(b[end]) || b[end] == '/' || b[end] == '>')) return end;
            }
        }
    }
    /* the general branch: a name that is not risky */
    Py_ssize_t name_end = name_rest(b, n, p + 1);
    Py_ssize_t len = name_end - p;
    int delimited = name_end < n;  /* the regex's (?=[\t\n\f\r />=]) needs a character */
    if (delimited && ((len >= 2 && lower(b[p]) == 'o' && lower(b[p + 1]) == 'n') ||
                      in_list(b, n, p, len, &RISKY_SET)))
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
    Py_ssize_t name = q;
    while (q < n && !(CLASS[b[q]] & C_TAG_NAME_STOP)) q++;  /* the tag name */
    /* The regex's lookahead "(?!(?:names)[\t\n\f\r />])": the name, up to its delimiter, is a listed
       word. A name that runs to the end of the buffer leaves the tag incomplete either way. */
    if (q >= n) return -1;
    if (end_tag ? in_list(b, n, name, q - name, &END_SET)
                : in_list(b, n, name, q - name, &START_SET))
        return -1;
    for (;;) {
        Py_ssize_t a = end_tag ? any_attr(b, n, q) : safe_attr(b, n, q);
        if (a < 0) break;
        q = a;
    }
    q = skip_sep(b, n, q);
    return (q < n && b[q] == '>') ? q + 1 : -1;
}

/* A whole comment from p (at "<!" or "<?"), as the regex reads it: "<!-->", "<!--->", or "<!--" up to
 * the first "-->" or "--!>" after it; any other "<!" or "<?" up to the first ">". Returns its end, or
 * -1 when the buffer does not hold it all. */
static Py_ssize_t comment_end(bytes_t b, Py_ssize_t n, Py_ssize_t p) {
    if (b[p + 1] == '!' && p + 3 < n && b[p + 2] == '-' && b[p + 3] == '-') {
        Py_ssize_t q = p + 4;
        if (q < n && b[q] == '>') return q + 1;
        if (q + 1 < n && b[q] == '-' && b[q + 1] == '>') return q + 2;
        while (q + 2 < n) {
            const unsigned char *d = memchr(b + q, '-', (size_t)(n - q));
            if (!d) return -1;
            q = (Py_ssize_t)(d - b);
            if (q + 2 < n && b[q + 1] == '-') {
                if (b[q + 2] == '>') return q + 3;
                if (b[q + 2] == '!' && q + 3 < n && b[q + 3] == '>') return q + 4;
            }
            q++;
        }
        return -1;
    }
    const unsigned char *gt = memchr(b + p + 2, '>', (size_t)(n - p - 2));
    return gt ? (Py_ssize_t)(gt - b) + 1 : -1;
}

/* inert.py's _PLAIN: a byte a plainly relative URL may hold (space only inside quotes). */
static int plain(unsigned char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
    switch (c) {
    case '-': case '.': case '_': case '~': case '?': case '#': case '=': case '+': case ';': case '@':
    case '!': case '$': case '*': case '(': case ')': case '%': case '[': case ']': case ',': case '/':
        return 1;
    default:
        return 0;
    }
}

/* inert.py's _PLAIN_VALUE at v: a quoted or unquoted value of plain bytes (space too when quoted) with no
 * "//" anywhere; an unquoted one must be followed by whitespace or ">". Returns its end, or -1. */
static Py_ssize_t plain_value(bytes_t b, Py_ssize_t n, Py_ssize_t v) {
    Py_ssize_t i = v;
    unsigned char quote = 0;
    if (i < n && (b[i] == '"' || b[i] == '\'')) quote = b[i++];
    for (; i < n; i++) {
        unsigned char c = b[i];
        if (quote ? c == quote : (is_ws(c) || c == '>')) break;
        if (!(plain(c) || (quote && c == ' '))) return -1;
        if (c == '/' && i + 1 < n && b[i + 1] == '/') return -1;
    }
    if (i >= n) return -1;
    return quote ? i + 1 : i;
}

/* One inert.py _INERT_ATTR from p: a URL attribute with a plain value (or none), or any attribute that is
 * neither risky nor an event handler. Returns its end, or -1. */
static Py_ssize_t inert_attr(bytes_t b, Py_ssize_t n, Py_ssize_t p) {
    p = skip_sep(b, n, p);
    if (p >= n || b[p] == '>') return -1;
    Py_ssize_t name_end = name_rest(b, n, p + 1);
    Py_ssize_t len = name_end - p;
    if (name_end >= n) return -1;  /* cut off by the buffer: the tag cannot complete here */
    if (in_list(b, n, p, len, &URL_SET)) {
        Py_ssize_t q = skip_ws(b, n, name_end);
        if (q < n && b[q] == '=') return plain_value(b, n, skip_ws(b, n, q + 1));
        return name_end;
    }
    if ((len >= 2 && lower(b[p]) == 'o' && lower(b[p + 1]) == 'n') || in_list(b, n, p, len, &RISKY_SET))
        return -1;
    return assign(b, n, name_end);
}

/* An inert.py inert start tag from p (at "<"): one of INERT_NAMES with inert attributes only. */
static Py_ssize_t inert_tag(bytes_t b, Py_ssize_t n, Py_ssize_t p) {
    Py_ssize_t q = p + 1;
    if (q >= n || !is_alpha(b[q])) return -1;
    Py_ssize_t name = q;
    while (q < n && !(CLASS[b[q]] & C_TAG_NAME_STOP)) q++;
    if (q >= n || !in_list(b, n, name, q - name, &INERT_SET)) return -1;
    for (;;) {
        Py_ssize_t a = inert_attr(b, n, q);
        if (a < 0) break;
        q = a;
    }
    q = skip_sep(b, n, q);
    return (q < n && b[q] == '>') ? q + 1 : -1;
}

static Py_ssize_t boring_html(bytes_t b, Py_ssize_t n, Py_ssize_t p, int inert) {
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
        if (c == '!' || c == '?') {  /* a comment, or a bogus one (doctype, "<?", CDATA in HTML) */
            Py_ssize_t e = comment_end(b, n, p);
            if (e < 0) return p;
            p = e;
            continue;
        }
        Py_ssize_t e = boring_tag(b, n, p);
        if (e < 0 && inert) e = inert_tag(b, n, p);
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
    Py_ssize_t end = pos >= n ? pos : boring_html((bytes_t)view.buf, n, pos, 0);
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(end);
}

static PyObject *py_inert_html(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t pos;
    if (!PyArg_ParseTuple(args, "y*n", &view, &pos)) return NULL;
    Py_ssize_t n = view.len;
    if (pos < 0) pos = 0;
    Py_ssize_t end = pos >= n ? pos : boring_html((bytes_t)view.buf, n, pos, 1);
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(end);
}

/* script_end(buf, pos, state) -> (index, state, resume): htmlstream.script_end_py, the definition. The
 * tokens, tried in this order at each index and never overlapping: "<!--", "-->", "</script" and
 * "<script" each followed by a delimiter (script case-insensitive). States: 0 normal, 1 escaped,
 * 2 double escaped. */
static int script_word(bytes_t b, Py_ssize_t n, Py_ssize_t p) {  /* "script" + delimiter at p? */
    if (!eq_ci(b, n, p, "script", 6) || p + 6 >= n) return 0;
    unsigned char d = b[p + 6];
    return is_ws(d) || d == '/' || d == '>';
}

static PyObject *py_script_end(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t pos;
    int state;
    if (!PyArg_ParseTuple(args, "y*ni", &view, &pos, &state)) return NULL;
    bytes_t b = (bytes_t)view.buf;
    Py_ssize_t n = view.len, done = pos < 0 ? 0 : pos, i = done, found = -1;
    while (i < n) {
        unsigned char c = b[i];
        if (c != '<' && c != '-') { i++; continue; }
        if (c == '<' && i + 3 < n && b[i + 1] == '!' && b[i + 2] == '-' && b[i + 3] == '-') {
            if (state == 0) {
                /* undecided until the bytes after it are here ("<!-->", "<!--->"): read it again then */
                if (i + 4 >= n || (b[i + 4] == '-' && i + 5 >= n)) {
                    done = i;
                    break;
                }
                state = 1;
                /* "<!-->" and "<!--->" return to normal at once */
                if ((i + 4 < n && b[i + 2] == '-' && b[i + 3] == '-' && b[i + 4] == '>') ||
                    (i + 5 < n && b[i + 3] == '-' && b[i + 4] == '-' && b[i + 5] == '>'))
                    state = 0;
            }
            i += 4;
            done = i;
        } else if (c == '-' && i + 2 < n && b[i + 1] == '-' && b[i + 2] == '>') {
            state = 0;
            i += 3;
            done = i;
        } else if (c == '<' && i + 1 < n && b[i + 1] == '/' && script_word(b, n, i + 2)) {
            if (state == 2) {
                state = 1;
                i += 9;
                done = i;
            } else {
                found = i;
                break;
            }
        } else if (c == '<' && script_word(b, n, i + 1)) {
            if (state == 1) state = 2;
            i += 8;
            done = i;
        } else {
            i++;
        }
    }
    PyBuffer_Release(&view);
    if (found >= 0) return Py_BuildValue("nin", found, state, found);
    Py_ssize_t tail = n - 9;
    return Py_BuildValue("nin", (Py_ssize_t)-1, state, done > tail ? done : tail);
}

/* word_positions(text: str, words: tuple[str, ...]) -> dict[str, list[int]]: for every word found,
 * each index of text where it starts, overlapping ones included. A character above U+007F never
 * equals a word's character (the words are ASCII); only A-Z are lowered. */
static PyObject *py_word_positions(PyObject *self, PyObject *args) {
    PyObject *text, *words;
    if (!PyArg_ParseTuple(args, "UO!", &text, &PyTuple_Type, &words)) return NULL;
    Py_ssize_t nw = PyTuple_GET_SIZE(words);
    /* words by their first character: first[c] .. first[c+1] index into order[] */
    Py_ssize_t count[129] = {0}, start[129], *order = NULL;
    const char **wd = NULL;
    Py_ssize_t *wl = NULL;
    PyObject *result = NULL;
    if (nw == 0) return PyDict_New();
    order = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)nw);
    wd = PyMem_Malloc(sizeof(char *) * (size_t)nw);
    wl = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)nw);
    if (!order || !wd || !wl) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t k = 0; k < nw; k++) {
        PyObject *w = PyTuple_GET_ITEM(words, k);
        if (!PyUnicode_Check(w) || !PyUnicode_IS_ASCII(w) || PyUnicode_GET_LENGTH(w) == 0) {
            PyErr_SetString(PyExc_ValueError, "words must be non-empty ASCII strings");
            goto done;
        }
        wd[k] = (const char *)PyUnicode_1BYTE_DATA(w);
        wl[k] = PyUnicode_GET_LENGTH(w);
        count[(unsigned char)wd[k][0]]++;
    }
    start[0] = 0;
    for (int c = 0; c < 128; c++) start[c + 1] = start[c] + count[c];
    {
        Py_ssize_t fill[128];
        for (int c = 0; c < 128; c++) fill[c] = start[c];
        for (Py_ssize_t k = 0; k < nw; k++) order[fill[(unsigned char)wd[k][0]]++] = k;
    }
    result = PyDict_New();
    if (!result) goto done;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c >= 128) continue;
        c = lower((unsigned char)c);
        for (Py_ssize_t j = start[c]; j < start[c + 1]; j++) {
            Py_ssize_t k = order[j], len = wl[k], m = 1;
            if (i + len > n) continue;
            while (m < len) {
                Py_UCS4 d = PyUnicode_READ(kind, data, i + m);
                if (d >= 128 || lower((unsigned char)d) != (unsigned char)wd[k][m]) break;
                m++;
            }
            if (m < len) continue;
            PyObject *key = PyTuple_GET_ITEM(words, k);
            PyObject *list = PyDict_GetItemWithError(result, key);
            if (!list) {
                if (PyErr_Occurred()) goto fail;
                list = PyList_New(0);
                if (!list || PyDict_SetItem(result, key, list) < 0) { Py_XDECREF(list); goto fail; }
                Py_DECREF(list);  /* the dict holds it */
            }
            PyObject *at = PyLong_FromSsize_t(i);
            if (!at || PyList_Append(list, at) < 0) { Py_XDECREF(at); goto fail; }
            Py_DECREF(at);
        }
    }
    goto done;
fail:
    Py_CLEAR(result);
done:
    PyMem_Free(order);
    PyMem_Free(wd);
    PyMem_Free(wl);
    return result;
}

/* read_tag(buf, pos) -> Tag | None: htmlstream.read_tag_py, the definition (htmlstream.TAG matched at
 * pos, its groups made a Tag). The regex is deterministic (possessive quantifiers, an attribute that
 * cannot complete ends the tag's match), so one forward pass reads the same: "<", "/"?, a letter and
 * the rest of the name, then _ATTR as often as it matches (any_attr), then [\t\n\f\r /]* and ">".
 * set_tag_type(Tag, names) hands over the Tag class and the dict of lower-cased names (bytes -> str)
 * that the Python definition shares. */
static PyTypeObject *tag_type = NULL;
static PyObject *tag_names = NULL;

static PyObject *py_set_tag_type(PyObject *self, PyObject *args) {
    PyObject *type, *names;
    if (!PyArg_ParseTuple(args, "O!O!", &PyType_Type, &type, &PyDict_Type, &names)) return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)type, &PyTuple_Type) || ((PyTypeObject *)type)->tp_itemsize != PyTuple_Type.tp_itemsize) {
        PyErr_SetString(PyExc_TypeError, "set_tag_type: a tuple subclass without instance fields is needed");
        return NULL;
    }
    Py_INCREF(type);
    Py_INCREF(names);
    Py_XSETREF(tag_type, (PyTypeObject *)type);
    Py_XSETREF(tag_names, names);
    Py_RETURN_NONE;
}

/* The lower-case name of the bytes [p, q): from the shared dict, else decoded as the Python definition
 * does (ASCII, undecodable bytes replaced, then str.lower) and remembered while the dict is small. */
static PyObject *tag_name_of(bytes_t b, Py_ssize_t p, Py_ssize_t q) {
    PyObject *key = PyBytes_FromStringAndSize((const char *)b + p, q - p);
    if (key == NULL) return NULL;
    PyObject *name = PyDict_GetItemWithError(tag_names, key);
    if (name != NULL) {
        Py_INCREF(name);
        Py_DECREF(key);
        return name;
    }
    if (PyErr_Occurred()) { Py_DECREF(key); return NULL; }
    PyObject *decoded = PyUnicode_DecodeASCII((const char *)b + p, q - p, "replace");
    if (decoded == NULL) { Py_DECREF(key); return NULL; }
    name = PyObject_CallMethod(decoded, "lower", NULL);
    Py_DECREF(decoded);
    if (name != NULL && PyDict_GET_SIZE(tag_names) < 4096 && PyDict_SetItem(tag_names, key, name) < 0) {
        Py_CLEAR(name);
    }
    Py_DECREF(key);
    return name;
}

static PyObject *py_read_tag(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "read_tag(buf: bytes, pos: int)");
        return NULL;
    }
    if (tag_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "read_tag: set_tag_type was not called");
        return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred()) return NULL;
    bytes_t b = (bytes_t)PyBytes_AS_STRING(args[0]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[0]);
    if (pos < 0 || pos >= n || b[pos] != '<') Py_RETURN_NONE;
    int closing = pos + 1 < n && b[pos + 1] == '/';
    Py_ssize_t q = pos + 1 + closing;
    if (q >= n || !is_alpha(b[q])) Py_RETURN_NONE;
    Py_ssize_t name = q++;
    while (q < n && !(CLASS[b[q]] & C_TAG_NAME_STOP)) q++;
    Py_ssize_t name_end = q;
    for (;;) {
        Py_ssize_t a = any_attr(b, n, q);
        if (a < 0) break;
        q = a;
    }
    Py_ssize_t attrs_end = q;
    q = skip_sep(b, n, q);
    if (q >= n || b[q] != '>') Py_RETURN_NONE;
    int self_closing = q > attrs_end && b[q - 1] == '/';
    PyObject *items[7];
    items[0] = PyLong_FromSsize_t(pos);
    items[1] = PyLong_FromSsize_t(q + 1);
    items[2] = tag_name_of(b, name, name_end);
    items[3] = PyBool_FromLong(closing);
    items[4] = PyLong_FromSsize_t(name_end);
    items[5] = PyBytes_FromStringAndSize((const char *)b + name_end, attrs_end - name_end);
    items[6] = PyBool_FromLong(self_closing);
    PyObject *tag = NULL;
    int ok = 1;
    for (int i = 0; i < 7; i++) ok = ok && items[i] != NULL;
    if (ok) tag = tag_type->tp_alloc(tag_type, 7);
    if (tag == NULL) {
        for (int i = 0; i < 7; i++) Py_XDECREF(items[i]);
        return NULL;
    }
    for (int i = 0; i < 7; i++) PyTuple_SET_ITEM(tag, i, items[i]);
    return tag;
}

static PyMethodDef methods[] = {
    {"boring_html", py_boring_html, METH_VARARGS,
     "boring_html(buf, pos) -> int: the end of htmlstream.BORING_HTML.match(buf, pos)."},
    {"inert_html", py_inert_html, METH_VARARGS,
     "inert_html(buf, pos) -> int: the end of inert.INERT_HTML.match(buf, pos)."},
    {"script_end", py_script_end, METH_VARARGS,
     "script_end(buf, pos, state) -> (index, state, resume): htmlstream.script_end_py in C."},
    {"read_tag", (PyCFunction)(void (*)(void))py_read_tag, METH_FASTCALL,
     "read_tag(buf, pos) -> Tag | None: htmlstream.read_tag_py in C (after set_tag_type)."},
    {"set_tag_type", py_set_tag_type, METH_VARARGS,
     "set_tag_type(Tag, names): the class read_tag returns and the shared dict of lower-cased names."},
    {"word_positions", py_word_positions, METH_VARARGS,
     "word_positions(text, words) -> dict: each word found (ASCII case-insensitively) -> its start indices."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "gate._fastscan", NULL, -1, methods};

PyMODINIT_FUNC PyInit__fastscan(void) {
    classify();
    index_words(&START_SET);
    index_words(&END_SET);
    index_words(&RISKY_SET);
    index_words(&INERT_SET);
    index_words(&URL_SET);
    return PyModule_Create(&module);
}
