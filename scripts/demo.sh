#!/usr/bin/env bash
# Installs what is missing, builds, and runs tau-monitor in the foreground with the demo configuration,
# supervising the demo services in config/examples/demo-services. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
root=$(pwd)
bin=$root/build/services/tau-monitor
cli=$root/build/cli/tau-monitor-cli

# As root on a machine with a system bus, the daemon takes the system bus, whose policy must let it own the
# org.tauos names.
if [ "$(id -u)" -eq 0 ] && [ -S /run/dbus/system_bus_socket ] && [ ! -e /etc/dbus-1/system.d/org.tauos.conf ]; then
  install -m 0644 config/dbus/org.tauos.conf /etc/dbus-1/system.d/org.tauos.conf
  echo "installed the D-Bus policy /etc/dbus-1/system.d/org.tauos.conf"
fi

cat <<MSG

tau-monitor is starting with config/examples/demo.toml. In another terminal, try:

  $cli health --detailed
  $cli processes --tree
  $cli resources
  $cli resources --thresholds
  $cli resources --history memory_used_percent --since 300
  $cli recovery --history
  $cli logs --recent --count 20
  $cli --format json processes
  $cli restart flaky-worker

  busctl --address="\$(cat /run/tau-monitor/bus-address)" tree org.tauos.Processes1
  busctl --address="\$(cat /run/tau-monitor/bus-address)" introspect org.tauos.Health1 /org/tauos/Health1
  (on the system bus, when the daemon chose it: busctl tree org.tauos.Processes1)

  Prometheus metrics: http://127.0.0.1:9102/metrics

Stop with Ctrl-C.

MSG
exec "$bin" --foreground --config "$root/config/examples/demo.toml"
