# Ferry — build, test, demo, deps, install, bench, asan, fuzz, lint.
# One binary, ./ferry: the C host (host/) plus the native modules (modules/*/*.c),
# with the pure-Lua module sources (modules/*/*.lua) embedded in the binary.

PREFIX  ?= /usr/local
CC      ?= cc
PKGS    := lua5.4 libcurl openssl yaml-0.1 libzip
OPT     ?= -O2 -g
CFLAGS  += -std=c11 -Wall -Wextra -Wpedantic -Werror -D_GNU_SOURCE $(OPT) \
           -Ihost -Imodules $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libcurl is loaded at the first transfer (host/curl.h), so it is not linked.
LDLIBS  += $(shell pkg-config --libs lua5.4 openssl yaml-0.1 libzip 2>/dev/null) -l:liblua5.4-cjson.a -lwslay -ldl -lm
LDFLAGS += -Wl,-E -z noexecstack

# Debian packages: to build, to test, to lint, to benchmark, to fuzz (clang's libFuzzer).
DEPS := gcc make pkg-config liblua5.4-dev libcurl4-openssl-dev libssl-dev libyaml-dev libzip-dev \
        lua-cjson-dev libwslay-dev lua5.4 lua-busted lua-check clang-format openssl \
        python3 python3-yaml python3-kubernetes python3-websocket python3-boto3 python3-jsonschema valgrind time \
        clang libclang-rt-14-dev

SRC      := $(wildcard host/*.c) $(wildcard modules/*/*.c)
LUA_SRC  := $(filter-out %/meta.lua,$(wildcard modules/*/*.lua))
BUILD    ?= build
OBJ      := $(SRC:%.c=$(BUILD)/%.o) $(BUILD)/embedded.o
FERRY    ?= ./ferry

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
HOST_LIB := $(filter-out $(BUILD)/host/main.o,$(OBJ))

# libFuzzer targets (tests/fuzz/fuzz_NAME.c, seeds in tests/fuzz/corpus/NAME),
# built with clang into build/fuzz; each runs FUZZ_SECONDS.
FUZZ_SECONDS ?= 30
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
FUZZ_OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
            -fno-sanitize-recover=all

.PHONY: all deps test unit doubles spec lint asan fuzz demo bench docs install clean fmt
all: deps ferry

deps:
	@missing=$$(for p in $(DEPS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	  | grep -q 'install ok installed' || printf '%s ' $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "deps: installing $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null \
	      || exit 1; \
	  else \
	    echo "deps: missing Debian packages; run:"; \
	    echo "  sudo apt-get update && sudo apt-get install -y $$missing"; exit 1; \
	  fi; \
	fi

ferry: $(BUILD)/ferry
	cp $< $@

$(BUILD)/ferry: $(OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c $(wildcard host/*.h modules/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/embedded.c: host/embed.sh $(LUA_SRC)
	@mkdir -p $(dir $@)
	sh host/embed.sh $(LUA_SRC) > $@

$(BUILD)/embedded.o: $(BUILD)/embedded.c
	$(CC) $(CFLAGS) -Wno-overlength-strings -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(HOST_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(HOST_LIB)
	$(CC) $(CFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $< $(HOST_LIB) $(LDLIBS)

# The whole suite: C unit tests, then the Lua specs under `ferry lua` (busted is
# a Lua program; ferry is its interpreter, so specs exercise the real modules)
# against the loopback doubles, which tests/run starts and stops.
test: all unit doubles spec

# The test doubles checked on their own and with real clients (Python's
# http.client and ssl, websocket-client, boto3/botocore).
doubles:
	@/usr/bin/python3 tests/doubles/test_httpd.py
	@/usr/bin/python3 tests/doubles/test_wsd.py
	@/usr/bin/python3 tests/doubles/aws/test_services.py
	@/usr/bin/python3 tests/doubles/aws/test_conformance.py
	@/usr/bin/python3 tests/doubles/kube/test_controllers.py
	@/usr/bin/python3 tests/doubles/kube/test_conformance.py
	@/usr/bin/python3 tests/doubles/portworx/test_portworx.py

unit: $(UNIT_BIN)
	@sh tests/unit/run $(UNIT_BIN)

spec: all
	@FERRY=$(FERRY) bash tests/run

asan:
	$(MAKE) deps
	$(MAKE) BUILD=build/asan OPT='-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all' \
	  LDFLAGS='-Wl,-E -z noexecstack -fsanitize=address,undefined' build/asan/ferry \
	  $(UNIT_SRC:tests/unit/%.c=build/asan/tests/%)
	@ASAN_OPTIONS=detect_leaks=1 sh tests/unit/run $(UNIT_SRC:tests/unit/%.c=build/asan/tests/%)
	@FERRY=build/asan/ferry ASAN_OPTIONS=detect_leaks=1 bash tests/run

# Each fuzz target from its seeds for FUZZ_SECONDS; fails on a crash, a leak,
# a timeout or a broken invariant (reproducer in build/fuzz/artifacts).
fuzz:
	$(MAKE) deps
	$(MAKE) BUILD=build/fuzz CC=clang OPT='$(FUZZ_OPT)' $(FUZZ_BIN)
	@sh tests/fuzz/run $(FUZZ_SECONDS) $(FUZZ_BIN)

lint: deps
	luacheck -q modules $(wildcard scripts) examples tests/lua tests/bench
	clang-format --dry-run --Werror host/*.c host/*.h modules/*/*.c modules/*/*.h tests/unit/*.c tests/unit/*.h tests/fuzz/*.c tests/fuzz/*.h

fmt:
	clang-format -i host/*.c host/*.h modules/*/*.c modules/*/*.h tests/unit/*.c tests/unit/*.h \
	  tests/fuzz/*.c tests/fuzz/*.h

demo: all
	@sh examples/demo.sh

bench: all
	@/usr/bin/python3 tests/bench/bench.py --ferry $(FERRY)

docs: all
	@FERRY=$(FERRY) bash tests/run tests/lua/meta_spec.lua

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 ferry $(DESTDIR)$(PREFIX)/bin/ferry

clean:
	rm -rf build ferry tests/.run
