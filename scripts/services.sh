#!/usr/bin/env bash
# Local Kafka (Apache Kafka's own broker, KRaft, from Maven Central) and Redis, without Docker.
#
#   scripts/services.sh up [--started-file F]   start what is not running; list what it started in F
#   scripts/services.sh down [--from F]          stop what `up` started (all, or only those listed in F)
#   scripts/services.sh status
#
# EM_LOCAL_KAFKA_BROKERS=3 starts a three-node KRaft cluster instead of one broker (each node broker
# and controller; replication factor 3, min.insync.replicas 2 for every topic); point the worker at
# it with the EM_KAFKA_BOOTSTRAP and EM_REPLICATION_FACTOR that `up` prints.
#
# EM_LOCAL_REDIS_CLUSTER=true starts a three-master Redis Cluster on 127.0.0.1 instead of one
# redis-server: ports EM_LOCAL_REDIS_CLUSTER_PORT (default 7100), +1, +2 (and +10000 for the cluster
# bus), append-only files kept, so a restarted master comes back with its data; point the worker
# and the API at it with the EM_REDIS_URL and EM_REDIS_CLUSTER that `up` prints.
#
# EM_KAFKA_BOOTSTRAP / EM_REDIS_URL pointing at running servers: nothing is started for them, they are
# only checked. Everything lives under var/services (ignored by git); pid files make `down` stop
# exactly what `up` started and nothing else.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VAR="${EM_SERVICES_DIR:-$ROOT/var/services}"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/scripts/kafka/pom.xml")"
KAFKA_PORT="${EM_LOCAL_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${EM_LOCAL_KAFKA_CONTROLLER_PORT:-9093}"
REDIS_PORT="${EM_LOCAL_REDIS_PORT:-6379}"
KAFKA_HEAP="${EM_LOCAL_KAFKA_HEAP:-768m}"
KAFKA_BROKERS="${EM_LOCAL_KAFKA_BROKERS:-1}"
REDIS_CLUSTER="${EM_LOCAL_REDIS_CLUSTER:-false}"
REDIS_CLUSTER_PORT="${EM_LOCAL_REDIS_CLUSTER_PORT:-7100}"
LIBS="$ROOT/.cache/kafka-$KAFKA_VERSION/libs"
PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || PY=python3

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 1; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------- Kafka
kafka_resolve() {
  [ -f "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" ] && return 0
  command -v mvn >/dev/null || die "Maven is needed to fetch Apache Kafka $KAFKA_VERSION (apt-get install maven), or point EM_KAFKA_BOOTSTRAP at a running broker"
  command -v java >/dev/null || die "Java 17+ is needed to run Apache Kafka (apt-get install openjdk-17-jre-headless)"
  log "resolving Apache Kafka $KAFKA_VERSION from Maven Central into ${LIBS#"$ROOT"/}"
  mkdir -p "$LIBS.tmp"
  mvn -q -B -f "$ROOT/scripts/kafka/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$LIBS.tmp" -Dmdep.includeScope=runtime >&2 \
    || die "Maven could not resolve Kafka $KAFKA_VERSION (see output above)"
  rm -rf "$LIBS" && mv "$LIBS.tmp" "$LIBS"
}

# Node i (1-based) of the local Kafka: its directory and ports. One node lives in var/services/kafka on
# KAFKA_PORT/CONTROLLER_PORT; a cluster (EM_LOCAL_KAFKA_BROKERS=3) in var/services/kafka-cluster/node-i,
# on KAFKA_PORT+2(i-1) and CONTROLLER_PORT+2(i-1) (9092/9093, 9094/9095, 9096/9097 by default).
kafka_dir() { if [ "$KAFKA_BROKERS" = 1 ]; then echo "$VAR/kafka"; else echo "$VAR/kafka-cluster/node-$1"; fi; }
kafka_port() { echo $((KAFKA_PORT + 2 * ($1 - 1))); }
controller_port() { echo $((CONTROLLER_PORT + 2 * ($1 - 1))); }
kafka_bootstrap() {
  local i out=""
  for i in $(seq "$KAFKA_BROKERS"); do out="$out${out:+,}127.0.0.1:$(kafka_port "$i")"; done
  echo "$out"
}
kafka_pidfiles() { ls "$VAR"/kafka/kafka.pid "$VAR"/kafka-cluster/node-*/kafka.pid 2>/dev/null || true; }

JAVA=()
kafka_java() { # $1: node directory. Sets JAVA to the command line that runs a Kafka class there.
  JAVA=(java "-Xms256m" "-Xmx$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
        -Djava.awt.headless=true "-Dkafka.logs.dir=$1/logs"
        "-Dlog4j2.configurationFile=$ROOT/scripts/kafka/log4j2.xml" -cp "$LIBS/*")
}

