-- moonhub.edit_distance: the Levenshtein distance behind every "did you
-- mean" (unknown verbs and options in moonhub.cli, registry names in
-- moonhub.models). Layer: lua/moonhub (pure Lua, no dependencies).

-- distance(a, b) -> edits between a and b, case-insensitive; huge for words
-- over 64 bytes (no user types those, and the table stays small)
return function(a, b)
   a, b = a:lower(), b:lower()
   if #a > 64 or #b > 64 then return math.huge end
   local prev = {}
   for j = 0, #b do prev[j] = j end
   for i = 1, #a do
      local cur = { [0] = i }
      for j = 1, #b do
         cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a:byte(i) == b:byte(j) and 0 or 1))
      end
      prev = cur
   end
   return prev[#b]
end
