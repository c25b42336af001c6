-- print the version, the Lua release and machine details
-- Layer: recipes (uses the public moonhub API only).
-- Usage: moonhub version. `moonhub --version` prints the first line only.
local mh = require "moonhub"
local cli = require "moonhub.cli"

local active, best = mh.sys.cpu()
print(string.format("moonhub %s (%s)", mh.version, _VERSION))
print(string.format("cpu:     %s kernels (best on this machine: %s)", active, best))
print(string.format("threads: %d", mh.sys.threads()))
print(string.format("blas:    OPENBLAS_CORETYPE=%s", os.getenv("OPENBLAS_CORETYPE") or "(auto)"))
print(string.format("root:    %s", cli.root()))
print(string.format("home:    %s", mh.home()))
