/* yaml_scalar.c: what an untagged plain scalar means, and which strings may be
 * written plain. The rules are Kubernetes' (sigs.k8s.io/yaml on go-yaml v2,
 * YAML 1.1 flavoured), with one deliberate difference: y/Y/n/N stay strings.
 *
 *   null    ""  ~  null Null NULL
 *   bool    true True TRUE  false False FALSE  yes Yes YES  no No NO
 *           on On ON  off Off OFF
 *   int     [+-] then decimal, 0x/0X hex, 0o/0O octal, 0b/0B binary or a
 *           leading-zero octal (0755); '_' ignored anywhere; must fit lua_Integer
 *   float   .inf .Inf .INF (+ or - sign), .nan .NaN .NAN, and (after the int
 *           rule fails) [+-]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][+-]?[0-9]+)?,
 *           '_' ignored (not after a leading '.'); so a decimal too big for an
 *           integer becomes a float, "08" is 8.0, while a hex/octal/binary one
 *           too big, or a value beyond double range ("1e400"), stays a string
 *   string  everything else, including timestamps and base-60 numbers
 *
 * y/n: go-yaml v2 reads y, Y, n, N as booleans; we keep them strings (YAML 1.2
 * and PyYAML agree) but still quote them when writing, so Kubernetes reads
 * back a string too.
 *
 * Pure functions of their arguments: no Lua state, no globals. */
#include "yaml_internal.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const nulls[] = {"~", "null", "Null", "NULL", NULL};
static const char *const trues[] = {"true", "True", "TRUE", "yes", "Yes",
                                    "YES",  "on",   "On",   "ON",  NULL};
static const char *const falses[] = {"false", "False", "FALSE", "no",  "No",
                                     "NO",    "off",   "Off",   "OFF", NULL};
