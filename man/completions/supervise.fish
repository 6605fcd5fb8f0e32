complete --keep-order --exclusive --command supervise --arguments "(COMPLETE=fish supervise -- (commandline --current-process --tokenize --cut-at-cursor) (commandline --current-token))"
