-- busted output handler: the plain terminal report, then the closing line
-- "N passed, N failed" that tests/run.sh and CI read (errors count as failed).
return function(options)
   local busted = require "busted"
   local handler = require "busted.outputHandlers.plainTerminal" (options)
   busted.subscribe({ "suite", "end" }, function()
      io.write(string.format("%d passed, %d failed, %d skipped\n",
         handler.successesCount, handler.failuresCount + handler.errorsCount,
         handler.pendingsCount))
      io.flush()
      return nil, true
   end)
   return handler
end
