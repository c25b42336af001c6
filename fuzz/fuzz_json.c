/* fuzz_json.c: libFuzzer target whose harness is fuzz/json.lua (see there for
 * what it feeds and what counts as a finding). Layer: fuzz. */
#define FUZZ_HARNESS "fuzz/json.lua"
#include "fuzz_lua.h"