kafka_launch() { # $1: node index, $2: cluster id. Renders, formats (first time) and starts the node.
  local i="$1" dir; dir="$(kafka_dir "$1")"
  local pid="$dir/kafka.pid" port; port="$(kafka_port "$i")"
  if alive "$pid"; then log "kafka node $i already running (pid $(cat "$pid"))"; return 1; fi
  if port_open "$port"; then
    die "port $port is taken by a process this script did not start; stop it or set EM_KAFKA_BOOTSTRAP to use it"
  fi
  local voters="" n replication=1 min_isr=1
  for n in $(seq "$KAFKA_BROKERS"); do voters="$voters${voters:+,}$n@127.0.0.1:$(controller_port "$n")"; done
  if [ "$KAFKA_BROKERS" != 1 ]; then replication="$KAFKA_BROKERS"; min_isr=2; fi
  mkdir -p "$dir/data" "$dir/logs"
  sed -e "s#@KAFKA_PORT@#$port#g" -e "s#@CONTROLLER_PORT@#$(controller_port "$i")#g" \
      -e "s#@DATA_DIR@#$dir/data#g" -e "s#@NODE_ID@#$i#g" -e "s#@VOTERS@#$voters#g" \
      -e "s#@REPLICATION@#$replication#g" -e "s#@MIN_ISR@#$min_isr#g" \
      "$ROOT/scripts/kafka/server.properties.in" > "$dir/server.properties"
  kafka_java "$dir"
  if [ ! -f "$dir/data/meta.properties" ]; then
    "${JAVA[@]}" kafka.tools.StorageTool format -t "$2" -c "$dir/server.properties" >"$dir/logs/format.log" 2>&1 \
      || die "formatting the Kafka storage of node $i failed: $(tail -n 5 "$dir/logs/format.log")"
  fi
  log "starting Apache Kafka $KAFKA_VERSION (KRaft, node $i of $KAFKA_BROKERS) on 127.0.0.1:$port"
  nohup "${JAVA[@]}" kafka.Kafka "$dir/server.properties" >"$dir/logs/stdout.log" 2>&1 &
  echo $! > "$pid"
  return 0
}

kafka_up() {
  case "$KAFKA_BROKERS" in 1|3|5) ;; *) die "EM_LOCAL_KAFKA_BROKERS must be 1, 3 or 5 (a KRaft quorum), not '$KAFKA_BROKERS'" ;; esac
  local other mine="" n
  for n in $(seq "$KAFKA_BROKERS"); do mine="$mine $(kafka_dir "$n")/kafka.pid"; done
  for other in $(kafka_pidfiles); do
    if alive "$other" && [[ " $mine " != *" $other "* ]]; then
      die "a Kafka of another shape is running ($other); run scripts/services.sh down first"
    fi
  done
  kafka_resolve
  local cluster_id="" i started=1 meta
  meta="$(kafka_dir 1)/data/meta.properties"
  [ -f "$meta" ] && cluster_id="$(sed -n 's/^cluster.id=//p' "$meta")"
  if [ -z "$cluster_id" ]; then
    kafka_java "$(kafka_dir 1)"
    cluster_id="$("${JAVA[@]}" kafka.tools.StorageTool random-uuid)"
  fi
  # A node of a cluster answers only once a quorum is up: start every node, then wait for each.
  for i in $(seq "$KAFKA_BROKERS"); do kafka_launch "$i" "$cluster_id" && started=0; done
  [ "$started" = 0 ] || return 1
  for i in $(seq "$KAFKA_BROKERS"); do
    local dir; dir="$(kafka_dir "$i")"
    if ! "$PY" "$ROOT/scripts/wait_ready.py" kafka "127.0.0.1:$(kafka_port "$i")" --timeout 120 --pid "$(cat "$dir/kafka.pid")"; then
      tail -n 20 "$dir/logs/stdout.log" "$dir/logs/server.log" >&2 || true
      die "Kafka node $i did not become ready; logs in ${dir#"$ROOT"/}/logs"
    fi
  done
  if [ "$KAFKA_BROKERS" != 1 ]; then
    log "a $KAFKA_BROKERS-broker cluster (replication $KAFKA_BROKERS, min.insync.replicas 2): use"
    log "  export EM_KAFKA_BOOTSTRAP=$(kafka_bootstrap) EM_REPLICATION_FACTOR=$KAFKA_BROKERS"
  fi
  return 0
}

