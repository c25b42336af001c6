# moonhub build. `make` builds ./moonhub and the C test programs;
# `make test` and `make demo` first install missing Debian packages (deps).
# Sources are picked up by wildcard: a new engine/<area>/*.c needs no edit here.
# Files named *_avx2.c / *_avx512.c are compiled for that ISA only; the
# kernels they hold are chosen at run time by cpuid (engine/base/cpu.c).

PREFIX   ?= /usr/local
DESTDIR  ?=
VERSION  := 0.1.0
BUILD    ?= build
# V=1 prints every compiler line in full; by default a rule prints one short
# "  CC file" line (make test hides even those unless the build fails).
V        ?= 0
ifeq ($(V),1)
Q   :=
say  = @:
else
Q   := @
say  = @printf '  %-6s %s\n' '$(1)' '$(2)'
endif

CC       ?= cc
PKGS     := lua5.4 openblas libedit libcjson libpcre2-8 libutf8proc sqlite3 libpq libcurl libevent libcrypto
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS   ?= -O2 -g
# MH_CFLAGS is not meant to be overridden (make asan passes its own CFLAGS)
MH_CFLAGS := -std=c11 -Wall -Wextra -D_GNU_SOURCE -Iengine/include $(PKG_CFLAGS) \
            -DMH_VERSION='"$(VERSION)"' -DMH_PREFIX='"$(PREFIX)"' -fno-math-errno
LDLIBS   += $(PKG_LIBS) -lm -lpthread

AVX2_FLAGS   := -mavx2 -mfma -mf16c
AVX512_FLAGS := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16 -mfma -mf16c -mavx2

