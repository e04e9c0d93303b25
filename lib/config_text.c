/*
 * lib/config_text.c - where in a JSON configuration's text: positions
 * jansson does not keep.
 *
 * jansson parses and holds the document but does not remember where a
 * value was written, so when something is wrong this scanner walks the
 * original text again to turn a JSON path into line:column, and, for a
 * document jansson refused, works out the path of what it was reading.
 * Values under secret-looking keys are never shown.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_internal.h"

/* Values of keys named like this are never shown in a message. */
int is_secret_name(const char *key)
{
    static const char *const words[] = {"password", "secret"};
    size_t i, j, n = strlen(key);

    for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        size_t w = strlen(words[i]);
        for (j = 0; j + w <= n; j++)
            if (strncasecmp(key + j, words[i], w) == 0)
                return 1;
    }
    return ksafe__is_secret_key(key);
}

/* ---- small text helpers ------------------------------------------------ */

/* Appends at most n bytes of s; the buffer always stays NUL-terminated. */
void buf_add(char *buf, size_t size, size_t *len, const char *s,
             size_t n)
{
    if (*len + 1 >= size)
        return;
    if (n > size - 1 - *len)
        n = size - 1 - *len;
    memcpy(buf + *len, s, n);
    *len += n;
    buf[*len] = '\0';
}

/* A string for a message: quoted, escaped, shortened when long. */
void add_quoted(char *buf, size_t size, size_t *len, const char *s,
                size_t max)
{
    size_t i;

    buf_add(buf, size, len, "\"", 1);
    for (i = 0; s[i] && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            buf_add(buf, size, len, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            buf_add(buf, size, len, esc, 6);
        } else {
            buf_add(buf, size, len, s + i, 1);
        }
    }
    if (s[i])
        buf_add(buf, size, len, "...", 3);
    buf_add(buf, size, len, "\"", 1);
}

