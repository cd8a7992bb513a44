#!/bin/sh
# A demo service that crashes now and then, so that recovery has something to do.
trap 'echo "flaky-worker: stopping"; exit 0' TERM INT
lifetime=${FLAKY_LIFETIME:-45}
echo "flaky-worker: working, will crash in ${lifetime}s"
sleep "$lifetime" &
wait $!
echo "flaky-worker: simulated crash" >&2
exit 3
