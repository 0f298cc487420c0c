#!/usr/bin/env bash
# Measures what a newcomer waits for (the times in the README): on a fresh
# clone of this checkout's HEAD in a scratch folder, `npm ci`, `npm start`
# until the relay says it started, `npx atrelay demo` until it shows the
# first event; then the same after `npm ci --omit=dev` (and checks that no
# dev dependency and no interop/ stack was installed). The checkout's own
# node_modules is not touched. Each command runs in its own process group,
# stopped by that group's id.
#   bash scripts/measure-install.sh [scratch dir, default /tmp/atrelay-fresh]
set -u
src="$(cd "$(dirname "$0")/.." && pwd)"
F="${1:-/tmp/atrelay-fresh}"
rm -rf "$F" && git clone -q "$src" "$F" && cd "$F" || exit 1
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
timed() { local s; s=$(now); "$@"; local rc=$?; echo "TIME $(since "$s") s rc=$rc :: $*"; }
# run_until LABEL PATTERN SIGNAL CMD...: start CMD in its own group, wait for PATTERN in its output, stop it
run_until() {
  local label=$1 pattern=$2 sig=$3; shift 3
  local log="$F/$label.log" s; s=$(now)
  setsid "$@" >"$log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 600); do grep -q "$pattern" "$log" && break; kill -0 $pid 2>/dev/null || break; sleep 0.2; done
  echo "TIME $(since "$s") s :: $label (until /$pattern/)"
  kill -"$sig" -- -"$pid" 2>/dev/null; wait "$pid"
  head -c 2000 "$log"; echo
}
check() {
  run_until "start-$1" 'relay started' TERM env RELAY_PORT=0 RELAY_METRICS_PORT=0 RELAY_DATA_DIR="$F/data-$1" npm start
  run_until "demo-$1" '^first event' TERM npx atrelay demo --port 0
}
timed npm ci --no-audit --no-fund
[ -e interop/node_modules ] && echo "UNEXPECTED: interop/node_modules installed"
check full
rm -rf node_modules dist
timed npm ci --omit=dev --no-audit --no-fund
for p in tsx @biomejs typescript; do [ -e "node_modules/$p" ] && echo "present: $p" || echo "absent: $p"; done
[ -e interop/node_modules ] && echo "UNEXPECTED: interop/node_modules installed"
du -sh node_modules
check omitdev
