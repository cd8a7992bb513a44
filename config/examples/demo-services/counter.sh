#!/bin/sh
# A demo service that keeps a count across its own crashes in tau-monitor's session state, with nothing but
# busctl: it loads the count when it starts, saves it after every step, and crashes now and then.
trap 'echo "counter: stopping at $count"; exit 0' TERM INT
case "${TAU_MONITOR_BUS:-system}" in
system) bus=--system ;;
session) bus=--user ;;
*) bus="--address=$TAU_MONITOR_BUS" ;;
esac
state() {
    busctl "$bus" call org.tauos.Recovery1 /org/tauos/Recovery1 org.tauos.Recovery1 "$@"
}

# LoadState answers "aytt N BYTE... VERSION SAVED_AT"; the bytes are the count's decimal digits in ASCII.
count=0
if reply=$(state LoadState 2>/dev/null); then
    set -- $reply
    length=$2
    shift 2
    count=0
    while [ "$length" -gt 0 ]; do
        count=$((count * 10 + $1 - 48))
        shift
        length=$((length - 1))
    done
fi
echo "counter: resuming at $count"

steps=${COUNTER_STEPS_BEFORE_CRASH:-20}
while [ "$steps" -gt 0 ]; do
    count=$((count + 1))
    digits=$(printf '%s' "$count" | od -An -tu1)
    # shellcheck disable=SC2086 # one argument per byte
    state SaveState ay ${#count} $digits >/dev/null || echo "counter: could not save $count" >&2
    echo "counter: $count"
    steps=$((steps - 1))
    sleep "${COUNTER_INTERVAL:-1}" &
    wait $!
done
echo "counter: simulated crash at $count" >&2
exit 4
