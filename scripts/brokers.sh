# Sourced by scripts/test and scripts/bench: makes sure a Kafka-protocol
# broker and RabbitMQ are reachable and exports
#   OPENIM_BRIDGE_TEST_KAFKA  bootstrap servers (a Tansu started here unless set)
#   OPENIM_BRIDGE_TEST_AMQP   AMQP URL (127.0.0.1:5672, started if down, unless set)
# A Tansu started here is stopped when the sourcing script exits.

TANSU_VERSION=0.6.0
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf 'scripts/test: %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_for_port() { # host port seconds what
  for _ in $(seq 1 $(($3 * 10))); do
    port_open "$1" "$2" && return 0
    sleep 0.1
  done
  log "$4 did not start listening on $1:$2 within $3 s"
  return 1
}

free_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
    return
  fi
  for _ in $(seq 1 100); do
    local port=$((20000 + RANDOM % 40000))
    port_open 127.0.0.1 "$port" || { echo "$port"; return; }
  done
  log "no free port found"
  return 1
}

tansu_pid=""
cleanup() { [ -n "$tansu_pid" ] && kill "$tansu_pid" 2>/dev/null || true; }
trap cleanup EXIT

install_tansu() {
  if ! tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    log "installing tansu $TANSU_VERSION (Kafka-compatible broker for the tests; built once and cached in ~/.cargo/bin)"
    cargo install tansu --locked --version "$TANSU_VERSION" --features dynostore
  fi
}

ensure_rabbitmq() {
  if [ -z "${OPENIM_BRIDGE_TEST_AMQP:-}" ]; then
    if ! port_open 127.0.0.1 5672; then
      if command -v rabbitmq-server >/dev/null; then
        log "starting RabbitMQ"
        rabbitmq-server -detached
        wait_for_port 127.0.0.1 5672 90 "rabbitmq"
      else
        log "RabbitMQ is not running on 127.0.0.1:5672 and not installed: install it (apt-get install rabbitmq-server) or set OPENIM_BRIDGE_TEST_AMQP"
        exit 1
      fi
    fi
    export OPENIM_BRIDGE_TEST_AMQP="amqp://guest:guest@127.0.0.1:5672/%2f"
  fi
}

# scripts/chaos runs its own Tansu: it only needs the functions above.
[ -n "${BROKERS_SH_FUNCTIONS_ONLY:-}" ] && return 0

if [ -z "${OPENIM_BRIDGE_TEST_KAFKA:-}" ]; then
  install_tansu
  port=$(free_port)
  url="tcp://127.0.0.1:$port"
  tansu_log=$(mktemp -t tansu.XXXXXX.log)
  tansu broker --listener-url "$url" --advertised-listener-url "$url" \
    --storage-engine memory://tansu/ >"$tansu_log" 2>&1 &
  tansu_pid=$!
  wait_for_port 127.0.0.1 "$port" 30 "tansu (log: $tansu_log)"
  export OPENIM_BRIDGE_TEST_KAFKA="127.0.0.1:$port"
  # The benchmark pauses this broker (SIGSTOP) to measure an outage.
  export OPENIM_BRIDGE_TANSU_PID="$tansu_pid"
  log "tansu $TANSU_VERSION on $OPENIM_BRIDGE_TEST_KAFKA (log: $tansu_log)"
fi

ensure_rabbitmq
