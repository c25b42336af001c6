-- moonhub.host: what the running host offers scripts and recipes — its
-- folders, terminal checks and Ctrl-C re-arming. Layer: lua/moonhub (a thin
-- public face over moonhub.core.host, which recipes may not require).
local core = require "moonhub.core.host"

local M = {}

M.root, M.recipes, M.home = core.root, core.recipes, core.home

-- isatty(fd) -> true when fd (0, 1, 2) is a terminal
function M.isatty(fd) return core.isatty(fd) end

-- Re-arms Ctrl-C after an "interrupted!" error was caught, so the next
-- Ctrl-C interrupts again instead of ending the process.
function M.rearm_interrupt() return core.rearm_interrupt() end

return M
