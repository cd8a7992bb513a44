#!/bin/sh
# A demo service with children of its own, to show a process tree.
trap 'kill $workers 2>/dev/null; exit 0' TERM INT
workers=""
for n in 1 2; do
    (while :; do sleep 30; done) &
    workers="$workers $!"
done
echo "batch-queue: started workers$workers"
while :; do
    sleep 60 &
    wait $!
done
