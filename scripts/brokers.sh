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
tls_rabbitmq_dir=""
cleanup() {
  [ -n "$tansu_pid" ] && kill "$tansu_pid" 2>/dev/null
  if [ -n "$tls_rabbitmq_dir" ]; then
    rabbitmqctl -n tls@localhost stop >/dev/null 2>&1
    rm -rf "$tls_rabbitmq_dir"
  fi
  true
}
trap cleanup EXIT

install_tansu() {
  if ! tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    log "installing tansu $TANSU_VERSION (Kafka-compatible broker for the tests; built once and cached in ~/.cargo/bin)"
    cargo install tansu --locked --version "$TANSU_VERSION" --features dynostore
  fi
}

# PostgreSQL for openim-sync's tests: $OPENIM_SYNC_TEST_POSTGRES if set,
# otherwise the machine's on 127.0.0.1:5432 (trust auth, database test),
# started if it is down and installed (Debian's package) if it is missing.
ensure_postgres() {
  if [ -n "${OPENIM_SYNC_TEST_POSTGRES:-}" ]; then
    return
  fi
  if ! port_open 127.0.0.1 5432; then
    if ! command -v pg_ctlcluster >/dev/null; then
      log "installing PostgreSQL (Debian's package) for openim-sync's tests"
      apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
    fi
    log "starting PostgreSQL"
    cluster=$(pg_lsclusters -h 2>/dev/null | awk 'NR==1 {print $1" "$2}')
    if [ -n "$cluster" ]; then
      pg_ctlcluster $cluster start || true
    else
      service postgresql start || true
    fi
    wait_for_port 127.0.0.1 5432 60 "postgresql"
  fi
  export OPENIM_SYNC_TEST_POSTGRES="postgres://postgres@127.0.0.1:5432/test"
}

# HAProxy for the pipeline test (the shipped config in front of bridges).
ensure_haproxy() {
  if ! command -v haproxy >/dev/null; then
    log "installing haproxy (Debian package) for the deploy and pipeline tests"
    apt-get install -y -qq haproxy >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq haproxy >/dev/null; }
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

# A second RabbitMQ node, tls@localhost, beside the machine's own (which it
# does not touch): an amqps:// listener with a test CA (client certificates
# optional; EXTERNAL login maps a certificate's CN to a user) and a plain
# listener on the same node for side-by-side measurements. Exports
#   OPENIM_BRIDGE_TEST_AMQPS        amqps://guest:guest@localhost:PORT/%2f
#   OPENIM_BRIDGE_TEST_AMQPS_CA     the CA that signed its certificate
#   OPENIM_BRIDGE_TEST_AMQPS_CLIENT client certificate (CN=guest), PEM, and
#   OPENIM_BRIDGE_TEST_AMQPS_CLIENT_KEY  its key
#   OPENIM_BRIDGE_TEST_AMQPS_PLAIN  amqp:// URL of the same node
# It starts in about 11 s and is stopped when the sourcing script exits.
start_tls_rabbitmq() {
  [ -n "${OPENIM_BRIDGE_TEST_AMQPS:-}" ] && return 0
  if ! command -v rabbitmq-server >/dev/null || ! command -v openssl >/dev/null; then
    log "rabbitmq-server and openssl are needed for the amqps:// tests (apt-get install rabbitmq-server openssl), or set OPENIM_BRIDGE_TEST_AMQPS*"
    exit 1
  fi
  # Files must be readable by the rabbitmq user: not under a private home.
  local dir
  dir=$(mktemp -d /tmp/openim-bridge-rabbitmq-tls.XXXXXX)
  tls_rabbitmq_dir=$dir
  chmod 755 "$dir"
  local tls_port plain_port dist_port
  tls_port=$(free_port); plain_port=$(free_port); dist_port=$(free_port)
  (
    cd "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
      -subj "/CN=openim-bridge test CA"
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost"
    printf "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n" >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
      -days 2 -extfile server.ext
    openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=guest"
    printf "extendedKeyUsage=clientAuth\n" >client.ext
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem \
      -days 2 -extfile client.ext
    cat >rabbitmq.conf <<CONF
listeners.tcp.default = 127.0.0.1:$plain_port
listeners.ssl.default = 127.0.0.1:$tls_port
ssl_options.cacertfile = $dir/ca.pem
ssl_options.certfile = $dir/server.pem
ssl_options.keyfile = $dir/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
auth_mechanisms.1 = PLAIN
auth_mechanisms.2 = AMQPLAIN
auth_mechanisms.3 = EXTERNAL
ssl_cert_login_from = common_name
CONF
    echo "[rabbitmq_auth_mechanism_ssl]." >enabled_plugins
    : >empty.env
    chmod 644 ./*
  ) >"$dir/openssl.log" 2>&1 || { log "creating the test certificates failed: $dir/openssl.log"; exit 1; }
  chown -R rabbitmq:rabbitmq "$dir" 2>/dev/null || true
  log "starting RabbitMQ node tls@localhost (amqps on $tls_port, amqp on $plain_port)"
  env RABBITMQ_NODENAME=tls@localhost RABBITMQ_NODE_PORT="$plain_port" RABBITMQ_DIST_PORT="$dist_port" \
    RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log" RABBITMQ_PID_FILE="$dir/pid" \
    RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" RABBITMQ_CONF_ENV_FILE="$dir/empty.env" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
    rabbitmq-server -detached >"$dir/start.log" 2>&1
  if ! rabbitmqctl -n tls@localhost wait "$dir/pid" --timeout 90 >>"$dir/start.log" 2>&1; then
    log "RabbitMQ node tls@localhost did not start: $dir/start.log and $dir/log/"
    tls_rabbitmq_dir="" # keep the logs
    exit 1
  fi
  export OPENIM_BRIDGE_TEST_AMQPS="amqps://guest:guest@localhost:$tls_port/%2f"
  export OPENIM_BRIDGE_TEST_AMQPS_CA="$dir/ca.pem"
  export OPENIM_BRIDGE_TEST_AMQPS_CLIENT="$dir/client.pem"
  export OPENIM_BRIDGE_TEST_AMQPS_CLIENT_KEY="$dir/client.key"
  export OPENIM_BRIDGE_TEST_AMQPS_PLAIN="amqp://guest:guest@127.0.0.1:$plain_port/%2f"
}

# scripts/chaos runs its own Tansu: it only needs the functions above.
[ -n "${BROKERS_SH_FUNCTIONS_ONLY:-}" ] && return 0

# Tests of broker outages and of Kafka over TLS/SASL run Tansu brokers of
# their own, also when OPENIM_BRIDGE_TEST_KAFKA names an external Kafka.
install_tansu
if [ -z "${OPENIM_BRIDGE_TEST_KAFKA:-}" ]; then
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
start_tls_rabbitmq

ensure_postgres
ensure_haproxy
