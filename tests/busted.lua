-- Runs busted inside the moonhub host so specs can `require "moonhub"`.
-- Started by tests/run.sh as `./moonhub run tests/busted.lua [busted args]`.
package.path = "tests/?.lua;" .. package.path
require "busted.runner" ({ standalone = false })
