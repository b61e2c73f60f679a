# Shared by scripts/bench-wrk and scripts/bench-ab (sourced): wrk, the CPU
# a process used, and the address a server printed.

command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null 2>&1 ||
  { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

# resolve_server BINARY: sets `server` to the program to run for BINARY,
# with OPENIM_BRIDGE_BENCH_BARE exported for it or not. `bare` is the bare
# server (benches/e2e/bare.rs: the end-to-end benchmark's binary with that
# variable set, built on first use); anything else is a bridge build, run
# as it is.
resolve_server() {
  if [ "$1" = bare ]; then
    if [ -z "${bare_bin:-}" ]; then
      bare_bin=$(cargo bench --bench e2e --no-run 2>&1 |
        sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1)
      [ -x "$bare_bin" ] || { echo "could not build the bare server (cargo bench --bench e2e --no-run)" >&2; exit 1; }
    fi
    server=$bare_bin
    export OPENIM_BRIDGE_BENCH_BARE=1
  else
    server=$1
    unset OPENIM_BRIDGE_BENCH_BARE
  fi
}

# user_system PID: user and system CPU of a process so far, in clock ticks
# (fields 14 and 15 of /proc/PID/stat, counted after the process name,
# which may hold spaces); nothing once the process is gone.
user_system() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12, $13}'; }

# ticks PID: CPU (user + system) of a process so far, in clock ticks; 0
# once it is gone.
ticks() { user_system "$1" | awk '{print $1 + $2} END { if (NR == 0) print 0 }'; }

# wait_for_url LOG: the address a server printed ("listening on http://...").
wait_for_url() {
  local url=""
  for _ in $(seq 100); do
    url=$(grep -o 'http://[0-9.]*:[0-9]*' "$1" | head -1 || true)
    [ -n "$url" ] && break
    sleep 0.1
  done
  [ -n "$url" ] || { echo "no address in $1: $(cat "$1")" >&2; exit 1; }
  echo "$url"
}

# wrk_requests NAME SECONDS URL: callbacks (scripts/wrk-callback.lua) on 32
# connections for SECONDS; prints how many were answered, or fails when
# none were.
wrk_requests() {
  local requests
  requests=$(wrk -t1 -c32 -d"$2"s -s scripts/wrk-callback.lua "$3" | awk '/requests in/ {print $1}')
  if ! [ "${requests:-0}" -gt 0 ] 2>/dev/null; then
    echo "wrk got no replies from $1 at $3" >&2
    exit 1
  fi
  echo "$requests"
}
