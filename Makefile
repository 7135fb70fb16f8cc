# greenld — build, test, bench, install.
#   make            build build/libgreenld.so and the test programs
#   make test       unit + integration tests (what .ci/run calls)
#   make test-real  real programs (tests/real/) natively and under greenld
#   make test-asan  unit tests under AddressSanitizer + UBSan
#   make bench      native vs greenld vs epoll benchmarks, < 10 min (scripts/bench.sh):
#                   a table, build/bench/results.tsv and build/bench/chart.png
#   make demo       install deps if missing, build, run the demo
#   make deps       install the Debian build dependencies (as root)
#   make install    PREFIX=/usr/local DESTDIR= (library, launcher, header, greenld.pc, man pages)

PREFIX ?= /usr/local
DESTDIR ?=
MANDIR ?= $(PREFIX)/share/man
BUILD ?= build
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.1.0)

CXX ?= g++
CC ?= gcc
WARN := -Wall -Wextra -Werror
# decltype(::read) carries glibc's warn_unused_result, meaningless in a type.
LIB_WARN := $(WARN) -Wno-ignored-attributes
CXXFLAGS ?= -O2 -g
CFLAGS ?= -O2 -g
LIB_CXXFLAGS := -std=c++20 $(LIB_WARN) -fPIC -fvisibility=hidden -ftls-model=initial-exec \
                -fno-exceptions -fno-rtti -D_GNU_SOURCE $(CXXFLAGS)
LIB_LDLIBS := -lev -lcares -ldl -lpthread

