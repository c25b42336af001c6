-- moonhub.compare: the same prompts on several models (and adapters) —
-- answers, tok/s, time to first token and token counts per model, and on a
-- dataset the loss and perplexity of each (moonhub.eval's row_nll) — and
-- the side-by-side text `moonhub compare` prints. Models load one at a time.
-- Layer: lua/moonhub (uses moonhub.model, .adapters, .eval, .data, .template).
local json = require "dkjson"

local M = {}

-- ===== prompts =====

local function copy_msgs(msgs, upto)
   local out = {}
   for i = 1, upto do out[i] = msgs[i] end
   return out
end

-- row -> prompt (a string or {messages}), its text, the reference answer
local function row_prompt(row)
   local T = require "moonhub.template"
   if type(row.messages) == "table" then
      local msgs, last = row.messages, #row.messages
      while last > 0 and msgs[last].role == "assistant" do last = last - 1 end
      if last == 0 then return nil end
      local ref = last < #msgs and T.text(msgs[last + 1].content) or nil
      return { messages = copy_msgs(msgs, last) }, T.text(msgs[last].content), ref
   elseif type(row.prompt) == "string" then
      return row.prompt, row.prompt, row.completion
   elseif type(row.text) == "string" then       -- a plain text row: its first words lead
      local words = {}
      for w in row.text:gmatch("%S+") do
         words[#words + 1] = w
         if #words >= 8 then break end
      end
      local p = table.concat(words, " ")
      return p, p, nil
   end
   return nil
end

-- dataset_rows(ref, n) -> rows (the first n), dataset ref | nil, msg
local function dataset_rows(ref, n)
   local data = require "moonhub.data"
   local reg, err = require("moonhub.models").open()
   if not reg then return nil, err end
   local ds, derr = data.open(reg, ref)
   if not ds then reg:close(); return nil, derr end
   local rows = {}
   for row in ds:iter() do
      if #rows >= n then break end
      rows[#rows + 1] = row
   end
   reg:close()
   if #rows == 0 then return nil, "dataset " .. ds:ref() .. " has no rows" end
   return rows, ds:ref()
end

-- ===== one model =====

local function label(col)
   local name = col.model:match("([^/]+)/?$"):gsub("%.gguf$", "")
   for _, l in ipairs(col.lora or {}) do          -- an adapter file by its name, without .gguf
      name = name .. "+" .. (l:match("([^/]+)$"):gsub("%.gguf", ""))
   end
   return name
end

local function load(col, opts)
   local m, err = require("moonhub.model").load(col.model, { ctx = opts.ctx, threads = opts.threads })
   if not m then return nil, string.format("%s: %s", col.model, (tostring(err):gsub("^moonhub%.load: ", ""))) end
   if col.lora and #col.lora > 0 then
      local ok, aerr = require("moonhub.adapters").apply(m, col.lora)
      if not ok then m:close(); return nil, string.format("%s --lora: %s", col.model, tostring(aerr)) end
   end
   return m
end

local function loss_of(m, rows)
   local data, eval = require "moonhub.data", require "moonhub.eval"
   local sum, n, skipped = 0.0, 0, 0
   for _, row in ipairs(rows) do
      local ids, mask = data.encode(m, row, { ctx = m.ctx })
      if ids then
         local s, k = eval.row_nll(m, ids, mask)
         sum, n = sum + s, n + k
      else
         skipped = skipped + 1
      end
   end
   if n == 0 then return nil end
   return { loss = sum / n, perplexity = math.exp(sum / n), tokens = n, skipped = skipped }
end

local function run_model(col, prompts, rows, opts)
   local m, err = load(col, opts)
   if not m then return nil, err end
   local out = { name = label(col), model = col.model, lora = col.lora, results = {} }
   local ok, perr = pcall(function()
      for i, p in ipairs(prompts) do
         local text, st = m:generate(p.prompt, { max_tokens = opts.max_tokens, temperature = opts.temperature,
            seed = opts.seed, template = opts.template })
         out.results[i] = { text = text, prompt_tokens = st.prompt_tokens, completion_tokens = st.generated,
            ttft_ms = st.ttft_s * 1000, tokens_per_s = st.generated > 0 and st.gen_tps or 0,
            finish_reason = st.finish_reason }
         if opts.on_progress then opts.on_progress(out.name, i, #prompts) end
      end
      if rows then
         local l = loss_of(m, rows)
         if l then
            out.loss, out.perplexity, out.eval_tokens, out.skipped = l.loss, l.perplexity, l.tokens, l.skipped
         end
      end
   end)
   m:close()
   if not ok then return nil, string.format("%s: %s", out.name, tostring(perr):gsub("^[^\n]-%.lua:%d+: ", "")) end
   local gen, secs, ttft = 0, 0, 0
   for _, r in ipairs(out.results) do
      gen = gen + r.completion_tokens
      if r.tokens_per_s > 0 then secs = secs + r.completion_tokens / r.tokens_per_s end
      ttft = ttft + r.ttft_ms
   end
   out.tokens_per_s = secs > 0 and gen / secs or 0
   out.ttft_ms = ttft / math.max(#out.results, 1)
   out.completion_tokens = gen
   return out
end

-- ===== the comparison =====

-- run(models, opts) -> result | nil, msg.
-- models: {"MODEL" | {model =, lora = {"ADAPTER[:SCALE]"}}...} (a path, a
-- registry name, or NAME:TAG of an adapter version, loaded with its base);
-- opts: prompt (a string or a list of strings) or data ("NAME[@V][:SPLIT]",
-- its first n rows, default 5), lora (adapters, each one more column: the
-- first model with it), max_tokens (64), temperature (0: greedy, so the
-- models are compared on the same footing), seed, ctx, threads, template,
-- on_progress(name, i, n). Result: {prompts = {{text, reference}},
-- data, models = {{name, model, lora, results = {{text, prompt_tokens,
-- completion_tokens, ttft_ms, tokens_per_s, finish_reason}}, tokens_per_s,
-- ttft_ms, completion_tokens, loss, perplexity, eval_tokens}}}.
function M.run(models, opts)
   opts = opts or {}
   if type(models) ~= "table" or #models == 0 then error("compare.run: models must be a non-empty list", 2) end
   local cols = {}
   for i, m in ipairs(models) do
      if type(m) == "string" then cols[i] = { model = m }
      elseif type(m) == "table" and type(m.model) == "string" then cols[i] = { model = m.model, lora = m.lora }
      else error("compare.run: models[" .. i .. "] must be a model name or {model =, lora =}", 2) end
   end
   for _, l in ipairs(opts.lora or {}) do cols[#cols + 1] = { model = cols[1].model, lora = { l } } end
   if #cols < 2 then return nil, "give two models or more (or one and --lora ADAPTER)" end
   opts.max_tokens = opts.max_tokens or 64
   if math.type(opts.max_tokens) ~= "integer" or opts.max_tokens < 1 then
      return nil, "max_tokens must be a positive integer"
   end
   if opts.temperature == nil then opts.temperature = 0 end
   local prompts, rows, data_ref = {}, nil, nil
   if opts.data then
      if opts.prompt then return nil, "give a prompt or a dataset, not both" end
      local n = opts.n or 5
      if math.type(n) ~= "integer" or n < 1 then return nil, "n must be a positive integer" end
      local err
      rows, err = dataset_rows(opts.data, n)
      if not rows then return nil, err end
      data_ref = err
      for _, row in ipairs(rows) do
         local p, text, ref = row_prompt(row)
         if p then prompts[#prompts + 1] = { prompt = p, text = text, reference = ref } end
      end
      if #prompts == 0 then return nil, "dataset " .. data_ref .. " has no rows to prompt with" end
   else
      local list = type(opts.prompt) == "string" and { opts.prompt } or opts.prompt
      if type(list) ~= "table" or #list == 0 then
         return nil, "give a prompt (--prompt TEXT) or a dataset (--data NAME)"
      end
      for _, p in ipairs(list) do
         if type(p) ~= "string" or p == "" then return nil, "a prompt must be a non-empty string" end
         prompts[#prompts + 1] = { prompt = { messages = { { role = "user", content = p } } }, text = p }
      end
   end
   local res = { prompts = {}, data = data_ref, models = {} }
   for i, p in ipairs(prompts) do res.prompts[i] = { text = p.text, reference = p.reference } end
   for i, col in ipairs(cols) do
      local out, err = run_model(col, prompts, rows, opts)
      if not out then return nil, err end
      res.models[i] = out
   end
   return res
end

-- ===== printing =====

-- wrap(text, width) -> lines of at most width characters (UTF-8 aware;
-- words kept whole where they fit, newlines kept)
function M.wrap(text, width)
   local out = {}
   local function len(s) return utf8.len(s) or #s end
   local function cut(s, n)             -- the first n characters of s, the rest
      local at = utf8.offset(s, n + 1)
      if not at or not utf8.len(s) then at = n + 1 end
      return s:sub(1, at - 1), s:sub(at)
   end
   for para in (text .. "\n"):gmatch("(.-)\n") do
      local line = ""
      for word in para:gmatch("%S+") do
         while len(word) > width do
            if line ~= "" then out[#out + 1] = line; line = "" end
            local head
            head, word = cut(word, width)
            out[#out + 1] = head
         end
         if line == "" then line = word
         elseif len(line) + 1 + len(word) <= width then line = line .. " " .. word
         else out[#out + 1] = line; line = word end
      end
      out[#out + 1] = line
   end
   while #out > 1 and out[#out] == "" do out[#out] = nil end
   return out
end

local function pad(s, w)
   local n = utf8.len(s) or #s
   return n >= w and s or (s .. string.rep(" ", w - n))
end

local function stats_line(r)
   return string.format("%.1f tok/s, TTFT %.0f ms, %d+%d tok", r.tokens_per_s, r.ttft_ms, r.prompt_tokens,
      r.completion_tokens)
end

-- render(result, width = 100) -> text: per prompt, the answers in columns
-- (stacked when a column would be narrower than 20), then a summary table
function M.render(res, width)
   width = math.max(width or 100, 40)
   local k = #res.models
   local colw = (width - 3 * (k - 1)) // k
   local stacked = colw < 20
   local out = {}
   local function add(s) out[#out + 1] = s end
   for i, p in ipairs(res.prompts) do
      add(string.format("== prompt %d: %s", i, (p.text:gsub("%s+", " "))))
      if p.reference then add("   expected: " .. (p.reference:gsub("%s+", " "))) end
      if stacked then
         for _, m in ipairs(res.models) do
            local r = m.results[i]
            add("-- " .. m.name .. " (" .. stats_line(r) .. ")")
            for _, l in ipairs(M.wrap(r.text, width)) do add(l) end
         end
      else
         -- three bands, each as tall as its tallest column: name, answer, figures
         local bands = { {}, {}, {} }
         for j, m in ipairs(res.models) do
            local r = m.results[i]
            bands[1][j] = M.wrap(m.name, colw)
            bands[1][j][#bands[1][j] + 1] = string.rep("-", math.min(colw, math.max(utf8.len(m.name) or #m.name, 3)))
            bands[2][j] = M.wrap(r.text, colw)
            bands[3][j] = M.wrap(stats_line(r), colw)
            table.insert(bands[3][j], 1, "")
         end
         for _, band in ipairs(bands) do
            local h = 0
            for j = 1, k do h = math.max(h, #band[j]) end
            for row = 1, h do
               local parts = {}
               for j = 1, k do parts[j] = pad(band[j][row] or "", colw) end
               add((table.concat(parts, " | "):gsub("%s+$", "")))
            end
         end
      end
      add("")
   end
   -- the summary: one line per model
   local namew = 5
   for _, m in ipairs(res.models) do namew = math.max(namew, utf8.len(m.name) or #m.name) end
   add(string.format("%-" .. namew .. "s  %9s  %9s  %7s%s", "model", "tok/s", "TTFT ms", "tokens",
      res.data and "  loss     perplexity" or ""))
   for _, m in ipairs(res.models) do
      local tail = ""
      if res.data then
         tail = m.loss and string.format("  %-7.4f  %.3f", m.loss, m.perplexity) or "  (no tokens to score)"
      end
      add(string.format("%s  %9.1f  %9.0f  %7d%s", pad(m.name, namew), m.tokens_per_s, m.ttft_ms,
         m.completion_tokens, tail))
   end
   if res.data then add(string.format("(loss and perplexity on the first %d rows of %s)", #res.prompts, res.data)) end
   return table.concat(out, "\n") .. "\n"
end

-- json(result) -> JSON text (arrays stay arrays when empty)
function M.json(res)
   local function arr(t) return setmetatable(t, { __jsontype = "array" }) end
   arr(res.prompts)
   arr(res.models)
   for _, m in ipairs(res.models) do
      arr(m.results)
      if m.lora then arr(m.lora) end
   end
   return json.encode(res, { indent = true })
end

return M