# ---------------------------------------------------------------- Redis
redis_install() {
  if ! command -v redis-server >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      log "installing redis-server from Debian's packages"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >&2 \
        || die "apt-get install redis-server failed"
    else
      die "redis-server is missing: install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis) or set EM_REDIS_URL"
    fi
  fi
}

redis_up() {
  local dir="$VAR/redis" pid="$VAR/redis/redis.pid"
  if alive "$pid"; then log "redis already running (pid $(cat "$pid"))"; return 1; fi
  if port_open "$REDIS_PORT"; then
    die "port $REDIS_PORT is taken by a process this script did not start; stop it or set EM_REDIS_URL to use it"
  fi
  redis_install
  mkdir -p "$dir"
  log "starting redis-server on 127.0.0.1:$REDIS_PORT"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes --pidfile "$pid" \
    --dir "$dir" --logfile "$dir/redis.log" --save "" --appendonly no --protected-mode yes >&2
  "$PY" "$ROOT/scripts/wait_ready.py" redis "127.0.0.1:$REDIS_PORT" --timeout 30 \
    || die "Redis did not become ready; log in ${dir#"$ROOT"/}/redis.log"
  # redis-server writes its pid file itself, a moment after daemonizing.
  for _ in $(seq 50); do [ -s "$pid" ] && break; sleep 0.1; done
  return 0
}

# Node i (1-based, of 3) of the local Redis Cluster: var/services/redis-cluster/node-i, on
# REDIS_CLUSTER_PORT+i-1 (7100, 7101, 7102 by default; the cluster bus on the port + 10000).
redis_cluster_dir() { echo "$VAR/redis-cluster/node-$1"; }
redis_cluster_port() { echo $((REDIS_CLUSTER_PORT + $1 - 1)); }
redis_cluster_url() { echo "redis://127.0.0.1:$REDIS_CLUSTER_PORT/0"; }
redis_cluster_pidfiles() { ls "$VAR"/redis-cluster/node-*/redis.pid 2>/dev/null || true; }
redis_cluster_field() { # $1: port, $2: a CLUSTER INFO field. Prints its value (nothing when no answer).
  local info; info="$(redis-cli -h 127.0.0.1 -p "$1" cluster info 2>/dev/null || true)"
  sed -n "s/^$2://p" <<<"${info//$'\r'/}"
}

redis_cluster_up() {
  local i dir pid port started=1
  for i in 1 2 3; do
    dir="$(redis_cluster_dir "$i")"; pid="$dir/redis.pid"; port="$(redis_cluster_port "$i")"
    if alive "$pid"; then log "redis cluster node $i already running (pid $(cat "$pid"))"; continue; fi
    if port_open "$port" || port_open $((port + 10000)); then
      die "port $port or $((port + 10000)) is taken by a process this script did not start; stop it, set EM_LOCAL_REDIS_CLUSTER_PORT, or set EM_REDIS_URL to use a running server"
    fi
    redis_install
    mkdir -p "$dir"
    # Its own --dir: a restarted node finds its nodes.conf (its id, its slots) and its AOF there.
    log "starting redis-server (cluster node $i of 3) on 127.0.0.1:$port"
    redis-server --bind 127.0.0.1 --port "$port" --daemonize yes --pidfile "$pid" \
      --dir "$dir" --logfile "$dir/redis.log" --protected-mode yes \
      --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
      --appendonly yes --appendfsync everysec --save "" >&2
    started=0
  done
  [ "$started" = 0 ] || return 1
  for i in 1 2 3; do
    dir="$(redis_cluster_dir "$i")"; port="$(redis_cluster_port "$i")"
    "$PY" "$ROOT/scripts/wait_ready.py" redis "127.0.0.1:$port" --timeout 30 || {
      tail -n 20 "$dir/redis.log" >&2 || true
      die "Redis cluster node $i did not become ready; log in ${dir#"$ROOT"/}/redis.log"
    }
    for _ in $(seq 50); do [ -s "$dir/redis.pid" ] && break; sleep 0.1; done
  done
  local first; first="$(redis_cluster_port 1)"
  if [ "$(redis_cluster_field "$first" cluster_slots_assigned)" = 0 ]; then
    log "creating the cluster (3 masters, no replicas, 16384 slots)"
    local out
    out="$(redis-cli --cluster create "127.0.0.1:$first" "127.0.0.1:$(redis_cluster_port 2)" \
             "127.0.0.1:$(redis_cluster_port 3)" --cluster-replicas 0 --cluster-yes 2>&1)" \
      || die "redis-cli --cluster create failed: $(tail -n 5 <<<"$out")"
  fi
  for _ in $(seq 150); do
    [ "$(redis_cluster_field "$first" cluster_state)" = ok ] && return 0
    sleep 0.2
  done
  die "the Redis cluster is not ok after 30 s (state '$(redis_cluster_field "$first" cluster_state)', $(redis_cluster_field "$first" cluster_slots_assigned) slots assigned); logs in ${VAR#"$ROOT"/}/redis-cluster/node-*/redis.log, remove that directory to start afresh"
}