RUNTIME_SRC := $(wildcard runtime/*.cpp)
RUNTIME_ASM := runtime/context_x86_64.S
PRELOAD_SRC := $(wildcard preload/*.cpp)
PRELOAD_ASM := preload/vfork_x86_64.S preload/sigsetjmp_x86_64.S
RUNTIME_OBJ := $(RUNTIME_SRC:%.cpp=$(BUILD)/%.o) $(RUNTIME_ASM:%.S=$(BUILD)/%.o)
PRELOAD_OBJ := $(PRELOAD_SRC:%.cpp=$(BUILD)/%.o) $(PRELOAD_ASM:%.S=$(BUILD)/%.o)
HEADERS := $(wildcard runtime/*.h preload/*.h)

UNIT_SRC := $(wildcard tests/unit/*.cpp)
PROGRAM_SRC := $(wildcard tests/programs/*.c)
# C++ test programs (the C++ runtime's use of threads: unwinding, futexes).
PROGRAM_CXX_SRC := $(wildcard tests/programs/t_*.cpp)
PROGRAMS := $(PROGRAM_SRC:tests/programs/%.c=$(BUILD)/tests/%) $(PROGRAM_CXX_SRC:tests/programs/%.cpp=$(BUILD)/tests/%) \
            $(patsubst tests/programs/lib/%.c,$(BUILD)/tests/lib/lib%.so,$(wildcard tests/programs/lib/*.c))

DEB_DEPS := g++ make libev-dev libc-ares-dev libunwind-dev doctest-dev
# Benchmark programs (tests/bench/; built by `all` so that make test checks them).
BENCH_BIN := $(BUILD)/bench/pingpong $(BUILD)/bench/epoll_echo $(BUILD)/bench/switch_bench \
             $(BUILD)/bench/parked_threads $(BUILD)/bench/cpu_threads $(BUILD)/bench/mc_load \
             $(BUILD)/bench/dns_lookups

.PHONY: all test test-real test-unit test-integration test-asan bench demo deps install uninstall clean

all: $(BUILD)/libgreenld.so $(BUILD)/unit_tests $(PROGRAMS) $(BENCH_BIN)

# V=1 shows the full commands.
Q := $(if $(V),,@)
say = $(if $(V),,@echo "  $(1)	$(2)")

$(BUILD)/%.o: %.cpp $(HEADERS)
	@mkdir -p $(dir $@)
	$(call say,CXX,$<)
	$(Q)$(CXX) $(LIB_CXXFLAGS) -c $< -o $@

$(BUILD)/%.o: %.S
	@mkdir -p $(dir $@)
	$(call say,AS,$<)
	$(Q)$(CC) -c $< -o $@

# glibc's symbol versions for the libc functions we define (dlvsym finds
# ours, at every version): generated from the objects and the libc we link.
LIBC_SO := $(shell $(CC) -print-file-name=libc.so.6)

$(BUILD)/versions.map $(BUILD)/versions.S &: scripts/symbol_versions.sh $(PRELOAD_OBJ)
	$(call say,GEN,$(BUILD)/versions.map)
	$(Q)scripts/symbol_versions.sh $(LIBC_SO) $(BUILD)/versions.map $(BUILD)/versions.S $(PRELOAD_OBJ)

$(BUILD)/versions.o: $(BUILD)/versions.S
	$(call say,AS,$<)
	$(Q)$(CC) -c $< -o $@

# The soname is the name glibc's NSS dlopen()s for the "greenld" hosts
# source (preload/dns_module.cpp): already loaded, the library is found by it.
# A program linked with -lgreenld needs that name: a symlink next to the library.
$(BUILD)/libgreenld.so: $(RUNTIME_OBJ) $(PRELOAD_OBJ) $(BUILD)/versions.o $(BUILD)/versions.map
	$(call say,LINK,$@)
	$(Q)$(CXX) -shared -o $@ $(RUNTIME_OBJ) $(PRELOAD_OBJ) $(BUILD)/versions.o -Wl,-z,now -Wl,-soname,libnss_greenld.so.2 \
	    -Wl,--version-script=$(BUILD)/versions.map $(LIB_LDLIBS)
	$(Q)ln -sf libgreenld.so $(BUILD)/libnss_greenld.so.2

# Unit tests link the runtime directly (no interposition) and drive it
# through its own API.
$(BUILD)/unit_tests: $(UNIT_SRC) $(wildcard tests/unit/*.h) $(RUNTIME_OBJ) $(HEADERS)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CXX) -std=c++20 $(WARN) -D_GNU_SOURCE $(CXXFLAGS) -Iruntime -o $@ $(UNIT_SRC) $(RUNTIME_OBJ) $(LIB_LDLIBS)

$(BUILD)/tests/%: tests/programs/%.c preload/greenld.h $(wildcard tests/programs/*.h)
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) -std=gnu11 $(WARN) $(CFLAGS) -pthread -Ipreload -o $@ $< -ldl $(PROGRAM_LIBS)

# t_fiber_tls links a library with TLS of its own (static TLS, as a program's libraries have).
$(BUILD)/tests/t_fiber_tls: $(BUILD)/tests/lib/libfiber_tls.so
$(BUILD)/tests/t_fiber_tls: PROGRAM_LIBS = -L$(BUILD)/tests/lib -lfiber_tls -Wl,-rpath,'$$ORIGIN/lib'

# Libraries the test programs preload or load (tests/programs/lib/).
$(BUILD)/tests/lib/lib%.so: tests/programs/lib/%.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) -std=gnu11 $(WARN) $(CFLAGS) -shared -fPIC -pthread -o $@ $< -ldl

$(BUILD)/tests/%: tests/programs/%.cpp $(wildcard tests/programs/*.h)
	@mkdir -p $(dir $@)
	$(call say,CXX,$<)
	$(Q)$(CXX) -std=c++20 $(WARN) $(CXXFLAGS) -pthread -o $@ $<

test: all
	@tests/run.sh $(BUILD)

# Real programs nobody here wrote, natively and under greenld (tests/real/).
test-real: all
	@pass=0; fail=0; for s in tests/real/*.sh; do echo "== $$s"; out=$$($$s $(BUILD) | tee /dev/stderr | tail -1); \
	    p=$${out%% passed*}; f=$${out#*, }; f=$${f%% failed*}; pass=$$((pass + p)); fail=$$((fail + f)); done; \
	    echo "$$pass passed, $$fail failed"; [ $$fail -eq 0 ]

test-asan:
	$(MAKE) BUILD=build-asan CXXFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -DGREENLD_ASAN" \
	    build-asan/unit_tests
	ASAN_OPTIONS=detect_stack_use_after_return=0:detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1 \
	    build-asan/unit_tests

# Benchmarks (tests/bench/), built into $(BUILD)/bench/ and run by
# scripts/bench.sh: a table on stdout, $(BUILD)/bench/results.tsv and chart.png.

$(BUILD)/bench/%: tests/bench/%.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) -std=gnu11 $(WARN) $(CFLAGS) -pthread -o $@ $<

# Links the runtime directly, as the unit tests do; and a library with TLS of
# its own (80 bytes), which GREENLD_FIBER_TLS=1 copies per fiber.
$(BUILD)/bench/switch_bench: tests/bench/switch_bench.cpp $(RUNTIME_OBJ) $(HEADERS) $(BUILD)/tests/lib/libfiber_tls.so
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CXX) -std=c++20 $(WARN) -D_GNU_SOURCE $(CXXFLAGS) -Iruntime -o $@ $< $(RUNTIME_OBJ) $(LIB_LDLIBS) \
	    -L$(BUILD)/tests/lib -Wl,--no-as-needed -lfiber_tls -Wl,--as-needed -Wl,-rpath,'$$ORIGIN/../tests/lib'

bench: $(BUILD)/libgreenld.so $(BUILD)/tests/echo_server $(BUILD)/tests/load_client $(BENCH_BIN)
	@scripts/bench.sh $(BUILD)

deps:
	@missing=""; for p in $(DEB_DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	    else echo "greenld: missing Debian packages:$$missing (run 'sudo make deps')"; exit 1; fi; \
	fi

demo: deps
	$(MAKE) all
	scripts/demo.sh $(BUILD)

install: $(BUILD)/libgreenld.so
	install -d $(DESTDIR)$(PREFIX)/lib/greenld $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include
	install -m 0644 $(BUILD)/libgreenld.so $(DESTDIR)$(PREFIX)/lib/greenld/libgreenld.so
	ln -sf libgreenld.so $(DESTDIR)$(PREFIX)/lib/greenld/libnss_greenld.so.2
	echo $(VERSION) > $(DESTDIR)$(PREFIX)/lib/greenld/VERSION
	install -m 0755 scripts/greenld $(DESTDIR)$(PREFIX)/bin/greenld
	install -m 0644 preload/greenld.h $(DESTDIR)$(PREFIX)/include/greenld.h
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' scripts/greenld.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/greenld.pc
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man7
	install -m 0644 man/greenld.1 $(DESTDIR)$(MANDIR)/man1/greenld.1
	install -m 0644 man/greenld.3 $(DESTDIR)$(MANDIR)/man3/greenld.3
	install -m 0644 man/greenld.7 $(DESTDIR)$(MANDIR)/man7/greenld.7

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/greenld/libgreenld.so $(DESTDIR)$(PREFIX)/lib/greenld/libnss_greenld.so.2 \
	      $(DESTDIR)$(PREFIX)/lib/greenld/VERSION \
	      $(DESTDIR)$(PREFIX)/bin/greenld $(DESTDIR)$(PREFIX)/include/greenld.h \
	      $(DESTDIR)$(PREFIX)/lib/pkgconfig/greenld.pc \
	      $(DESTDIR)$(MANDIR)/man1/greenld.1 $(DESTDIR)$(MANDIR)/man3/greenld.3 $(DESTDIR)$(MANDIR)/man7/greenld.7
	-rmdir $(DESTDIR)$(PREFIX)/lib/greenld
	-rmdir $(DESTDIR)$(PREFIX)/lib/pkgconfig 2>/dev/null

clean:
	rm -rf $(BUILD) build-asan