ENGINE_SRC := $(filter-out engine/host/% engine/bind/%,$(wildcard engine/*/*.c engine/*/*/*.c))
BIND_SRC   := $(wildcard engine/bind/*.c)
HOST_SRC   := $(wildcard engine/host/*.c)
TEST_SRC   := $(wildcard tests/c/test_*.c)
BENCH_SRC  := $(wildcard bench/*.c)

ENGINE_OBJ := $(ENGINE_SRC:%.c=$(BUILD)/%.o)
APP_OBJ    := $(BIND_SRC:%.c=$(BUILD)/%.o) $(HOST_SRC:%.c=$(BUILD)/%.o)
TEST_BIN   := $(TEST_SRC:tests/c/%.c=$(BUILD)/tests/%)
BENCH_BIN  := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
LIBMH      := $(BUILD)/libmh.a

.PHONY: all bins deps test test-c test-lua test-pg test-e2e demo asan fuzz fuzz-build lint bench install uninstall clean mutate
all: moonhub bins
# the binaries without the ./moonhub link (make asan builds these, so the
# link keeps pointing at the normal build)
bins: $(BUILD)/moonhub $(TEST_BIN)

deps:
	@sh deps/install.sh

moonhub: $(BUILD)/moonhub
	@ln -sf $(BUILD)/moonhub moonhub

$(BUILD)/moonhub: $(APP_OBJ) $(LIBMH)
	$(call say,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $(MH_CFLAGS) -o $@ $(APP_OBJ) $(LIBMH) $(LDFLAGS) $(LDLIBS)

$(LIBMH): $(ENGINE_OBJ)
	@rm -f $@
	$(call say,AR,$@)
	$(Q)ar rcs $@ $^

$(BUILD)/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) $(MH_CFLAGS) $(AVX2_FLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) $(MH_CFLAGS) $(AVX512_FLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) $(MH_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tests/%: tests/c/%.c tests/c/harness.h tests/c/fixture_json.h $(LIBMH)
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) $(MH_CFLAGS) -Itests/c -o $@ $< $(LIBMH) $(LDFLAGS) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c bench/kernel_util.h bench/clock.h $(LIBMH)
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) $(MH_CFLAGS) -o $@ $< $(LIBMH) $(LDFLAGS) $(LDLIBS)

# ===== tests =====
test: deps
	@V=$(V) sh tools/quietly.sh build $(MAKE) --no-print-directory all
	@V=$(V) sh tests/run.sh $(BUILD)

test-c: all
	@V=$(V) sh tests/run.sh $(BUILD) c

test-lua: all
	@V=$(V) sh tests/run.sh $(BUILD) lua

# the registry, datasets, runs, jobs and history specs on a throwaway
# PostgreSQL (tests/helpers/pg.lua; part of make test)
test-pg: all
	@V=$(V) sh tests/run.sh $(BUILD) pg

test-e2e: all
	@sh tests/e2e/run.sh
	@sh tests/e2e/ollama.sh

asan:
	@V=$(V) sh tools/quietly.sh "asan build" $(MAKE) --no-print-directory BUILD=build-asan \
	    CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	    LDFLAGS="-fsanitize=address,undefined" bins
	@ASAN_OPTIONS=detect_leaks=1 V=$(V) sh tests/run.sh build-asan c

# The hub's central flow end to end, offline, in a scratch MOONHUB_HOME
# (examples/lifecycle.lua): model -> dataset -> LoRA job -> eval -> serve.
# Exits non-zero when a step fails (CI runs it after the tests).
demo: deps
	@$(MAKE) --no-print-directory all
	./moonhub run examples/lifecycle.lua

# Plants each mutation of tools/mutations.txt in a scratch copy and runs its
# tests (not part of test or CI; docs/testing.md).
mutate: all
	sh tools/mutate.sh

lint:
	luacheck -q lua recipes examples bench tests
	@if grep -rnE 'require[ (]*["'"'"']moonhub\.core' recipes; then \
	    echo "lint: recipes must not require moonhub.core.* (use the public moonhub API)"; exit 1; fi
	@sh tools/lint_layers.sh
	@sh tools/lint_recipes.sh
	@sh tools/lint_sizes.sh
	@sh tools/lint_docs.sh
	@echo "lint: ok"

bench: all $(BENCH_BIN)
	@LLAMA_CPP="$(LLAMA_CPP)" sh bench/run.sh $(BUILD)

# ===== fuzzing: libFuzzer targets in fuzz/ (clang, ASan + UBSan). The whole
# tree is rebuilt in build-fuzz with coverage instrumentation; each target
# then runs FUZZ_SECONDS seconds (fuzz/run.sh), failing on any report.
FUZZ_SECONDS ?= 60
FUZZ_SAN   := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_SRC   := $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN   := $(FUZZ_SRC:fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_HOST  := $(filter-out $(BUILD)/engine/host/main.o,$(APP_OBJ))

fuzz: moonhub
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=clang \
	    CFLAGS="-O1 -g -fsanitize=fuzzer-no-link $(FUZZ_SAN)" fuzz-build
	@sh fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

fuzz-build: $(FUZZ_BIN)

$(BUILD)/fuzz/%: fuzz/%.c $(wildcard fuzz/*.h) $(FUZZ_HOST) $(LIBMH)
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) $(MH_CFLAGS) -fsanitize=fuzzer -Iengine/bind -Iengine/host -o $@ $< \
	    $(FUZZ_HOST) $(LIBMH) $(LDFLAGS) $(LDLIBS)

# ===== install =====
# Docs go to share/doc/moonhub; the man pages (moonhub(1), moonhub-GROUP(1))
# are generated here from the CLI's own help text (tools/gen_man.lua), never
# committed.
SHAREDIR := $(DESTDIR)$(PREFIX)/share/moonhub
DOCDIR   := $(DESTDIR)$(PREFIX)/share/doc/moonhub
MANDIR   := $(DESTDIR)$(PREFIX)/share/man/man1
install: moonhub
	install -d $(DESTDIR)$(PREFIX)/bin $(SHAREDIR)/lua/moonhub $(SHAREDIR)/recipes $(DOCDIR) $(MANDIR)
	install -m 755 $(BUILD)/moonhub $(DESTDIR)$(PREFIX)/bin/moonhub
	cd lua && find . -name '*.lua' -exec install -D -m 644 {} $(SHAREDIR)/lua/{} \;
	cd recipes && find . -name '*.lua' -exec install -D -m 644 {} $(SHAREDIR)/recipes/{} \;
	cd web && find . -type f -exec install -D -m 644 {} $(SHAREDIR)/web/{} \;
	install -m 644 README.md docs/*.md $(DOCDIR)
	rm -rf $(BUILD)/man && mkdir -p $(BUILD)/man
	$(BUILD)/moonhub run tools/gen_man.lua $(BUILD)/man
	install -m 644 $(BUILD)/man/*.1 $(MANDIR)

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/moonhub
	rm -rf $(SHAREDIR) $(DOCDIR)
	rm -f $(MANDIR)/moonhub.1 $(MANDIR)/moonhub-*.1

clean:
	rm -rf build build-asan build-fuzz moonhub

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
