-- Specs for `moonhub chat` driven through a pipe (stdin lines, stdout
-- checked), Ctrl-C through kill -INT on a fifo, and the --template option
-- of generate and show, user templates in $MOONHUB_HOME/templates included.
-- Layer: tests (runs the binary through helpers.host).
local data = require "helpers.data"
local H = require "helpers.host"
local q = H.q

local SMOL = "models/mh-smol-llama-17m-Q8_0.gguf"
local STORIES = "models/stories260K.gguf"

-- the stats lines of a chat transcript: { {generated, processed, of, interrupted}, ... }
local function stats(out)
   local list = {}
   for n, p, of, rest in out:gmatch("%[(%d+) tokens, [%d.]+ tok/s, prompt processed (%d+) of (%d+) tokens([^%]]*)%]") do
      list[#list + 1] = { tonumber(n), tonumber(p), tonumber(of), rest == ", interrupted" }
   end
   return list
end

-- a user template that leaves its rendered text in $MOONHUB_HOME/rendered
local MINE = [[
-- mine: a test template that records what it rendered
local T = require "moonhub.template"
return {
   name = "mine", description = "test template",
   stop = { "###" },
   render = function(messages, opts)
      local out = {}
      for _, m in ipairs(messages) do out[#out + 1] = "### " .. m.role .. ": " .. T.text(m.content) .. "\n" end
      if opts.add_generation_prompt then out[#out + 1] = "### assistant:" end
      local text = table.concat(out)
      local f = assert(io.open(os.getenv("MOONHUB_HOME") .. "/rendered", "w"))
      f:write(text)
      f:close()
      return text
   end,
}
]]

describe("moonhub chat #integration", function()
   local home
   before_each(function() home = H.tmpdir() end)
   after_each(function() H.rmdir(home) end)

   local function chat(rel, args, input)
      local model = data.need(rel, pending)
      if not model then return nil end
      return H.run(home, "chat " .. q(model) .. " " .. args, input)
   end

   it("streams answers with a stats line; turn 2 only processes the new suffix", function()
      local out, err, code = chat(SMOL, "--max-tokens 16 --seed 1 --system 'Be brief.'",
         "Hello there\nWhat next?\n")
      if not out then return end
      assert.are.equal(0, code, err)
      local st = stats(out)
      assert.are.equal(2, #st, out)
      assert.are.equal(st[1][2], st[1][3])          -- turn 1: everything is new
      assert.is_true(st[2][2] <= st[2][3] - st[1][3], out)   -- turn 2: not turn 1's prompt again
      assert.is_true(st[1][1] >= 1 and st[1][1] <= 16)
      assert.is_nil(out:find(">>>", 1, true))       -- no prompt when stdin is not a terminal
      local again = chat(SMOL, "--max-tokens 16 --seed 1 --system 'Be brief.'", "Hello there\nWhat next?\n")
      assert.are.equal(out:gsub("[%d.]+ tok/s", ""), again:gsub("[%d.]+ tok/s", ""))
   end)

   it("runs the commands and stops at /bye", function()
      local out, err, code = chat(STORIES, "--max-tokens 4 --seed 2",
         "/set temp 0.3\n/set top_p 2\n/set\n/system You tell stories.\n/help\nOnce upon a time\n"
         .. "/reset\n/template\n/bye\nnever sent\n")
      if not out then return end
      assert.are.equal(0, code, err)
      assert.matches("%[temp = 0.3%]", out)
      assert.matches("/set: top_p must be in %(0, 1%], got 2", err)
      assert.matches("%[max_tokens 4, min_p 0.05, repeat_penalty 1.0, seed 2, temp 0.3, top_k 40, top_p 0.95%]", out)
      assert.matches("%[system prompt set%]", out)
      assert.matches("/load FILE", out)
      assert.matches("%[conversation cleared%]", out)
      assert.matches("%[template: raw%]", out)
      assert.are.equal(1, #stats(out))              -- "never sent" was not answered
   end)

   it("/save and /load round-trip a conversation between two runs", function()
      local file = home .. "/conv.json"
      local out, err, code = chat(STORIES, "--max-tokens 3 --seed 1 --system Sys",
         "One day\nThen\n/save " .. file .. "\n")
      if not out then return end
      assert.are.equal(0, code, err)
      assert.matches("%[saved 5 messages to ", out)
      out, err, code = chat(STORIES, "--max-tokens 3", "/load " .. file .. "\n/save " .. file .. "2\n")
      assert.are.equal(0, code, err)
      assert.matches("%[loaded 5 messages from ", out)
      local json = require "dkjson"
      local a, b = json.decode(H.read(file)), json.decode(H.read(file .. "2"))
      assert.are.equal(5, #a.messages)
      assert.are.same({ role = "system", content = "Sys" }, a.messages[1])
      assert.are.same({ role = "user", content = "One day" }, a.messages[2])
      assert.are.same(a.messages, b.messages)
   end)

   it("accepts --template chatml and names the known templates on a bad one", function()
      local out, err, code = chat(STORIES, "--template chatml --max-tokens 3", "/template\nHi\n")
      if not out then return end
      assert.are.equal(0, code, err)
      assert.matches("%[template: built%-in chatml %(%-%-template%)%]", out)
      assert.are.equal(1, #stats(out))
      out, err, code = chat(STORIES, "--template nope", "Hi\n")
      assert.are.equal(2, code)
      assert.are.equal("", out)
      assert.matches("moonhub chat: template: unknown template 'nope' %(known: chatml, ", err)
   end)

   it("uses a user template from $MOONHUB_HOME/templates with --template mine", function()
      H.write(home .. "/templates/mine.lua", MINE)
      local out, err, code = chat(SMOL, "--template mine --max-tokens 3 --system S", "/template\nHi\n")
      if not out then return end
      assert.are.equal(0, code, err)
      assert.matches("%[template: user mine %(%-%-template%)%]", out)
      assert.are.equal("### system: S\n### user: Hi\n### assistant:", H.read(home .. "/rendered"))
   end)

   it("Ctrl-C stops an answer, keeps it, and the chat goes on", function()
      local model = data.need(SMOL, pending)
      if not model then return end
      -- The fifo keeps stdin open; SIGINT once the answer has started (out
      -- grows), then one more message, SIGINT while it waits for input, a
      -- third message and /bye. --ignore-eos and a long --max-tokens make
      -- the first answer run for seconds; every wait is bounded.
      local script = string.format([[
d=%s; mkfifo "$d/in" || exit 9
MOONHUB_HOME="$d" %s chat %s --ignore-eos --max-tokens 100000 --ctx 2048 --seed 3 \
   <"$d/in" >"$d/out" 2>"$d/err" &
pid=$!
exec 3>"$d/in"
echo 'Tell me a long story' >&3
i=0; while [ $(cat "$d/out" 2>/dev/null | wc -c) -lt 200 ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done
kill -INT $pid
echo '/set max_tokens 5' >&3
echo 'Short one' >&3
i=0; while [ $(grep -c processed "$d/out" 2>/dev/null) -lt 2 ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done
sleep 0.1
kill -INT $pid
sleep 0.1
echo 'Third' >&3
echo '/bye' >&3
exec 3>&-
i=0; while kill -0 $pid 2>/dev/null && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done
kill -KILL $pid 2>/dev/null
wait $pid
echo "rc=$?"
]], q(home), q(H.exe), q(model))
      local f = io.popen(script)
      local status = f:read("a")
      f:close()
      local out = H.read(home .. "/out")
      assert.are.equal("rc=0\n", status, H.read(home .. "/err"))
      local st = stats(out)
      assert.are.equal(3, #st, out)
      assert.is_true(st[1][4], out)                 -- the first answer was cut short
      assert.is_true(st[1][1] < 2048 - st[1][3])
      assert.is_false(st[2][4])
      assert.is_true(st[2][1] <= 5)
      assert.is_false(st[3][4])
      assert.matches("%[max_tokens = 5%]", out)
      -- the partial answer stayed in the history: turn 2 reuses its tokens
      assert.is_true(st[2][3] > st[1][3] + 10 and st[2][2] < st[2][3], out)
   end)
end)

describe("generate and show --template #integration", function()
   local home
   before_each(function() home = H.tmpdir() end)
   after_each(function() H.rmdir(home) end)

   it("generate --template chatml / mine / auto renders the prompt as a chat message", function()
      local model = data.need(SMOL, pending)
      if not model then return end
      local out, err, code = H.run(home, "generate " .. q(model) .. " 'Hi there' --template chatml -n 4 --seed 1")
      local _
      assert.are.equal(0, code, err)
      assert.matches("^prompt 11 tokens", err)       -- <|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n
      assert.is_true(#out > 1)
      local auto = H.run(home, "generate " .. q(model) .. " 'Hi there' --template auto -n 4 --seed 1")
      assert.are.equal(out, auto)                    -- the model's own is chatml
      H.write(home .. "/templates/mine.lua", MINE)
      _, err, code = H.run(home, "generate " .. q(model) .. " 'Hi' --template mine --system Sys -n 2")
      assert.are.equal(0, code, err)
      assert.are.equal("### system: Sys\n### user: Hi\n### assistant:", H.read(home .. "/rendered"))
      _, err, code = H.run(home, "generate " .. q(model) .. " 'Hi' --template nope")
      assert.are.equal(2, code)
      assert.matches("unknown template 'nope'", err)
      _, err, code = H.run(home, "generate " .. q(model) .. " 'Hi' --system Sys")
      assert.are.equal(2, code)
      assert.matches("%-%-system needs %-%-template", err)
   end)

   it("show prints which template chat would use", function()
      local smol, stories = data.need(SMOL, pending), data.need(STORIES, pending)
      if not (smol and stories) then return end
      local out = H.run(home, "show " .. q(smol))
      assert.matches("chat template%s+built%-in chatml %(detected%)\n", out)
      out = H.run(home, "show " .. q(stories))
      assert.matches("chat template%s+raw\n", out)
      H.write(home .. "/templates/mine.lua", MINE)
      out = H.run(home, "show " .. q(stories) .. " --template mine")
      assert.matches("chat template%s+user mine %(%-%-template%)\n", out)
      local _, err, code = H.run(home, "show " .. q(stories) .. " --template nope")
      assert.are.equal(2, code)
      assert.matches("unknown template 'nope'", err)
   end)
end)
