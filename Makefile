# ngx_mitte_module
#
#   make          build build/ngx_http_mitte_module.so against Debian's nginx-dev
#   make run      install what is missing, build, run the demo in the foreground
#   make test     install what is missing, build, run every test: unit,
#                 integration, the integration suite again against an nginx
#                 and a module built with ASan and UBSan (test-sanitize), and
#                 each fuzz target for 30 s (test-fuzz)
#   make deb      build/libnginx-mod-http-mitte_<version>_<arch>.deb
#   make browser  the dashboard's browser tests (part of make test)
#   make fuzz     each fuzz target for FUZZ_SECONDS (default 300) seconds
#   make test-sanitize, make test-fuzz: those parts of make test alone
#   make bench    the benchmarks

NGINX_SRC   ?= /usr/share/nginx/src
NGINX       ?= /usr/sbin/nginx
BUILD       := $(CURDIR)/build
NGX_BUILD   := $(BUILD)/nginx
MODULE      := $(BUILD)/ngx_http_mitte_module.so

# flags as Debian builds its own dynamic modules
CC_OPT      := -g -O2 -fstack-protector-strong -Wformat \
               -Werror=format-security -fPIC -Wdate-time -D_FORTIFY_SOURCE=2
LD_OPT      := -Wl,-z,relro -Wl,-z,now -fPIC

PACKAGES    := nginx nginx-dev curl libhiredis-dev libcurl4-openssl-dev \
               redis-server \
               libcjson-dev libcmocka-dev libssl-dev perl make gcc \
               clang libclang-rt-14-dev
BENCH_PACKAGES := wrk libnginx-mod-nchan libnginx-mod-http-lua valgrind
DEB_PACKAGES := debhelper dpkg-dev fakeroot lintian
# the browser tests: Debian's chromium, driven by playwright-core from npm
BROWSER_PACKAGES := chromium nodejs
BROWSER_DIR := $(CURDIR)/t/browser

SOURCES     := config $(wildcard ngx_mitte_module/*.[ch] lib/*.[ch])

# the Debian package: version from debian/changelog, built by
# dpkg-buildpackage in a copy of the tree under build/deb, so that the
# checkout stays clean and "make" keeps working beside it
DEB_NAME    := libnginx-mod-http-mitte
DEB_VERSION := $(shell sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' debian/changelog)
DEB_ARCH    := $(shell dpkg --print-architecture 2>/dev/null || echo unknown)
DEB         := $(BUILD)/$(DEB_NAME)_$(DEB_VERSION)_$(DEB_ARCH).deb
DEB_UPSTREAM := $(firstword $(subst -, ,$(DEB_VERSION)))
DEB_TREE    := $(BUILD)/deb/$(DEB_NAME)-$(DEB_UPSTREAM)
DEB_FILES   := config LICENSE README.md debian docs examples lib \
               ngx_mitte_module
DEB_SOURCES := $(SOURCES) LICENSE README.md $(wildcard debian/* \
               debian/source/* docs/*.md examples/* examples/*/*)

.PHONY: all deps bench-deps deb-deps deb browser-deps run test unit \
        integration browser bench clean asan test-sanitize fuzz test-fuzz

# the sanitized build: Debian's nginx source (the upstream tarball of the
# package), Debian's configure flags, ASan + UBSan and nginx's pool debugging
# (NGX_DEBUG_PALLOC: each pool allocation is a malloc() of its own, so that
# ASan sees an overflow of a pool allocation), with the module, in build/asan
NGINX_VERSION := 1.22.1
ASAN_DIR    := $(BUILD)/asan
ASAN_TARBALL := $(BUILD)/nginx_$(NGINX_VERSION).orig.tar.gz
ASAN_SRC    := $(ASAN_DIR)/nginx-$(NGINX_VERSION)
ASAN_NGINX  := $(ASAN_SRC)/objs/nginx
ASAN_MODULE := $(ASAN_SRC)/objs/ngx_http_mitte_module.so
ASAN_CC_OPT := -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
               -DNGX_DEBUG_PALLOC=1 -Wformat -Werror=format-security -fPIC
ASAN_LD_OPT := -fsanitize=address,undefined -Wl,-z,relro -Wl,-z,now -fPIC
JOBS        ?= $(shell nproc 2>/dev/null || echo 2)
PROVE_JOBS  ?= 2

