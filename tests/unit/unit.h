/* unit.h: the smallest test runner that does the job: TEST(name) defines a
 * test, CHECK(cond) records a failure with file and line, and UNIT_MAIN runs
 * every test listed and ends with the line "N passed, N failed". */
#ifndef FERRY_UNIT_H
#define FERRY_UNIT_H

#include <stdio.h>

static int unit_failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);             \
            unit_failures++;                                                                       \
        }                                                                                          \
    } while (0)

#define TEST(name) static void name(void)

struct unit_test {
    const char *name;
    void (*fn)(void);
};

static inline int unit_run(const char *suite, const struct unit_test *tests)
{
    int passed = 0, failed = 0;
    for (const struct unit_test *t = tests; t->name; t++) {
        int before = unit_failures;
        t->fn();
        if (unit_failures == before)
            passed++;
        else
            failed++;
        printf("%s %s.%s\n", unit_failures == before ? "ok  " : "FAIL", suite, t->name);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}

#endif
