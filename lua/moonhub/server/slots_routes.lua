-- moonhub.server.slots_routes: llama-server's slot state routes: POST
-- /slots/{id}?action=save|restore|erase with {"filename": "NAME"}; files live
-- under serve --slot-save-path DIR (names only: no folders, no traversal).
-- Answers with llama-server's fields (n_saved/n_written, n_restored/n_read,
-- n_erased, timings). Layer: lua/moonhub (uses moonhub.openai, moonhub.sched
-- through the app's pool). See docs/kv-state.md.
local oa = require "moonhub.openai"

local M = {}

local JSON = { ["Content-Type"] = "application/json" }
local function now() return require("moonhub.core.sys").now() end

-- A file name under the slot dir: letters, digits, '.', '_' and '-', not
-- starting with a dot, at most 200 bytes (so never "..", "/x" or "a/../b").
function M.valid_filename(name)
   if type(name) ~= "string" or name == "" then return nil, "'filename' must be a non-empty string" end
   if #name > 200 then return nil, "'filename' is longer than 200 bytes" end
   if not name:match("^[%w_%-][%w._%-]*$") then
      return nil, string.format("'filename' %q must be a plain file name (letters, digits, '.', '_', '-'; "
         .. "no folders)", name)
   end
   return name
end

local ACTIONS = { save = true, restore = true, erase = true }

-- One action on slot id of the model the body names (default: serve's).
local function slot_action(app, req, id)
   local action = req.args and req.args.action
   if not ACTIONS[action] then
      oa.fail(400, string.format("'action' must be save, restore or erase, got %s",
         action and string.format("%q", action) or "none"), "action")
   end
   local slot = id:match("^%d+$") and math.tointeger(tonumber(id))
   if not slot then oa.fail(400, string.format("the slot id must be an integer >= 0, got %q", id), "id_slot") end
   local body = (req.body or "") ~= "" and oa.decode(req.body) or {}
   local dir, path, filename = app.opts.slot_save_path, nil, nil
   if action ~= "erase" then
      if not dir then
         oa.fail(501, "this server does not save slots: start it with --slot-save-path DIR", nil,
            "not_supported_error")
      end
      local err
      filename, err = M.valid_filename(body.filename)
      if not filename then oa.fail(400, err, "filename") end
      path = dir .. "/" .. filename
   end
   return app:with_model({ model = oa.opt_string(body, "model") }, function(view)
      if slot >= (view.entry and view.entry.parallel or 1) then
         oa.fail(400, string.format("slot %d does not exist: the server has %d (0..%d)", slot,
            view.entry.parallel, view.entry.parallel - 1), "id_slot")
      end
      local t0 = now()
      if action == "erase" then
         local n, err = view.sched:erase_slot(slot)
         if not n then oa.fail(400, err, "id_slot") end
         return 200, JSON, oa.encode({ id_slot = slot, n_erased = n })
      end
      local f = action == "save" and view.sched.save_slot or view.sched.restore_slot
      local n, bytes = f(view.sched, slot, path)
      if not n then
         local status = bytes:find("cannot open", 1, true) and 404 or 400
         oa.fail(status, (tostring(bytes):gsub(dir:gsub("%p", "%%%0") .. "/", "")),
            bytes:find("^slot %d") and "id_slot" or "filename")
      end
      local ms = (now() - t0) * 1000
      if action == "save" then
         return 200, JSON, oa.encode({ id_slot = slot, filename = filename, n_saved = n, n_written = bytes,
            timings = { save_ms = ms } })
      end
      return 200, JSON, oa.encode({ id_slot = slot, filename = filename, n_restored = n, n_read = bytes,
         timings = { restore_ms = ms } })
   end)
end

M.ROUTES = {
   { "POST", "/slots/{id}", slot_action, json = true, max_body = 65536 },
}

return M
