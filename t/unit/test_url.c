/*
 * Copyright (C) ngx_mitte_module authors
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mitte_url.h"


/* parses from a malloc()ed copy without a NUL, so ASan sees overreads */

static int
parse(const char *s, size_t len, mitte_url_t *u)
{
    int    rc;
    char  *copy;

    copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, s, len);

    rc = mitte_url_parse(copy, len, u);

    free(copy);

    return rc;
}


static void
good(const char *s, unsigned https, const char *host, unsigned port,
    const char *path)
{
    size_t       len;
    mitte_url_t  u;

    len = strlen(s);

    if (parse(s, len, &u) != 0) {
        fail_msg("%s refused: %s", s, u.error);
    }

    assert_int_equal(u.https, https);
    assert_int_equal(u.port, port);
    assert_int_equal(u.host_len, strlen(host));
    assert_memory_equal(s + u.host, host, u.host_len);
    assert_true(u.path <= len);
    assert_string_equal(s + u.path, path);
    assert_null(u.error);
}


static void
bad(const char *s, size_t len)
{
    mitte_url_t  u;

    if (parse(s, len, &u) != -1) {
        fail_msg("\"%.*s\" accepted", (int) len, s);
    }

    assert_non_null(u.error);
    assert_true(strlen(u.error) > 0);
}


#define BAD(s)  bad(s, sizeof(s) - 1)


static void
test_url_good(void **state)
{
    mitte_url_t  u;

    (void) state;

    good("https://example.com/hook", 1, "example.com", 443, "/hook");
    good("http://example.com/hook", 0, "example.com", 80, "/hook");
    good("HTTPS://Example.COM", 1, "Example.COM", 443, "");
    good("HtTp://example.com", 0, "example.com", 80, "");
    good("http://example.com:8080/x?y=1#z", 0, "example.com", 8080,
         "/x?y=1#z");
    good("http://example.com?x=1", 0, "example.com", 80, "?x=1");
    good("http://example.com#frag", 0, "example.com", 80, "#frag");
    good("http://example.com:1", 0, "example.com", 1, "");
    good("http://example.com:65535/", 0, "example.com", 65535, "/");
    good("http://example.com:00080/", 0, "example.com", 80, "/");
    good("https://hooks.slack.com/services/T000/B000/XXXX", 1,
         "hooks.slack.com", 443, "/services/T000/B000/XXXX");
    good("https://discord.com/api/webhooks/1/abc?wait=true", 1,
         "discord.com", 443, "/api/webhooks/1/abc?wait=true");
    good("http://a_b-c~d.example./p", 0, "a_b-c~d.example.", 80, "/p");
    good("http://localhost:9000/relay", 0, "localhost", 9000, "/relay");
    good("http://127.0.0.1/", 0, "127.0.0.1", 80, "/");
    good("http://127.1:81/", 0, "127.1", 81, "/");
    good("http://0x7f000001/", 0, "0x7f000001", 80, "/");
    good("https://[::1]:8443/x", 1, "::1", 8443, "/x");
    good("https://[2606:4700::1]", 1, "2606:4700::1", 443, "");
    good("http://[::ffff:127.0.0.1]/", 0, "::ffff:127.0.0.1", 80, "/");
    good("http://[fe80::1%25eth0]:80/", 0, "fe80::1%25eth0", 80, "/");
    good("http://example.com/a@b", 0, "example.com", 80, "/a@b");
    good("http://example.com/?q=a@b:c", 0, "example.com", 80,
         "/?q=a@b:c");
    good("http://example.com/%20\"{}|^`", 0, "example.com", 80,
         "/%20\"{}|^`");

    assert_int_equal(parse("https://[::1]:8443/x", 20, &u), 0);
    assert_int_equal(u.ipv6, 1);
    assert_int_equal(u.has_port, 1);
    assert_int_equal(u.host, 9);
    assert_int_equal(u.path, 18);

    assert_int_equal(parse("https://example.com", 19, &u), 0);
    assert_int_equal(u.ipv6, 0);
    assert_int_equal(u.has_port, 0);
    assert_int_equal(u.path, 19);
}


