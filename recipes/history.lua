-- stored conversations: list, show, search (full text), export as JSONL or Markdown, rm
-- Layer: recipes (uses the public moonhub API only: moonhub.history).
-- Usage: moonhub history list [--limit N] | show ID | search TEXT... |
--        export ID... [--format jsonl|md] [-o FILE] | rm ID...
local cli = require "moonhub.cli"
local history = require "moonhub.history"

local p = cli.parser("history", "Conversations stored by 'moonhub chat' and by 'moonhub serve --history' "
   .. "(or requests with \"store\": true). 'moonhub chat --resume ID' continues one.")
p:command_target("command")
p:require_command(false)
local c_list = p:command("list ls", "newest conversations first")
c_list:option("-n --limit", "at most this many", "20"):convert(math.tointeger)
c_list:flag("--json", "print JSON")
local c_show = p:command("show", "print one conversation")
c_show:argument("id", "conversation id"):convert(math.tointeger)
local c_search = p:command("search", "full-text search over every message")
c_search:argument("text", "words to find (all of them)"):args("+")
c_search:option("-n --limit", "at most this many hits", "20"):convert(math.tointeger)
local c_export = p:command("export", "write conversations as JSON lines or Markdown")
c_export:argument("ids", "conversation ids"):args("+"):convert(math.tointeger)
c_export:option("-f --format", "jsonl (one conversation per line) or md", "jsonl"):choices({ "jsonl", "md" })
c_export:option("-o --output", "write to FILE instead of stdout")
local c_rm = p:command("rm", "delete conversations")
c_rm:argument("ids", "conversation ids"):args("+"):convert(math.tointeger)

local a, code = cli.parse(p, arg)
if not a then return code end
local cmd = a.command or "list"

local h, err = history.open()
if not h then
   return cli.fail("history", err)
end

local function when(t) return os.date("%Y-%m-%d %H:%M", t) end
local function one_line(s, n)
   s = (s or ""):gsub("%s+", " ")
   if #s > n then s = s:sub(1, n - 3):gsub("[\192-\255][\128-\191]*$", "") .. "..." end
   return s
end

local status = 0
if cmd == "list" then
   local rows = h:list({ limit = a.limit or 20 })
   if a.json then
      io.write(require("dkjson").encode(setmetatable(rows, { __jsontype = "array" }), { indent = true }), "\n")
   elseif #rows == 0 then
      io.write("no conversations yet ('moonhub chat' stores its sessions; 'moonhub serve --history' too)\n")
   else
      local fmt = "%5s  %-16s  %-7s  %-24s %4s  %s\n"
      io.write(string.format(fmt, "ID", "UPDATED", "SOURCE", "MODEL", "MSGS", "TITLE"))
      for _, r in ipairs(rows) do
         io.write(string.format(fmt, r.id, when(r.updated_at), r.source or "-", one_line(r.model or "-", 24),
            r.messages, one_line(r.title or "", 50)))
      end
   end
elseif cmd == "show" then
   local c, msgs = h:get(a.id)
   if not c then
      status = cli.fail("history", msgs)
   else
      io.write(string.format("conversation %d: %s\nmodel %s, %s, updated %s\n", c.id, c.title or "",
         c.model or "-", c.source or "-", when(c.updated_at)))
      if c.usage then io.write("usage ", require("dkjson").encode(c.usage), "\n") end
      for _, m in ipairs(msgs) do io.write("\n[", m.role, "]\n", m.content, "\n") end
   end
elseif cmd == "search" then
   local rows = h:search(table.concat(a.text, " "), { limit = a.limit or 20 })
   if #rows == 0 then io.write("no matches\n") end
   for _, r in ipairs(rows) do
      io.write(string.format("%5d  #%-3d %-9s %s\n", r.conversation_id, r.seq, r.role, one_line(r.snippet, 100)))
   end
elseif cmd == "export" then
   local out = {}
   for _, id in ipairs(a.ids) do
      local text, xerr = h:export(id, a.format)
      if not text then
         status = cli.fail("history", xerr)
      else
         out[#out + 1] = text
      end
   end
   local text = table.concat(out, a.format == "md" and "\n---\n\n" or "")
   if a.output then
      local done, ferr = require("moonhub.fs").write(a.output, text)   -- temp + rename
      if not done then
         status = cli.fail("history", ferr)
      end
   else
      io.write(text)
   end
elseif cmd == "rm" then
   for _, id in ipairs(a.ids) do
      local done, rerr = h:remove(id)
      if done then io.write("removed conversation ", id, "\n")
      else
         status = cli.fail("history", rerr)
      end
   end
end
h:close()
return status
