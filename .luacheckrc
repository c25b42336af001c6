-- luacheck configuration (make lint): Lua 5.4, no globals anywhere except
-- `arg` for scripts/recipes and busted's globals in specs.
std = "lua54"
codes = true
max_line_length = 120
files["recipes"] = { globals = { "arg" } }
files["examples"] = { globals = { "arg" } }
files["bench"] = { globals = { "arg" } }
files["tests/spec"] = { std = "+busted" }
files["tests/run_busted.lua"] = { globals = { "arg" } }