static const char *const nans[] = {".nan", ".NaN", ".NAN", NULL};
static const char *const infs[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", NULL};
static const char *const neginfs[] = {"-.inf", "-.Inf", "-.INF", NULL};

static int in_list(const char *s, size_t len, const char *const *list)
{
    for (; *list; list++)
        if (strlen(*list) == len && memcmp(*list, s, len) == 0) return 1;
    return 0;
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* Value of digit c in base, or -1. */
static int digit_value(int c, int base)
{
    int v = -1;
    if (c >= '0' && c <= '9')
        v = c - '0';
    else if (c >= 'a' && c <= 'f')
        v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
        v = c - 'A' + 10;
    return v < base ? v : -1;
}

/* Go's strconv.ParseInt(s, 0, 64) on a NUL-terminated numeral without '_'.
 * 1 and *out on success; 0 on bad syntax or overflow. */
static int parse_int(const char *s, lua_Integer *out)
{
    int neg = 0, base = 10;
    unsigned long long v = 0, limit;
    if (*s == '+' || *s == '-') neg = *s++ == '-';
    if (s[0] == '0' && s[1] != '\0') {
        switch (s[1]) {
        case 'x':
        case 'X':
            base = 16;
            s += 2;
            break;
        case 'o':
        case 'O':
            base = 8;
            s += 2;
            break;
        case 'b':
        case 'B':
            base = 2;
            s += 2;
            break;
        default:
            base = 8;
            s += 1;
            break;
        }
    }
    if (*s == '\0') return 0;
    limit = neg ? (unsigned long long)LUA_MAXINTEGER + 1 : (unsigned long long)LUA_MAXINTEGER;
    for (; *s; s++) {
        int d = digit_value((unsigned char)*s, base);
        if (d < 0 || v > (limit - (unsigned)d) / (unsigned)base) return 0;
        v = v * (unsigned)base + (unsigned)d;
    }
    if (neg)
        *out = v == limit ? LUA_MININTEGER : -(lua_Integer)v;
    else
        *out = (lua_Integer)v;
    return 1;
}

/* Whether s (NUL-terminated, no '_') matches go-yaml's float pattern
 * [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static int is_float_syntax(const char *s)
{
    if (*s == '+' || *s == '-') s++;
    if (*s == '.') {
        if (!is_digit(*++s)) return 0;
        while (is_digit(*s)) s++;
    } else {
        if (!is_digit(*s)) return 0;
        while (is_digit(*s)) s++;
        if (*s == '.')
            for (s++; is_digit(*s);) s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') s++;
        if (!is_digit(*s)) return 0;
        while (is_digit(*s)) s++;
    }
    return *s == '\0';
}

/* strtod on a numeral already checked by is_float_syntax; 0 when it overflows
 * (go-yaml keeps such a value a string). */
static int parse_float(const char *s, double *out)
{
    char *end;
    *out = strtod(s, &end);
    return *end == '\0' && !isinf(*out);
}

/* Resolves a scalar starting with a digit, a sign or '.'. */
static enum yaml_kind resolve_number(const char *s, size_t len, struct yaml_scalar *out)
{
    char small[128], *buf = small;
    size_t n = 0;
    if (len >= sizeof small && !(buf = malloc(len + 1))) return out->kind = YAML_KIND_STR;
    if (s[0] == '.') {
        /* go-yaml hands these to ParseFloat unchanged: no '_', no int forms. */
        memcpy(buf, s, len);
        n = len;
    } else {
        for (size_t i = 0; i < len; i++)
            if (s[i] != '_') buf[n++] = s[i];
    }
    buf[n] = '\0';
    if (memchr(buf, '\0', n))
        out->kind = YAML_KIND_STR;
    else if (s[0] != '.' && parse_int(buf, &out->integer))
        out->kind = YAML_KIND_INT;
    else if (is_float_syntax(buf) && parse_float(buf, &out->number))
        out->kind = YAML_KIND_FLOAT;
    else
        out->kind = YAML_KIND_STR;
    if (buf != small) free(buf);
    return out->kind;
}

enum yaml_kind yaml_scalar_resolve(const char *s, size_t len, struct yaml_scalar *out)
{
    out->kind = YAML_KIND_STR;
    if (len == 0 || in_list(s, len, nulls)) return out->kind = YAML_KIND_NULL;
    if (in_list(s, len, trues) || in_list(s, len, falses)) {
        out->boolean = in_list(s, len, trues);
        return out->kind = YAML_KIND_BOOL;
    }
    if (in_list(s, len, nans) || in_list(s, len, infs) || in_list(s, len, neginfs)) {
        out->number = in_list(s, len, nans) ? NAN : in_list(s, len, infs) ? HUGE_VAL : -HUGE_VAL;
        return out->kind = YAML_KIND_FLOAT;
    }
    if (is_digit((unsigned char)s[0]) || s[0] == '+' || s[0] == '-' || s[0] == '.')
        return resolve_number(s, len, out);
    return out->kind;
}

/* Whether s is numeral syntax that resolve rejected only for its range
 * ("1e400", a 20-digit hex number): YAML 1.2 and other readers take it as a
 * number, so the dumper quotes it. */
static int looks_numeric(const char *s, size_t len)
{
    size_t i = 0, digits = 0;
    if (i < len && (s[i] == '+' || s[i] == '-')) i++;
    if (i + 1 < len && s[i] == '0' && strchr("xXoObB", s[i + 1])) {
        for (i += 2; i < len; i++) {
            if (digit_value((unsigned char)s[i], 16) >= 0)
                digits++;
            else if (s[i] != '_')
                return 0;
        }
        return digits > 0;
    }
    for (; i < len; i++) {
        if (is_digit(s[i]))
            digits++;
        else if (!strchr("_.eE+-", s[i]))
            return 0;
    }
    return digits > 0;
}

/* YYYY-…: every go-yaml timestamp form starts so; go-yaml quotes them. */
static int looks_like_timestamp(const char *s, size_t len)
{
    return len >= 5 && is_digit(s[0]) && is_digit(s[1]) && is_digit(s[2]) && is_digit(s[3]) &&
           s[4] == '-';
}

/* YAML 1.1 base 60 (1:20, -3:25:45.5): a superset of go-yaml's isBase60Float. */
static int looks_like_base60(const char *s, size_t len)
{
    size_t i = 0;
    int colon = 0;
    if (i < len && (s[i] == '+' || s[i] == '-')) i++;
    if (i >= len || !is_digit(s[i])) return 0;
    for (; i < len; i++) {
        if (s[i] == ':')
            colon = 1;
        else if (!is_digit(s[i]) && s[i] != '_' && s[i] != '.')
            return 0;
    }
    return colon;
}

int yaml_scalar_is_plain(const char *s, size_t len)
{
    struct yaml_scalar v;
    const unsigned char *u = (const unsigned char *)s;
    if (len == 0 || yaml_scalar_resolve(s, len, &v) != YAML_KIND_STR) return 0;
    /* YAML 1.1 booleans go-yaml v2 reads (y, n), its merge key, PyYAML's '='. */
    if (len == 1 && (s[0] == 'y' || s[0] == 'Y' || s[0] == 'n' || s[0] == 'N' || s[0] == '='))
        return 0;
    if (len == 2 && s[0] == '<' && s[1] == '<') return 0;
    if (looks_like_timestamp(s, len) || looks_like_base60(s, len)) return 0;
    if ((is_digit(s[0]) || s[0] == '.' || s[0] == '+' || s[0] == '-') && looks_numeric(s, len))
        return 0;
    /* Indicators that cannot start a plain scalar; '-' may, before a non-space. */
    if (strchr("?:,[]{}#&*!|>'\"%@`", s[0])) return 0;
    if (s[0] == '-' && (len == 1 || s[1] == ' ')) return 0;
    if (len >= 3 && (memcmp(s, "---", 3) == 0 || memcmp(s, "...", 3) == 0)) return 0;
    if (s[0] == ' ' || s[len - 1] == ' ' || s[len - 1] == ':') return 0;
    for (size_t i = 0; i < len; i++) {
        if (u[i] < 0x20 || u[i] == 0x7f) return 0;
        if (u[i] == ':' && i + 1 < len && s[i + 1] == ' ') return 0;
        if (u[i] == '#' && i > 0 && s[i - 1] == ' ') return 0;
        /* NEL, LS, PS are line breaks to a YAML reader. */
        if (u[i] == 0xc2 && i + 1 < len && u[i + 1] == 0x85) return 0;
        if (u[i] == 0xe2 && i + 2 < len && u[i + 1] == 0x80 && (u[i + 2] & 0xfe) == 0xa8) return 0;
    }
    return 1;
}

int yaml_scalar_is_utf8(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = u[i], width, cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0)
            width = 2, cp = c & 0x1f;
        else if ((c & 0xf0) == 0xe0)
            width = 3, cp = c & 0x0f;
        else if ((c & 0xf8) == 0xf0)
            width = 4, cp = c & 0x07;
        else
            return 0;
        if (len - i < width) return 0;
        for (unsigned k = 1; k < width; k++) {
            if ((u[i + k] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (u[i + k] & 0x3f);
        }
        if ((width == 2 && cp < 0x80) || (width == 3 && cp < 0x800) ||
            (width == 4 && cp < 0x10000) || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return 0;
        i += width;
    }
    return 1;
}