static void
test_url_length(void **state)
{
    char         s[MITTE_URL_MAX + 2];
    mitte_url_t  u;

    (void) state;

    memcpy(s, "https://example.com/", 20);
    memset(s + 20, 'a', sizeof(s) - 20);

    assert_int_equal(parse(s, MITTE_URL_MAX, &u), 0);
    assert_int_equal(u.path, 19);

    assert_int_equal(parse(s, MITTE_URL_MAX + 1, &u), -1);
    assert_non_null(strstr(u.error, "2048"));

    /* a long host is fine, within the whole */
    memcpy(s, "http://", 7);
    memset(s + 7, 'h', MITTE_URL_MAX - 7);
    assert_int_equal(parse(s, MITTE_URL_MAX, &u), 0);
    assert_int_equal(u.host_len, MITTE_URL_MAX - 7);
}


static void
test_url_bad(void **state)
{
    mitte_url_t  u;

    (void) state;

    /* not absolute http(s) */
    BAD("");
    BAD("example.com");
    BAD("example.com/hook");
    BAD("//example.com/hook");
    BAD("/hook");
    BAD("ftp://example.com/");
    BAD("file:///etc/passwd");
    BAD("gopher://127.0.0.1:6379/");
    BAD("httpx://example.com/");
    BAD("http:/example.com/");
    BAD("http:example.com");
    BAD("http//example.com");
    BAD("https:\\\\example.com");
    BAD("http:\\/example.com");
    BAD("https");

    /* no host */
    BAD("http://");
    BAD("https://");
    BAD("http:///path");
    BAD("http://?x");
    BAD("http://#x");
    BAD("http://:80/");
    BAD("http://[]/");

    /* user-info */
    BAD("http://user@example.com/");
    BAD("http://user:pw@example.com/");
    BAD("http://@example.com/");
    BAD("http://example.com@127.0.0.1/");
    BAD("http://example.com\\@127.0.0.1/");
    BAD("http://example.com:80@evil/");
    BAD("http://[::1]@evil/");

    /* ports */
    BAD("http://example.com:/");
    BAD("http://example.com:0/");
    BAD("http://example.com:00/");
    BAD("http://example.com:65536/");
    BAD("http://example.com:99999999999999999999/");
    BAD("http://example.com:8a/");
    BAD("http://example.com:-1/");
    BAD("http://example.com:+80/");
    BAD("http://example.com:80:80/");
    BAD("http://[::1]:/");
    BAD("http://[::1]:0/");
    BAD("http://[::1]x/");
    BAD("http://[::1]]/");

    /* spaces, controls, non-ASCII */
    BAD("http://exa mple.com/");
    BAD("http://example.com/pa th");
    BAD(" http://example.com/");
    BAD("http://example.com/ ");
    BAD("http://example.com/\t");
    BAD("http://example.com/\r\nX-Injected: 1");
    BAD("http://example.com/\x7f");
    BAD("http://example.com/\x01");
    BAD("http://example.com/\0");
    BAD("http://caf\xc3\xa9.example/");
    BAD("http://example.com/caf\xc3\xa9");
    BAD("http://127\xe3\x80\x82" "0.0.1/");

    /* host names */
    BAD("http://%31%32%37.0.0.1/");
    BAD("http://exa%6dple.com/");
    BAD("http://.example.com/");
    BAD("http://exa..mple.com/");
    BAD("http://example.com../");
    BAD("http://./");
    BAD("http://ex\"ample.com/");
    BAD("http://ex<ample.com/");
    BAD("http://ex\\ample.com/");
    BAD("http://ex{ample.com/");
    BAD("http://ex!ample.com/");
    BAD("http://ex,ample.com/");
    BAD("http://example.com;x/");

    /* numbers that are no address */
    BAD("http://1.2.3.4.5/");
    BAD("http://256.0.0.1/");
    BAD("http://4294967296/");
    BAD("http://08.0.0.1/");
    BAD("http://example.123/");

    /* brackets */
    BAD("http://[::1/");
    BAD("http://[::1");
    BAD("http://::1/");
    BAD("http://[1.2.3.4]/");
    BAD("http://[example.com]/");
    BAD("http://[v1.fe80::1]/");
    BAD("http://[::g]/");
    BAD("http://[fe80::1%]/");
    BAD("http://[fe80::1%25]/");
    BAD("http://[::1]example/");
    BAD("http://ex[::1]/");

    assert_int_equal(mitte_url_parse(NULL, 0, &u), -1);
    assert_non_null(u.error);

    assert_int_equal(parse("http://u@h/", 11, &u), -1);
    assert_string_equal(u.error, "it holds user-info");
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_url_good),
        cmocka_unit_test(test_url_length),
        cmocka_unit_test(test_url_bad),
    };

    return cmocka_run_group_tests_name("url", tests, NULL, NULL);
}
