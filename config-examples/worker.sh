#!/bin/sh
# A demo worker for config-examples/ecosystem.toml: prints a tick every second and now and
# then (about one tick in eight) "crashes" with exit code 1, so you can watch supervise
# restart it with backoff.
n=0
while :; do
    n=$((n + 1))
    echo "worker $SUPERVISE_INSTANCE ($WORKER_ID of app $SUPERVISE_APP): tick $n, greeting: $GREETING"
    r=$(od -An -N1 -tu1 /dev/urandom | tr -d ' ')
    if [ $((r % 8)) -eq 0 ]; then
        echo "worker $SUPERVISE_INSTANCE: simulated crash after $n ticks" >&2
        exit 1
    fi
    sleep 1
done