stop_pid() {
  local name="$1" pid="$2"
  if ! alive "$pid"; then rm -f "$pid"; return 0; fi
  local p; p="$(cat "$pid")"
  log "stopping $name (pid $p)"
  kill "$p" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$p" 2>/dev/null; then log "$name did not stop in 30 s; killing it"; kill -9 "$p" 2>/dev/null || true; fi
  rm -f "$pid"
}

external() { # $1: variable name; true when the user points it at a running server
  [ -n "${!1:-}" ]
}

cmd_up() {
  local started_file=""
  [ "${1:-}" = "--started-file" ] && started_file="$2"
  [ -n "$started_file" ] && : > "$started_file"
  if external EM_KAFKA_BOOTSTRAP; then
    log "EM_KAFKA_BOOTSTRAP=$EM_KAFKA_BOOTSTRAP: using that broker"
    "$PY" "$ROOT/scripts/wait_ready.py" kafka "$EM_KAFKA_BOOTSTRAP" --timeout 30 || die "no Kafka answers at $EM_KAFKA_BOOTSTRAP"
  elif kafka_up; then
    [ -n "$started_file" ] && echo kafka >> "$started_file"
  fi
  if external EM_REDIS_URL; then
    log "EM_REDIS_URL=$EM_REDIS_URL: using that server"
    "$PY" "$ROOT/scripts/wait_ready.py" redis "$EM_REDIS_URL" --timeout 30 || die "no Redis answers at $EM_REDIS_URL"
  elif [ "$REDIS_CLUSTER" = true ]; then
    if redis_cluster_up; then
      [ -n "$started_file" ] && echo redis-cluster >> "$started_file"
    fi
    log "a three-master Redis Cluster on 127.0.0.1:$(redis_cluster_port 1)-$(redis_cluster_port 3): use"
    log "  export EM_REDIS_URL=$(redis_cluster_url) EM_REDIS_CLUSTER=true"
  elif redis_up; then
    [ -n "$started_file" ] && echo redis >> "$started_file"
  fi
  return 0
}

cmd_down() {
  local only=""
  if [ "${1:-}" = "--from" ]; then
    [ -f "$2" ] || return 0
    only="$(cat "$2")"
  fi
  if [ -z "${1:-}" ] || grep -qx redis <<<"$only"; then stop_pid redis "$VAR/redis/redis.pid"; fi
  if [ -z "${1:-}" ] || grep -qx redis-cluster <<<"$only"; then
    # SIGTERM: each node flushes its AOF and saves nodes.conf, so `up` brings the same data back.
    local node
    for node in $(redis_cluster_pidfiles); do
      stop_pid "redis cluster ($(basename "$(dirname "$node")"))" "$node" &
    done
    wait
  fi
  if [ -z "${1:-}" ] || grep -qx kafka <<<"$only"; then
    # Every node at once: the last node of a cluster stopped alone waits for a quorum that is gone.
    local pid
    for pid in $(kafka_pidfiles); do stop_pid "kafka ($(basename "$(dirname "$pid")"))" "$pid" & done
    wait
  fi
}

cmd_status() {
  local pid any=""
  for pid in $(kafka_pidfiles); do
    if alive "$pid"; then any=1; echo "kafka ($(basename "$(dirname "$pid")")): running (pid $(cat "$pid"))"; fi
  done
  [ -n "$any" ] || echo "kafka: stopped"
  alive "$VAR/redis/redis.pid" && echo "redis: running (pid $(cat "$VAR/redis/redis.pid"))" || echo "redis: stopped"
  any=""
  for pid in $(redis_cluster_pidfiles); do
    if alive "$pid"; then
      any=1
      echo "redis cluster ($(basename "$(dirname "$pid")")): running (pid $(cat "$pid"))"
    fi
  done
  if [ -n "$any" ]; then
    local state; state="$(redis_cluster_field "$(redis_cluster_port 1)" cluster_state)"
    echo "redis cluster: cluster_state ${state:-unknown} at $(redis_cluster_url)"
  elif [ "$REDIS_CLUSTER" = true ]; then
    echo "redis cluster: stopped"
  fi
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  status) cmd_status ;;
  resolve) kafka_resolve ;;
  *) echo "usage: $0 up [--started-file F] | down [--from F] | status | resolve" >&2; exit 2 ;;
esac
