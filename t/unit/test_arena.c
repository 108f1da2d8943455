/*
 * Copyright (C) ngx_mitte_module authors
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>

#include "mitte_arena.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif


/* objects are aligned, apart, writable; a reset reuses the kept block */

static void
test_alloc_and_reset(void **state)
{
    int             i;
    unsigned char  *p[100], *first;
    mitte_arena_t   a;

    (void) state;

    mitte_arena_init(&a, 1 << 20);

    for (i = 0; i < 100; i++) {
        p[i] = mitte_arena_alloc(&a, (size_t) i + 1);
        assert_non_null(p[i]);
        assert_int_equal((uintptr_t) p[i] % 16, 0);
        memset(p[i], i, (size_t) i + 1);
    }

    for (i = 0; i < 100; i++) {
        assert_int_equal(p[i][i], i);
        assert_int_equal(p[i][0], i);
    }

    first = p[0];
    mitte_arena_reset(&a);

#if defined(__SANITIZE_ADDRESS__)
    /* an object read after the reset is reported (poisoned) */
    assert_true(__asan_address_is_poisoned(first));
    assert_true(__asan_address_is_poisoned(p[50] + 10));
#endif
    (void) first;

    /* the 100 objects took 5,000 bytes or more: one kept block now holds
       as much, and the same objects again need no extra block */
    for (i = 0; i < 100; i++) {
        p[i] = mitte_arena_alloc(&a, (size_t) i + 1);
        assert_non_null(p[i]);
    }

    assert_null(a.extra);
#if defined(__SANITIZE_ADDRESS__)
    assert_false(__asan_address_is_poisoned(p[99]));
#endif

    mitte_arena_free(&a);
    assert_null(a.first);
    assert_null(a.extra);
}


/* an object larger than a block gets a block of its own */

static void
test_large(void **state)
{
    unsigned char  *p, *q;
    mitte_arena_t   a;

    (void) state;

    mitte_arena_init(&a, 64 * 1024);

    q = mitte_arena_alloc(&a, 10);
    p = mitte_arena_alloc(&a, 100000);
    assert_non_null(q);
    assert_non_null(p);
    memset(p, 0xab, 100000);
    assert_int_equal(p[99999], 0xab);
    assert_non_null(a.extra);

    /* past "keep": the kept block does not grow to it */
    mitte_arena_reset(&a);
    assert_null(a.extra);
    assert_true(a.last - a.pos <= 64 * 1024);

    /* within "keep": it does */
    p = mitte_arena_alloc(&a, 20000);
    assert_non_null(p);
    mitte_arena_reset(&a);
    assert_true(a.last - a.pos >= 20000);
    p = mitte_arena_alloc(&a, 20000);
    assert_non_null(p);
    assert_null(a.extra);

    /* absurd sizes are refused */
    assert_null(mitte_arena_alloc(&a, SIZE_MAX - 8));

    mitte_arena_free(&a);
}


/* reset and free on an arena that never allocated */

static void
test_empty(void **state)
{
    mitte_arena_t  a;

    (void) state;

    mitte_arena_init(&a, 0);
    mitte_arena_reset(&a);
    mitte_arena_free(&a);
    assert_null(a.first);
    assert_non_null(mitte_arena_alloc(&a, 0));
    mitte_arena_free(&a);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_alloc_and_reset),
        cmocka_unit_test(test_large),
        cmocka_unit_test(test_empty),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
