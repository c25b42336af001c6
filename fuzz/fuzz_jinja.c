/* fuzz_jinja.c: libFuzzer target whose harness is fuzz/jinja.lua (see there for
 * what it feeds and what counts as a finding). Layer: fuzz. */
#define FUZZ_HARNESS "fuzz/jinja.lua"
#include "fuzz_lua.h"
