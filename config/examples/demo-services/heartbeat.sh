#!/bin/sh
# A critical demo service: reports that it is alive every few seconds until it is told to stop.
trap 'echo "heartbeat: stopping"; exit 0' TERM INT
interval=${HEARTBEAT_INTERVAL:-5}
beat=0
while :; do
    beat=$((beat + 1))
    echo "heartbeat: beat $beat"
    sleep "$interval" &
    wait $!
done
