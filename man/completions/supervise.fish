# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_supervise_global_optspecs
    string join \n socket= h/help V/version
end

function __fish_supervise_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_supervise_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_supervise_using_subcommand
    set -l cmd (__fish_supervise_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c supervise -n "__fish_supervise_needs_command" -l socket -d 'The control socket (default: $SUPERVISE_SOCKET, settings.socket, $XDG_RUNTIME_DIR/supervise.sock, /run/supervise.sock for root, /tmp/supervise-UID.sock)' -r -F
complete -c supervise -n "__fish_supervise_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c supervise -n "__fish_supervise_needs_command" -s V -l version -d 'Print version'
complete -c supervise -n "__fish_supervise_needs_command" -a "check" -d 'Validate the ecosystem file and print what would run; exit 1 with every error'
complete -c supervise -n "__fish_supervise_needs_command" -a "status" -d 'Show every instance: pid, state, restarts, uptime, cpu, memory, last exit, readiness'
complete -c supervise -n "__fish_supervise_needs_command" -a "logs" -d 'Print the last lines of output of all apps, an app, or one instance'
complete -c supervise -n "__fish_supervise_needs_command" -a "restart" -d 'Stop and start again (new pids). TARGET: all | APP | APP.N'
complete -c supervise -n "__fish_supervise_needs_command" -a "reload" -d 'Replace instances one at a time, each new one ready before the old one stops'
complete -c supervise -n "__fish_supervise_needs_command" -a "stop" -d 'Stop and hold stopped until `supervise start`'
complete -c supervise -n "__fish_supervise_needs_command" -a "start" -d 'Start what `stop` held, or what errored or finished'
complete -c supervise -n "__fish_supervise_needs_command" -a "diff" -d 'Show what applying CONFIG would change, app by app, without applying it (default: the running file as it is on disk now); exit 1 with located errors'
complete -c supervise -n "__fish_supervise_needs_command" -a "top" -d 'A full-screen live view: instances, cpu and memory history, last lines; keys to restart, reload, stop and start'
complete -c supervise -n "__fish_supervise_needs_command" -a "signal" -d 'Send a signal to the target\'s process groups, e.g. `supervise signal SIGUSR1 web`'
complete -c supervise -n "__fish_supervise_using_subcommand check" -l socket -d 'The control socket (default: $SUPERVISE_SOCKET, settings.socket, $XDG_RUNTIME_DIR/supervise.sock, /run/supervise.sock for root, /tmp/supervise-UID.sock)' -r -F
complete -c supervise -n "__fish_supervise_using_subcommand check" -s h -l help -d 'Print help'
complete -c supervise -n "__fish_supervise_using_subcommand status" -l socket -d 'The control socket (default: $SUPERVISE_SOCKET, settings.socket, $XDG_RUNTIME_DIR/supervise.sock, /run/supervise.sock for root, /tmp/supervise-UID.sock)' -r -F
complete -c supervise -n "__fish_supervise_using_subcommand status" -l json -d 'Print JSON for scripts instead of the table'
complete -c supervise -n "__fish_supervise_using_subcommand status" -s h -l help -d 'Print help'
complete -c supervise -n "__fish_supervise_using_subcommand logs" -s n -l lines -d 'How many lines' -r
complete -c supervise -n "__fish_supervise_using_subcommand logs" -l socket -d 'The control socket (default: $SUPERVISE_SOCKET, settings.socket, $XDG_RUNTIME_DIR/supervise.sock, /run/supervise.sock for root, /tmp/supervise-UID.sock)' -r -F
complete -c supervise -n "__fish_supervise_using_subcommand logs" -s f -l follow -d 'Keep printing new lines as they come'
complete -c supervise -n "__fish_supervise_using_subcommand logs" -s h -l help -d 'Print help'
complete -c supervise -n "__fish_supervise_using_subcommand restart" -l socket -d 'The control socket (default: $SUPERVISE_SOCKET, settings.socket, $XDG_RUNTIME_DIR/supervise.sock, /run/supervise.sock for root, /tmp/supervise-UID.sock)' -r -F
complete -c supervise -n "__fish_supervise_using_subcommand restart" -s h -l help -d 'Print help'
complete -c supervise -n "__fish_supervise_using_subcommand reload" -l socket -d 'The control socket (default: $SUPERVISE_SOCKET, settings.socket, $XDG_RUNTIME_DIR/supervise.sock, /run/supervise.sock for root, /tmp/supervise-UID.sock)' -r -F
complete -c supervise -n "__fish_supervise_using_subcommand reload" -s h -l help -d 'Print help'
complete -c supervise -n "__fish_supervise_using_subcommand stop" -l socket -d 'The control socket (default: $SUPERVISE_SOCKET, settings.socket, $XDG_RUNTIME_DIR/supervise.sock, /run/supervise.sock for root, /tmp/supervise-UID.sock)' -r -F
complete -c supervise -n "__fish_supervise_using_subcommand stop" -s h -l help -d 'Print help'
complete -c supervise -n "__fish_supervise_using_subcommand start" -l socket -d 'The control socket (default: $SUPERVISE_SOCKET, settings.socket, $XDG_RUNTIME_DIR/supervise.sock, /run/supervise.sock for root, /tmp/supervise-UID.sock)' -r -F
complete -c supervise -n "__fish_supervise_using_subcommand start" -s h -l help -d 'Print help'
complete -c supervise -n "__fish_supervise_using_subcommand diff" -l socket -d 'The control socket (default: $SUPERVISE_SOCKET, settings.socket, $XDG_RUNTIME_DIR/supervise.sock, /run/supervise.sock for root, /tmp/supervise-UID.sock)' -r -F
complete -c supervise -n "__fish_supervise_using_subcommand diff" -s h -l help -d 'Print help'
complete -c supervise -n "__fish_supervise_using_subcommand top" -l socket -d 'The control socket (default: $SUPERVISE_SOCKET, settings.socket, $XDG_RUNTIME_DIR/supervise.sock, /run/supervise.sock for root, /tmp/supervise-UID.sock)' -r -F
complete -c supervise -n "__fish_supervise_using_subcommand top" -s h -l help -d 'Print help'
complete -c supervise -n "__fish_supervise_using_subcommand signal" -l socket -d 'The control socket (default: $SUPERVISE_SOCKET, settings.socket, $XDG_RUNTIME_DIR/supervise.sock, /run/supervise.sock for root, /tmp/supervise-UID.sock)' -r -F
complete -c supervise -n "__fish_supervise_using_subcommand signal" -s h -l help -d 'Print help'
