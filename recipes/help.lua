-- list every verb with its description, or show one verb's help
-- Layer: recipes (uses the public moonhub API only).
-- Usage: moonhub help [VERB]. Descriptions come from each recipe's first
-- line, `-- <one-line description>` (docs/cli.md).
local cli = require "moonhub.cli"

local verb = ...
return cli.help(verb)
