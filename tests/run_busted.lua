-- Runs busted inside the moonhub host so specs can `require "moonhub"`.
-- Started by tests/run.sh as `./moonhub run tests/run_busted.lua [busted args]`.
require "busted.runner" ({ standalone = false })
