/* Scenario lexing: tokens, numbers, byte specifications and errno names. */
#include "scenario/scn.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int scn_tokenize(char *line, char **tok, char *why, size_t why_len)
{
    int n = 0;
    char *p = line;

    for (;;) {
        bool quoted = false;

        while (*p && isspace((unsigned char)*p))
            p++;
        if (!*p || *p == '#')
            break;
        if (n == SCN_MAX_TOKENS) {
            snprintf(why, why_len, "more than %d words on one line", SCN_MAX_TOKENS);
            return -EINVAL;
        }
        tok[n++] = p;
        /* Quotes stay in the token: byte specifications parse them, so
         * "a b"+zero:3 is one token. */
        for (; *p && (quoted || !isspace((unsigned char)*p)); p++) {
            if (*p == '\\' && quoted && p[1])
                p++;
            else if (*p == '"')
                quoted = !quoted;
        }
        if (quoted) {
            snprintf(why, why_len, "unterminated string");
            return -EINVAL;
        }
        if (*p)
            *p++ = '\0';
    }
    return n;
}

int scn_parse_num(const char *tok, int64_t *out)
{
    static const struct {
        char suffix;
        int shift;
    } units[] = {{'K', 10}, {'M', 20}, {'G', 30}};
    char *end;
    long long v;

    errno = 0;
    v = strtoll(tok, &end, 0);
    if (errno || end == tok || v < 0)
        return -EINVAL;
    for (size_t i = 0; *end && i < sizeof(units) / sizeof(units[0]); i++) {
        if (*end == units[i].suffix) {
            if (v > (INT64_MAX >> units[i].shift))
                return -ERANGE;
            v <<= units[i].shift;
            end++;
        }
    }
    if (*end)
        return -EINVAL;
    *out = v;
    return 0;
}

/* Same bytes as tests/mounted/uext4test.py pattern(): "SEED:00000000|SEED:00000001|...",
 * so every offset of a patterned file is recognisable in a hex dump. */
unsigned char scn_pattern_byte(uint64_t i, unsigned seed)
{
    char rec[32];
    int rlen = snprintf(rec, sizeof(rec), "%u:%08u|", seed, 0u);
    uint64_t r = i / (uint64_t)rlen;

    snprintf(rec, sizeof(rec), "%u:%08" PRIu64 "|", seed, r % 100000000u);
    return (unsigned char)rec[i % (uint64_t)rlen];
}