static int is_identifier(const char *s)
{
    size_t i;

    if (!*s || (*s >= '0' && *s <= '9'))
        return 0;
    for (i = 0; s[i]; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

/* One path step: .name for plain names, ["any.thing"] otherwise. */
void add_path_key(char *buf, size_t size, size_t *len, const char *key)
{
    if (is_identifier(key) && strlen(key) <= 64) {
        buf_add(buf, size, len, ".", 1);
        buf_add(buf, size, len, key, strlen(key));
        return;
    }
    buf_add(buf, size, len, "[", 1);
    add_quoted(buf, size, len, key, 64);
    buf_add(buf, size, len, "]", 1);
}

void line_col(const char *s, size_t len, size_t off, int *line,
              int *col)
{
    size_t i;

    *line = 1;
    *col = 1;
    for (i = 0; i < off && i < len; i++) {
        if (s[i] == '\n') {
            ++*line;
            *col = 1;
        } else if (((unsigned char)s[i] & 0xc0) != 0x80) {
            /* columns count characters, as jansson's do */
            ++*col;
        }
    }
}

/* ---- the scanner: positions jansson does not keep ---------------------- */

typedef struct scanner {
    const char *s;
    size_t len, pos;
} scanner;

static void sc_ws(scanner *sc)
{
    while (sc->pos < sc->len &&
           (sc->s[sc->pos] == ' ' || sc->s[sc->pos] == '\t' ||
            sc->s[sc->pos] == '\n' || sc->s[sc->pos] == '\r'))
        sc->pos++;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    int i;

    for (i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t utf8_put(char *d, unsigned cp)
{
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xc0 | (cp >> 6));
        d[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xe0 | (cp >> 12));
        d[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        d[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    d[0] = (char)(0xf0 | (cp >> 18));
    d[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    d[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/*
 * Reads the string at pos (which must be at its opening quote). When `out`
 * is given, the decoded text is returned there (malloc'd; a decoded string is
 * never longer than its escaped form). -1 on anything malformed.
 */
static int sc_string(scanner *sc, char **out)
{
    const char *s = sc->s;
    size_t i = sc->pos + 1, n = 0;
    char *d = NULL;

    if (sc->pos >= sc->len || s[sc->pos] != '"')
        return -1;
    if (out) {
        /* measure first: the decoded text fits in the escaped length */
        scanner probe = *sc;
        if (sc_string(&probe, NULL) || !(d = malloc(probe.pos - sc->pos)))
            return -1;
    }
    for (;;) {
        unsigned char c;

        if (i >= sc->len)
            goto bad;
        c = (unsigned char)s[i];
        if (c == '"')
            break;
        if (c < 0x20)
            goto bad;
        if (c != '\\') {
            if (d)
                d[n++] = (char)c;
            i++;
            continue;
        }
        if (i + 1 >= sc->len)
            goto bad;
        c = (unsigned char)s[i + 1];
        if (c == 'u') {
            unsigned cp, lo;

            if (i + 6 > sc->len || hex4(s + i + 2, &cp))
                goto bad;
            i += 6;
            if (cp >= 0xd800 && cp <= 0xdbff && i + 6 <= sc->len &&
                s[i] == '\\' && s[i + 1] == 'u' && !hex4(s + i + 2, &lo) &&
                lo >= 0xdc00 && lo <= 0xdfff) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                i += 6;
            } else if (cp >= 0xd800 && cp <= 0xdfff) {
                cp = 0xfffd; /* jansson refuses these before we get here */
            }
            if (d)
                n += utf8_put(d + n, cp);
            continue;
        }
        {
            const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
            const char *hit = c ? strchr(from, c) : NULL;
            if (!hit)
                goto bad;
            if (d)
                d[n++] = to[hit - from];
            i += 2;
        }
    }
    sc->pos = i + 1;
    if (out) {
        d[n] = '\0';
        *out = d;
    }
    return 0;
bad:
    free(d);
    return -1;
}

static int is_literal_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
}

/* Skips a number, true, false or null; -1 if there is none. */
static int sc_literal(scanner *sc)
{
    size_t start = sc->pos;

    while (sc->pos < sc->len && is_literal_char(sc->s[sc->pos]))
        sc->pos++;
    return sc->pos > start ? 0 : -1;
}

/* Skips one complete value; iterative, so nesting depth costs no stack. */
static int sc_skip_value(scanner *sc)
{
    size_t depth = 0;

    do {
        char c;

        sc_ws(sc);
        if (sc->pos >= sc->len)
            return -1;
        c = sc->s[sc->pos];
        if (c == '"') {
            if (sc_string(sc, NULL))
                return -1;
        } else if (c == '{' || c == '[') {
            depth++;
            sc->pos++;
        } else if (depth && (c == '}' || c == ']')) {
            depth--;
            sc->pos++;
        } else if (depth && (c == ',' || c == ':')) {
            sc->pos++;
        } else if (sc_literal(sc)) {
            return -1;
        }
    } while (depth);
    return 0;
}

/*
 * Finds the member at keys[0..n-1] of a document jansson accepted: where its
 * key and its value start. For n == 0 (the document itself) both are the
 * first token.
 */
int sc_find(const char *s, size_t len, const char *const *keys,
            size_t n, size_t *key_off, size_t *value_off)
{
    scanner sc = {s, len, 0};
    size_t d;

    sc_ws(&sc);
    *key_off = *value_off = sc.pos;
    for (d = 0; d < n; d++) {
        if (sc.pos >= len || s[sc.pos] != '{')
            return -1;
        sc.pos++;
        for (;;) {
            size_t kstart;
            char *key;
            int match;

            sc_ws(&sc);
            kstart = sc.pos;
            if (sc_string(&sc, &key))
                return -1; /* '}' included: not found */
            match = strcmp(key, keys[d]) == 0;
            free(key);
            sc_ws(&sc);
            if (sc.pos >= len || s[sc.pos] != ':')
                return -1;
            sc.pos++;
            sc_ws(&sc);
            if (match) {
                *key_off = kstart;
                *value_off = sc.pos;
                break;
            }
            if (sc_skip_value(&sc))
                return -1;
            sc_ws(&sc);
            if (sc.pos >= len || s[sc.pos] != ',')
                return -1;
            sc.pos++;
        }
    }
    return 0;
}

/*
 * For a document jansson refused: the path of what was being read when the
 * scan reached `stop` (jansson's error position) or met something it could
 * not read. Works on the broken text as far as it goes.
 */
typedef struct tracer {
    scanner sc;
    size_t stop;
    char path[160];
    size_t plen;
    int done;
    int secret;     /* the frozen path passes through a secret's key */
    size_t key_off; /* where the innermost key read so far starts */
} tracer;

#define TRACE_MAX_DEPTH 64

static void tr_freeze(tracer *t, int secret)
{
    t->done = 1;
    t->secret = secret;
}

static int tr_stopped(tracer *t)
{
    return t->sc.pos >= t->stop || t->sc.pos >= t->sc.len;
}

static void tr_value(tracer *t, int depth, int secret)
{
    scanner *sc = &t->sc;
    char close;
    size_t index = 0;

    sc_ws(sc);
    if (tr_stopped(t)) {
        tr_freeze(t, secret);
        return;
    }
    if (sc->s[sc->pos] == '"') {
        if (sc_string(sc, NULL))
            tr_freeze(t, secret);
        return;
    }
    if (sc->s[sc->pos] != '{' && sc->s[sc->pos] != '[') {
        if (sc_literal(sc))
            tr_freeze(t, secret);
        return;
    }
    if (depth >= TRACE_MAX_DEPTH) {
        tr_freeze(t, 1); /* unknown territory: show nothing of it */
        return;
    }
    close = sc->s[sc->pos] == '{' ? '}' : ']';
    sc->pos++;
    for (;;) {
        size_t saved = t->plen;
        int msecret = secret;

        sc_ws(sc);
        if (tr_stopped(t)) {
            tr_freeze(t, secret);
            return;
        }
        if (sc->s[sc->pos] == close && index == 0) {
            sc->pos++;
            return;
        }
        if (close == '}') {
            char *key;
            size_t kstart = sc->pos;

            if (sc_string(sc, &key)) {
                tr_freeze(t, secret);
                return;
            }
            t->key_off = kstart;
            add_path_key(t->path, sizeof(t->path), &t->plen, key);
            msecret |= is_secret_name(key);
            free(key);
            sc_ws(sc);
            if (tr_stopped(t) || sc->s[sc->pos] != ':') {
                tr_freeze(t, msecret);
                return;
            }
            sc->pos++;
        } else {
            char step[32];
            snprintf(step, sizeof(step), "[%zu]", index);
            buf_add(t->path, sizeof(t->path), &t->plen, step, strlen(step));
        }
        index++;
        tr_value(t, depth + 1, msecret);
        if (t->done)
            return;
        if (tr_stopped(t)) { /* the error is at the end of this value */
            tr_freeze(t, msecret);
            return;
        }
        t->plen = saved;
        t->path[saved] = '\0';
        sc_ws(sc);
        if (tr_stopped(t)) {
            tr_freeze(t, secret);
            return;
        }
        if (sc->s[sc->pos] == close) {
            sc->pos++;
            return;
        }
        if (sc->s[sc->pos] != ',') {
            tr_freeze(t, secret);
            return;
        }
        sc->pos++;
    }
}

int report(ksafe_error *err, const char *origin, const char *path,
           const char *detail, int line, int col)
{
    char head[KSAFE_ERROR_MESSAGE_SIZE], tail[64];
    size_t hlen = 0, room;

    if (!err)
        return KSAFE_EJSON;
    if (origin) {
        buf_add(head, sizeof(head), &hlen, origin, strlen(origin));
        buf_add(head, sizeof(head), &hlen, ": ", 2);
    }
    buf_add(head, sizeof(head), &hlen, path, strlen(path));
    buf_add(head, sizeof(head), &hlen, ": ", 2);
    buf_add(head, sizeof(head), &hlen, detail, strlen(detail));
    if (line > 0)
        snprintf(tail, sizeof(tail), " (line %d, column %d)", line, col);
    else
        snprintf(tail, sizeof(tail), " (position unknown)");
    room = sizeof(head) - 1 - strlen(tail);
    if (hlen > room) {
        memcpy(head + room - 3, "...", 4);
        hlen = room;
    }
    return ksafe__error_set(err, KSAFE_EJSON, 0, 0, "%s%s", head, tail);
}

/* jansson's message, located by jansson, with the path we can work out. */
int syntax_error(const char *text, size_t len, const char *origin,
                 const json_error_t *je, ksafe_error *err)
{
    tracer t;
    char detail[KSAFE_ERROR_MESSAGE_SIZE];
    int line = je->line, col = je->column;
    size_t i;

    memset(&t, 0, sizeof(t));
    t.sc.s = text;
    t.sc.len = len;
    t.stop = je->position > 0 ? (size_t)je->position : 0;
    t.path[0] = '$';
    t.plen = 1;
    tr_value(&t, 0, 0);
    if (t.plen >= sizeof(t.path) - 1) /* cut short: say so */
        memcpy(t.path + sizeof(t.path) - 4, "...", 4);
    if (json_error_code(je) == json_error_duplicate_key) {
        /* point at the second key itself, not past it */
        line_col(text, len, t.key_off, &line, &col);
        return report(err, origin, t.path, "duplicate key", line, col);
    }
    snprintf(detail, sizeof(detail), "%s", je->text);
    for (i = 0; detail[i]; i++)
        if ((unsigned char)detail[i] < 0x20)
            detail[i] = '?';
    if (t.secret) {
        /* jansson quotes the text around the error: it may be a secret */
        char *near = strstr(detail, " near ");
        if (near)
            snprintf(near, sizeof(detail) - (size_t)(near - detail),
                     " (value not shown)");
    }
    if (line < 1)
        line = 1;
    if (col < 1)
        col = 1;
    return report(err, origin, t.path, detail, line, col);
}