# any report stops the process (nginx's master then logs an [alert]) and is
# written to stderr, which nginx sends to its error log: the harness fails a
# test on either. No leak detection: nginx does not free its pools and
# cycle at exit, by design, so every exit would be a report. No ODR check:
# nginx's dynamic modules define ngx_modules and ngx_module_names as the
# binary does (dlsym() finds them), which ASan takes for a violation.
# .ci/ubsan.supp names the two checks nginx's own code does not pass.
ASAN_OPTS   := halt_on_error=1:abort_on_error=1:detect_leaks=0:$\
               detect_odr_violation=0:disable_coredump=1
UBSAN_OPTS  := halt_on_error=1:abort_on_error=1:print_stacktrace=1:$\
               disable_coredump=1:suppressions=$(CURDIR)/.ci/ubsan.supp
SAN_ENV     := ASAN_OPTIONS=$(ASAN_OPTS) UBSAN_OPTIONS=$(UBSAN_OPTS)

# libFuzzer targets (t/fuzz): FUZZ_SECONDS each in make fuzz, 30 in make test
FUZZ_SECONDS ?= 300
FUZZ_CI_SECONDS ?= 30


all: $(MODULE)

deps:
	@PKGS="$(PACKAGES)" sh $(CURDIR)/.ci/deps

bench-deps:
	@PKGS="$(PACKAGES) $(BENCH_PACKAGES)" sh $(CURDIR)/.ci/deps

deb-deps:
	@PKGS="$(PACKAGES) $(DEB_PACKAGES)" sh $(CURDIR)/.ci/deps

# npm comes with Debian's nodejs package as its own package, and inside
# the nodejs of other sources
browser-deps: $(BROWSER_DIR)/node_modules/.package-lock.json

$(BROWSER_DIR)/node_modules/.package-lock.json: $(BROWSER_DIR)/package-lock.json
	@PKGS="$(PACKAGES) $(BROWSER_PACKAGES)" sh $(CURDIR)/.ci/deps
	@command -v npm >/dev/null || PKGS=npm sh $(CURDIR)/.ci/deps
	cd $(BROWSER_DIR) && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci \
	    --no-audit --no-fund
	@touch $@

$(NGX_BUILD)/objs/Makefile: config
	@test -d $(NGINX_SRC)/auto || { echo "$(NGINX_SRC) is missing:" \
	    "run 'make deps' (as root) or apt-get install nginx-dev"; exit 1; }
	rm -rf $(NGX_BUILD)
	mkdir -p $(BUILD)
	cp -r $(NGINX_SRC) $(NGX_BUILD)
	cd $(NGX_BUILD) && bash -c '. ./conf_flags && ./configure \
	    "$${NGX_CONF_FLAGS[@]}" --with-cc-opt="$(CC_OPT)" \
	    --with-ld-opt="$(LD_OPT)" --add-dynamic-module=$(CURDIR)' \
	    > $(BUILD)/configure.log 2>&1 || { tail -20 $(BUILD)/configure.log; \
	    rm -f $(NGX_BUILD)/objs/Makefile; exit 1; }

$(MODULE): $(NGX_BUILD)/objs/Makefile $(SOURCES)
	$(MAKE) -s -C $(NGX_BUILD) -f objs/Makefile modules
	cp $(NGX_BUILD)/objs/ngx_http_mitte_module.so $(MODULE).tmp
	mv -f $(MODULE).tmp $(MODULE)

deb: deb-deps $(DEB)

$(DEB): $(DEB_SOURCES)
	rm -rf $(BUILD)/deb
	mkdir -p $(DEB_TREE)
	cp -r $(DEB_FILES) $(DEB_TREE)/
	cd $(DEB_TREE) && dpkg-buildpackage -us -uc -b \
	    > $(BUILD)/deb.log 2>&1 || { tail -30 $(BUILD)/deb.log; exit 1; }
	cd $(BUILD)/deb && mv *.deb *.buildinfo *.changes $(BUILD)/
	rm -rf $(BUILD)/deb
	@echo "built $(DEB)"

