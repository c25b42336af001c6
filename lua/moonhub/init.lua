-- moonhub: the public Lua API. Layer: lua/moonhub (wraps moonhub.core.*).
-- Submodules load on first use: mh.tensor, mh.sys, ...
local M = {}

local lazy = {
   tensor = "moonhub.tensor",
   sys = "moonhub.core.sys",
   jinja = "moonhub.jinja",
   template = "moonhub.template",
   tokenizer = "moonhub.tokenizer",
   gguf = "moonhub.gguf",
   db = "moonhub.db",
   registry = "moonhub.registry",
   models = "moonhub.models",
   hub = "moonhub.hub",
   model = "moonhub.model",
   server = "moonhub.server",
   openai = "moonhub.openai",
   sample = "moonhub.core.sample",
   grammar = "moonhub.grammar",
   http = "moonhub.http",
   sched = "moonhub.sched",
   quantize = "moonhub.quantize",
   create = "moonhub.create",
   convert = "moonhub.convert",
   train = "moonhub.train",
   eval = "moonhub.eval",
   adapters = "moonhub.adapters",
   kvstate = "moonhub.kvstate",
   batch = "moonhub.batch",
   compare = "moonhub.compare",
   processors = "moonhub.processors",
}

M.version = require("moonhub.core.sys").version
-- load(path, opts) -> model | nil, msg (see moonhub.model)
function M.load(...) return require("moonhub.model").load(...) end
function M.home() return require("moonhub.core.host").home end   -- $MOONHUB_HOME
-- show(v[, {all = true}]): prints v as the REPL does (see moonhub.repl)
function M.show(v, opts) return require("moonhub.repl").show_values({ n = 1, v }, opts) end

return setmetatable(M, {
   modules = lazy,   -- the submodule names (the docs spec checks each is documented)
   __index = function(t, k)
      local name = lazy[k]
      if not name then return nil end
      local mod = require(name)
      rawset(t, k, mod)
      return mod
   end,
})