static int append(struct scn_data *d, const void *src, size_t len, int fill)
{
    unsigned char *nb = realloc(d->bytes, d->len + len + 1);

    if (!nb)
        return -ENOMEM;
    d->bytes = nb;
    if (src)
        memcpy(nb + d->len, src, len);
    else
        memset(nb + d->len, fill, len);
    d->len += len;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A "..." piece starting at *pp; advances *pp past the closing quote. */
static int parse_string(const char **pp, struct scn_data *d, char *why, size_t why_len)
{
    const char *p = *pp + 1;
    int ret = 0;

    while (*p && *p != '"' && !ret) {
        unsigned char c = (unsigned char)*p++;

        if (c == '\\') {
            int hi, lo;

            switch (*p++) {
            case 'n':
                c = '\n';
                break;
            case 't':
                c = '\t';
                break;
            case '0':
                c = 0;
                break;
            case '\\':
                c = '\\';
                break;
            case '"':
                c = '"';
                break;
            case 'x':
                hi = hexval(p[0]);
                lo = hi < 0 ? -1 : hexval(p[1]);
                if (lo < 0) {
                    snprintf(why, why_len, "\\x needs two hex digits");
                    return -EINVAL;
                }
                c = (unsigned char)(hi << 4 | lo);
                p += 2;
                break;
            default:
                snprintf(why, why_len, "unknown escape \\%c", p[-1]);
                return -EINVAL;
            }
        }
        ret = append(d, &c, 1, 0);
    }
    if (!ret && *p != '"') {
        snprintf(why, why_len, "unterminated string");
        return -EINVAL;
    }
    *pp = p + 1;
    return ret;
}

/* zero:N, pat:N[:SEED[:OFFSET]] or fill:N:BYTE up to the next '+'. */
static int parse_generator(const char **pp, struct scn_data *d, char *why, size_t why_len)
{
    char word[64], orig[64], *args[4] = {NULL, NULL, NULL, NULL};
    size_t n = strcspn(*pp, "+");
    int64_t count, extra = 1, start = 0;
    unsigned nargs = 0;
    int ret;

    if (n >= sizeof(word)) {
        snprintf(why, why_len, "bad byte specification '%.20s...'", *pp);
        return -EINVAL;
    }
    memcpy(word, *pp, n);
    word[n] = '\0';
    memcpy(orig, word, n + 1); /* strtok_r cuts word up; messages quote it whole */
    *pp += n;
    for (char *s = word, *save = NULL; nargs < 4 && (s = strtok_r(s, ":", &save)); s = NULL)
        args[nargs++] = s;
    if (nargs < 2 || scn_parse_num(args[1], &count) || count > (64 << 20)) {
        snprintf(why, why_len,
                 "bad byte specification '%s' (want \"TEXT\", zero:N, pat:N[:SEED[:OFFSET]] "
                 "or fill:N:BYTE, at most 64M)",
                 orig);
        return -EINVAL;
    }
    if (nargs >= 3 && scn_parse_num(args[2], &extra)) {
        snprintf(why, why_len, "bad number '%s' in '%s'", args[2], orig);
        return -EINVAL;
    }
    /* pat:N:SEED:OFFSET: the pattern's bytes from OFFSET on, so a read of
     * the middle of a patterned file can be stated */
    if (nargs == 4 && (strcmp(args[0], "pat") || scn_parse_num(args[3], &start))) {
        snprintf(why, why_len, "bad byte specification '%s' (only pat takes an OFFSET)", orig);
        return -EINVAL;
    }
    if (!strcmp(args[0], "zero") && nargs == 2)
        return append(d, NULL, (size_t)count, 0);
    if (!strcmp(args[0], "fill") && nargs == 3 && extra < 256)
        return append(d, NULL, (size_t)count, (int)extra);
    if (strcmp(args[0], "pat")) {
        snprintf(why, why_len, "unknown byte specification '%s'", orig);
        return -EINVAL;
    }
    ret = append(d, NULL, (size_t)count, 0);
    for (int64_t i = 0; !ret && i < count; i++)
        d->bytes[d->len - (size_t)count + (size_t)i] =
            scn_pattern_byte((uint64_t)(start + i), (unsigned)extra);
    return ret;
}

int scn_parse_data(const char *tok, struct scn_data *out, char *why, size_t why_len)
{
    const char *p = tok;
    int ret = 0;

    out->bytes = NULL;
    out->len = 0;
    ret = append(out, "", 0, 0); /* never NULL, even for "" */
    while (!ret) {
        ret = *p == '"' ? parse_string(&p, out, why, why_len)
                        : parse_generator(&p, out, why, why_len);
        if (ret || !*p)
            break;
        if (*p != '+') {
            snprintf(why, why_len, "expected '+' after a piece of '%s'", tok);
            ret = -EINVAL;
            break;
        }
        p++;
    }
    if (ret) {
        free(out->bytes);
        out->bytes = NULL;
        out->len = 0;
    }
    return ret;
}

void scn_describe(const unsigned char *b, size_t len, char *out, size_t out_len)
{
    size_t o = 0, shown = len > 40 ? 32 : len;
    size_t zeros = 0;

    /* All zeros, the common case for holes and grown tails, reads better
     * as a generator. */
    while (zeros < len && b[zeros] == 0)
        zeros++;
    if (len && zeros == len) {
        snprintf(out, out_len, "zero:%zu", len);
        return;
    }
    o += (size_t)snprintf(out + o, out_len - o, "\"");
    for (size_t i = 0; i < shown && o + 6 < out_len; i++) {
        unsigned char c = b[i];

        if (c == '"' || c == '\\')
            o += (size_t)snprintf(out + o, out_len - o, "\\%c", c);
        else if (c == '\n')
            o += (size_t)snprintf(out + o, out_len - o, "\\n");
        else if (isprint(c))
            o += (size_t)snprintf(out + o, out_len - o, "%c", c);
        else
            o += (size_t)snprintf(out + o, out_len - o, "\\x%02x", c);
    }
    if (o < out_len)
        snprintf(out + o, out_len - o, shown < len ? "\"... (%zu bytes)" : "\"", len);
}

static const struct {
    const char *name;
    int err;
} errnames[] = {
    {"EPERM", EPERM},
    {"ENOENT", ENOENT},
    {"EIO", EIO},
    {"EBADF", EBADF},
    {"ENOMEM", ENOMEM},
    {"EACCES", EACCES},
    {"EFAULT", EFAULT},
    {"EBUSY", EBUSY},
    {"EEXIST", EEXIST},
    {"EXDEV", EXDEV},
    {"ENOTDIR", ENOTDIR},
    {"EISDIR", EISDIR},
    {"EINVAL", EINVAL},
    {"EFBIG", EFBIG},
    {"ENOSPC", ENOSPC},
    {"EROFS", EROFS},
    {"EMLINK", EMLINK},
    {"ERANGE", ERANGE},
    {"ENAMETOOLONG", ENAMETOOLONG},
    {"ENOTEMPTY", ENOTEMPTY},
    {"ENODATA", ENODATA},
    {"EOPNOTSUPP", EOPNOTSUPP},
    {"E2BIG", E2BIG},
    {"EOVERFLOW", EOVERFLOW},
    {"EUCLEAN", EUCLEAN},
    {"ENXIO", ENXIO},
    {"ETIMEDOUT", ETIMEDOUT},
    {"ENOSYS", ENOSYS},
    {"ENODEV", ENODEV},
    {"ELOOP", ELOOP},
};

int scn_errno_by_name(const char *name)
{
    for (size_t i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
        if (!strcmp(errnames[i].name, name))
            return errnames[i].err;
    return 0;
}

const char *scn_errno_name(int err)
{
    static __thread char buf[24];

    if (err < 0)
        err = -err;
    if (!err)
        return "success";
    for (size_t i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
        if (errnames[i].err == err)
            return errnames[i].name;
    snprintf(buf, sizeof(buf), "errno %d", err);
    return buf;
}