run: deps all
	@mkdir -p $(BUILD)/run/state
	@# the workers (nobody, when started as root) write the state file
	@if [ "$$(id -u)" = 0 ]; then chown nobody $(BUILD)/run/state; fi
	@echo
	@echo "mitte demo on http://127.0.0.1:8080 (Ctrl-C stops it)."
	@echo "Dashboard: http://127.0.0.1:8080/ (alice/alice or bob/bob). Try:"
	@echo "  curl -i -H 'X-Mitte-User: alice' -d '{}' http://127.0.0.1:8080/hooks/stripe-prod"
	@echo "  curl -i -H 'X-Mitte-User: alice' -d '{}' 'http://127.0.0.1:8080/hooks/stripe-prod?status=503'"
	@echo "  curl -s -u alice:alice http://127.0.0.1:8080/mitte/stats"
	@echo "  curl -s http://127.0.0.1:8080/mitte-admin/metrics"
	@echo
	$(NGINX) -p $(CURDIR)/ -c examples/nginx.conf -e stderr \
	    -g 'daemon off; master_process on;'

test: deb-deps all deb unit integration browser test-sanitize test-fuzz

unit:
	$(MAKE) -C t/unit check BUILD=$(BUILD)/unit

integration: all
	MITTE_MODULE=$(MODULE) MITTE_DEB=$(DEB) prove -I t/lib t/

browser: browser-deps all
	cd $(BROWSER_DIR) && MITTE_MODULE=$(MODULE) node --test \
	    --test-reporter=spec dashboard.test.mjs

$(ASAN_TARBALL):
	sh $(CURDIR)/.ci/nginx-source $(BUILD)

$(ASAN_SRC)/configure: $(ASAN_TARBALL)
	mkdir -p $(ASAN_DIR)
	tar -xzf $(ASAN_TARBALL) -C $(ASAN_DIR)
	touch $@

$(ASAN_SRC)/objs/Makefile: $(ASAN_SRC)/configure config
	@test -f $(NGINX_SRC)/conf_flags || { echo "$(NGINX_SRC)/conf_flags" \
	    "is missing: run 'make deps' (as root) or install nginx-dev"; exit 1; }
	cd $(ASAN_SRC) && bash -c '. $(NGINX_SRC)/conf_flags && ./configure \
	    "$${NGX_CONF_FLAGS[@]}" --with-cc-opt="$(ASAN_CC_OPT)" \
	    --with-ld-opt="$(ASAN_LD_OPT)" --add-dynamic-module=$(CURDIR)' \
	    > $(ASAN_DIR)/configure.log 2>&1 || { tail -20 \
	    $(ASAN_DIR)/configure.log; rm -f $(ASAN_SRC)/objs/Makefile; exit 1; }

# nginx's own Makefile knows what changed: a second run rebuilds nothing
asan: $(ASAN_SRC)/objs/Makefile $(SOURCES)
	$(MAKE) -s -j$(JOBS) -C $(ASAN_SRC) -f objs/Makefile binary modules

test-sanitize: deps asan
	MITTE_NGINX=$(ASAN_NGINX) NGINX=$(ASAN_NGINX) MITTE_SANITIZED=1 \
	    MITTE_MODULE=$(ASAN_MODULE) $(SAN_ENV) \
	    prove -j$(PROVE_JOBS) -I t/lib t/

test-fuzz: deps
	$(MAKE) -j$(JOBS) -C t/fuzz run BUILD=$(BUILD)/fuzz \
	    FUZZ_SECONDS=$(FUZZ_CI_SECONDS)

fuzz: deps
	$(MAKE) -j$(JOBS) -C t/fuzz run BUILD=$(BUILD)/fuzz \
	    FUZZ_SECONDS=$(FUZZ_SECONDS)

bench: bench-deps all
	MITTE_MODULE=$(MODULE) perl bench/proxy.pl
	MITTE_MODULE=$(MODULE) BENCH_CG_VARIANTS=plain,subscribers,state,recent \
	    perl bench/callgrind.pl
	MITTE_MODULE=$(MODULE) perl bench/sweep.pl
	MITTE_MODULE=$(MODULE) perl bench/sse.pl
	MITTE_MODULE=$(MODULE) perl bench/sends.pl
	MITTE_MODULE=$(MODULE) perl bench/hung.pl
	MITTE_MODULE=$(MODULE) perl bench/cluster.pl

clean:
	rm -rf $(BUILD)
