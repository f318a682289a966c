#!/usr/bin/env bash
# Start, stop and describe the real servers the integration tests use:
# PostgreSQL, a single-node KRaft Kafka broker and an S3 server (Versity S3
# Gateway over a POSIX directory). All of them listen on 127.0.0.1 only.
#
#   scripts/services.sh up       provision what is missing, start what is not
#                                running, return once every server answered a
#                                real client (idempotent: a second run is fast);
#                                also installs Debian's chromium for the browser tests
#   scripts/services.sh down     stop the servers this script started
#   up and down also take service names (postgres, kafka, s3) to act on those
#   only, e.g. `down kafka` then `up kafka` for a broker outage in a fault test
#   scripts/services.sh status   print up/down for each server (exit 3 if any is down)
#   scripts/services.sh env      print export lines for a test run:
#                                    eval "$(scripts/services.sh env)"
#
# Works as root (CI) and as a normal user. Settings, all optional:
#   CHAT4ALL_STATE_DIR   data, logs, pid files   (default ~/.cache/chat4all/state)
#   CHAT4ALL_CACHE_DIR   downloaded jars, built binaries (default ~/.cache/chat4all)
#   CHAT4ALL_PG_PORT (15432), CHAT4ALL_KAFKA_PORT (19092),
#   CHAT4ALL_KAFKA_CONTROLLER_PORT (19093), CHAT4ALL_S3_PORT (17070)
#     All below the kernel's ephemeral port range (32768-60999 on Linux): a
#     client that keeps reconnecting to a stopped server on a port inside that
#     range can be handed that very port as its own source port, connect to
#     itself (TCP simultaneous open) and hold the port, so the server cannot
#     listen there again when it restarts.
#   CHAT4ALL_TEST_S3_ACCESS_KEY (chat4all), CHAT4ALL_TEST_S3_SECRET_KEY (chat4all-secret)
#   CHAT4ALL_READY_TIMEOUT   seconds each server may take to become ready (180; a broker
#                            killed with the machine replays its logs first)
set -euo pipefail

# ----------------------------------------------------------------------------
# Settings
# ----------------------------------------------------------------------------
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${CHAT4ALL_CACHE_DIR:-$HOME/.cache/chat4all}"
STATE_DIR="${CHAT4ALL_STATE_DIR:-$HOME/.cache/chat4all/state}"
HOST=127.0.0.1

PG_PORT="${CHAT4ALL_PG_PORT:-15432}"
KAFKA_PORT="${CHAT4ALL_KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${CHAT4ALL_KAFKA_CONTROLLER_PORT:-19093}"
S3_PORT="${CHAT4ALL_S3_PORT:-17070}"
S3_ACCESS_KEY="${CHAT4ALL_TEST_S3_ACCESS_KEY:-chat4all}"
S3_SECRET_KEY="${CHAT4ALL_TEST_S3_SECRET_KEY:-chat4all-secret}"
S3_REGION=us-east-1
READY_TIMEOUT="${CHAT4ALL_READY_TIMEOUT:-180}"

PG_DATABASES=(chat4all chat4all_test)
S3_BUCKETS=(chat4all chat4all-test)

# Pinned versions. Kafka's is in infra/kafka/pom.xml.
VERSITYGW_VERSION=v1.8.0

KAFKA_DIR="$STATE_DIR/kafka"
S3_DIR="$STATE_DIR/s3"
VERSITYGW_BIN="$CACHE_DIR/bin/versitygw-$VERSITYGW_VERSION"

# The Go toolchain of this machine kind lives outside the default PATH.
[[ -d /usr/local/go/bin ]] && PATH="$PATH:/usr/local/go/bin"

# ----------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------
log() { printf '[services] %s\n' "$*" >&2; }

die() {
    printf '[services] ERROR: %s\n' "$*" >&2
    exit 1
}

# die with the last lines of the given log files, so a CI log shows why.
die_with_log() {
    local message=$1 logfile
    shift
    for logfile in "$@"; do
        [[ -s "$logfile" ]] || continue
        printf '[services] ---- last lines of %s ----\n' "$logfile" >&2
        tail -n 40 "$logfile" >&2 || true
        printf '[services] ----\n' >&2
    done
    die "$message"
}

is_root() { [[ "$(id -u)" -eq 0 ]]; }

now() { date +%s.%N; }
since() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.1fs", e - s }'; }

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# True if the pid in file $1 is alive and its command line contains $2.
pid_running() {
    local pidfile=$1 marker=$2 pid
    [[ -f "$pidfile" ]] || return 1
    pid="$(cat "$pidfile")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker"
}

# Refuse to start a server on a port that something else already holds: the
# readiness probe would otherwise talk to that other server.
require_free_port() {
    local port=$1 what=$2
    warn_if_ephemeral "$port" "$what"
    if port_open "$port"; then
        die "$what: port $HOST:$port is already in use by a process this script did not start" \
            "(stop it, or choose another port with the CHAT4ALL_*_PORT variables)"
    fi
}

# A server on a port of the ephemeral range may not get its port back after a
# restart while clients retry it (see CHAT4ALL_PG_PORT above).
warn_if_ephemeral() {
    local port=$1 what=$2 low high
    read -r low high </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || return 0
    if ((port >= low && port <= high)); then
        log "WARNING: $what: port $port lies in the ephemeral port range $low-$high; a restart may find" \
            "it held by a client connected to itself. Choose a port below $low."
    fi
}

# A server of this state dir that runs on another address than the one asked
# for (servers started before the default ports moved, or with other
# CHAT4ALL_*_PORT values) is stopped, so that `up` starts it again where asked.
# $1 = service name, $2 = where it runs, $3 = where it should.
moved() {
    [[ -n "$2" && "$2" != "$3" ]] || return 1
    log "$1: running on $2, not on $3: restarting it there"
    "${1}_down"
}

# Start "$@" detached from this shell (own session, stdin from /dev/null,
# output to $logfile) and write its pid to $pidfile.
spawn() {
    local pidfile=$1 logfile=$2
    shift 2
    # 9>&-: the server must not inherit (and so hold forever) the lock of this script.
    setsid nohup "$@" </dev/null >>"$logfile" 2>&1 9>&- &
    echo $! >"$pidfile"
}

# Send SIGTERM to the process in $1, wait up to $2 seconds, then SIGKILL.
stop_pidfile() {
    local pidfile=$1 grace=$2 marker=$3 name=$4 pid i
    if ! pid_running "$pidfile" "$marker"; then
        rm -f "$pidfile"
        log "$name: not running"
        return 0
    fi
    pid="$(cat "$pidfile")"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name: still running after ${grace}s, killing pid $pid"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    log "$name: stopped (pid $pid)"
}

# The readiness probes use the project's own clients (aiokafka, boto3), so the
# project environment must exist. bootstrap.sh finds uv the way every script
# does (on PATH, else the copy it installs into the cache) and syncs the
# environment from uv.lock; scripts/test has done so already and exported $UV.
ensure_project_env() {
    if [[ -z "${UV:-}" || ! -x "$UV" ]]; then
        log "setting up uv and the project environment (scripts/bootstrap.sh)"
        # A shell of its own, so that errexit holds inside bootstrap.sh.
        UV="$(bash -c 'source "$1" >&2 && printf %s "$UV"' bootstrap "$REPO_DIR/scripts/bootstrap.sh")" ||
            die "scripts/bootstrap.sh could not set up uv and the project environment (its output is above)"
        export UV
    fi
    if project_python -c 'import aiokafka, boto3' 2>/dev/null; then
        return 0
    fi
    log "creating the project environment (uv sync --frozen)"
    (cd "$REPO_DIR" && "$UV" sync --frozen --quiet) >&2 || die "uv sync --frozen failed in $REPO_DIR"
    project_python -c 'import aiokafka, boto3' ||
        die "the project environment has no aiokafka/boto3 after uv sync"
}

# Python of the project's environment. --no-sync: never rewrite an environment
# that other runs may be using at the same moment.
project_python() {
    "$UV" run --no-sync --project "$REPO_DIR" python "$@"
}

# Install Debian packages when running as root; otherwise explain. The package
# lists are refreshed only when the install fails without it (an unknown or
# outdated package), so an up-to-date machine skips a slow apt-get update.
apt_install() {
    is_root || die "missing $*: install it (apt-get install $*) or run this script as root"
    log "installing $* with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "$@" >/dev/null 2>&1 && return 0
    apt-get update -qq >&2
    apt-get install -y -qq "$@" >&2
}

# Runs with several state dirs share one cache: the first to build a cached
# artifact holds this lock while the others wait. Call it in a subshell, so the
# lock goes with the subshell and no server inherits it.
take_cache_lock() {
    mkdir -p "$CACHE_DIR"
    exec 8>"$CACHE_DIR/build.lock"
    flock -w 1800 8 || die "another services.sh run holds $CACHE_DIR/build.lock"
}

take_lock() {
    mkdir -p "$STATE_DIR"
    exec 9>"$STATE_DIR/services.lock"
    flock -w 900 9 || die "another services.sh run holds $STATE_DIR/services.lock"
}

# ----------------------------------------------------------------------------
# PostgreSQL
# ----------------------------------------------------------------------------
PG_BIN=""
PG_ROOT=""   # holds data/ (the cluster), run/ (unix socket) and server.log

find_pg_bin() {
    local initdb
    initdb="$(printf '%s\n' /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)"
    [[ -x "$initdb" ]] || return 1
    PG_BIN="$(dirname "$initdb")"
}

ensure_pg_installed() {
    find_pg_bin && return 0
    apt_install postgresql
    find_pg_bin || die "postgres: installed the postgresql package but found no /usr/lib/postgresql/*/bin/initdb"
}

# Run a PostgreSQL server binary as the user that owns the cluster. The server
# refuses to run as root, so root runs it as the "postgres" OS user.
pg_as_owner() {
    if is_root; then
        (cd / && runuser -u postgres -- "$@" 9>&-)
    else
        "$@" 9>&-
    fi
}

ensure_postgres_user() {
    is_root || return 0
    id postgres >/dev/null 2>&1 && return 0
    log "postgres: creating the postgres OS user"
    useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
}

# Where the cluster lives. As a normal user: $STATE_DIR/postgres. As root the
# server runs as "postgres", which must be able to traverse every parent
# directory; the default state dir is under /root (mode 0700), and opening up
# root's home would be the wrong fix. So when postgres cannot reach the state
# dir, the cluster goes to /var/tmp/chat4all-pg/<hash of the state dir path>
# (/var/tmp: world-traversable, on disk, not wiped at boot; one cluster per
# state dir) and $STATE_DIR/postgres is a symlink to it. A missing symlink
# means the state dir was wiped, so a left-over cluster there is discarded too.
resolve_pg_root() {
    local link="$STATE_DIR/postgres" key target
    if ! is_root; then
        PG_ROOT="$link"
        mkdir -p "$PG_ROOT"
        chmod 0700 "$PG_ROOT"
        return
    fi
    if [[ -d "$link" && ! -L "$link" ]] || runuser -u postgres -- test -x "$STATE_DIR" 2>/dev/null; then
        PG_ROOT="$link"
        if [[ ! -e "$link" ]]; then
            mkdir -p "$link"
        fi
        chown postgres:postgres "$link"
        chmod 0700 "$link"
        return
    fi
    key="$(printf '%s' "$STATE_DIR" | sha256sum | cut -c1-12)"
    target="/var/tmp/chat4all-pg/$key"
    if [[ ! -L "$link" && -d "$target" ]]; then
        if pg_as_owner "$PG_BIN/pg_ctl" status -D "$target/data" >/dev/null 2>&1; then
            log "postgres: adopting the running cluster in $target"
        else
            log "postgres: state dir was reset, discarding the old cluster in $target"
            rm -rf "$target"
        fi
    fi
    mkdir -p /var/tmp/chat4all-pg
    chmod 0755 /var/tmp/chat4all-pg
    mkdir -p "$target"
    chown postgres:postgres "$target"
    chmod 0700 "$target"
    ln -sfn "$target" "$link"
    PG_ROOT="$target"
}

pg_running() {
    [[ -n "$PG_ROOT" && -f "$PG_ROOT/data/postmaster.pid" ]] || return 1
    pg_as_owner "$PG_BIN/pg_ctl" status -D "$PG_ROOT/data" >/dev/null 2>&1
}

psql_cmd() {
    PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PG_PORT" -U postgres "$@"
}

pg_wait_ready() {
    local deadline=$((SECONDS + READY_TIMEOUT))
    until "$PG_BIN/pg_isready" -q -h "$HOST" -p "$PG_PORT" -U postgres -d postgres -t 2 &&
        [[ "$(psql_cmd -d postgres -tAc 'select 1' 2>/dev/null)" == 1 ]]; do
        pg_running || die_with_log "postgres: the server exited during start-up" "$PG_ROOT/server.log"
        ((SECONDS < deadline)) || die_with_log "postgres: not ready on $HOST:$PG_PORT after ${READY_TIMEOUT}s" "$PG_ROOT/server.log"
        sleep 0.5
    done
}

pg_create_databases() {
    local db
    for db in "${PG_DATABASES[@]}"; do
        if [[ "$(psql_cmd -d postgres -tAc "select 1 from pg_database where datname = '$db'")" != 1 ]]; then
            psql_cmd -d postgres -c "create database \"$db\" owner postgres" >/dev/null
            log "postgres: created database $db"
        fi
    done
}

postgres_up() {
    local t0
    t0="$(now)"
    ensure_pg_installed
    ensure_postgres_user
    resolve_pg_root
    if pg_running && ! moved postgres "$(sed -n 4p "$PG_ROOT/data/postmaster.pid")" "$PG_PORT"; then
        pg_wait_ready
        pg_create_databases
        log "postgres: already running on $HOST:$PG_PORT ($(since "$t0"))"
        return
    fi
    if [[ ! -f "$PG_ROOT/data/PG_VERSION" ]]; then
        log "postgres: initdb in $PG_ROOT/data"
        rm -rf "$PG_ROOT/data"
        pg_as_owner "$PG_BIN/initdb" -D "$PG_ROOT/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 \
            >"$STATE_DIR/postgres-initdb.log" 2>&1 ||
            die_with_log "postgres: initdb failed" "$STATE_DIR/postgres-initdb.log"
    fi
    require_free_port "$PG_PORT" postgres
    pg_as_owner mkdir -p "$PG_ROOT/run"
    pg_as_owner "$PG_BIN/pg_ctl" start -w -t "$READY_TIMEOUT" -D "$PG_ROOT/data" -l "$PG_ROOT/server.log" \
        -o "-p $PG_PORT -k $PG_ROOT/run -c listen_addresses=$HOST -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        >/dev/null || die_with_log "postgres: pg_ctl start failed" "$PG_ROOT/server.log"
    pg_wait_ready
    pg_create_databases
    log "postgres: ready on $HOST:$PG_PORT ($(since "$t0"))"
}

postgres_down() {
    find_pg_bin || { log "postgres: not installed"; return 0; }
    [[ -e "$STATE_DIR/postgres" ]] || { log "postgres: not running"; return 0; }
    PG_ROOT="$(readlink -f "$STATE_DIR/postgres")"
    if pg_running; then
        pg_as_owner "$PG_BIN/pg_ctl" stop -D "$PG_ROOT/data" -m fast -w >/dev/null
        log "postgres: stopped"
    else
        log "postgres: not running"
    fi
}

postgres_status() {
    if find_pg_bin && [[ -e "$STATE_DIR/postgres" ]]; then
        PG_ROOT="$(readlink -f "$STATE_DIR/postgres")"
        if pg_running && "$PG_BIN/pg_isready" -q -h "$HOST" -p "$PG_PORT" -t 2; then
            echo "postgres  up    $HOST:$PG_PORT  data $PG_ROOT/data"
            return 0
        fi
    fi
    echo "postgres  down  $HOST:$PG_PORT"
    return 1
}

# ----------------------------------------------------------------------------
# Kafka
# ----------------------------------------------------------------------------
KAFKA_POM="$REPO_DIR/infra/kafka/pom.xml"

java_cmd() { echo "${JAVA_HOME:+$JAVA_HOME/bin/}java"; }

ensure_java() {
    command -v "$(java_cmd)" >/dev/null 2>&1 || apt_install openjdk-17-jre-headless
    command -v mvn >/dev/null 2>&1 || apt_install maven
    local major
    major="$("$(java_cmd)" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ { print $2 }')"
    [[ "${major%%.*}" -ge 17 ]] || die "kafka: needs Java 17 or newer, found $major (set JAVA_HOME)"
}

# Resolve the pinned jars from Maven Central once, cached by the pom's hash.
# Called as $(kafka_classpath): a subshell, as take_cache_lock wants.
kafka_classpath() {
    local key cpfile jar missing=0
    take_cache_lock
    key="$(sha256sum "$KAFKA_POM" | cut -c1-16)"
    cpfile="$CACHE_DIR/kafka/classpath-$key.txt"
    if [[ -s "$cpfile" ]]; then
        while IFS= read -r -d ':' jar; do
            [[ -f "$jar" ]] || { missing=1; break; }
        done < <(printf '%s:' "$(cat "$cpfile")")
        if ((missing == 0)); then
            cat "$cpfile"
            return
        fi
    fi
    log "kafka: resolving jars from Maven Central (first run only)"
    mkdir -p "$CACHE_DIR/kafka"
    mvn -B -q -Dstyle.color=never -f "$KAFKA_POM" -Dmaven.repo.local="$CACHE_DIR/m2" \
        dependency:build-classpath -Dmdep.includeScope=runtime -Dmdep.outputFile="$cpfile.tmp" \
        >"$CACHE_DIR/kafka/mvn.log" 2>&1 ||
        die_with_log "kafka: mvn could not resolve the jars of $KAFKA_POM" "$CACHE_DIR/kafka/mvn.log"
    mv "$cpfile.tmp" "$cpfile"
    cat "$cpfile"
}

render_kafka_config() {
    sed -e "s|@HOST@|$HOST|g" -e "s|@PORT@|$KAFKA_PORT|g" \
        -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" -e "s|@DATA_DIR@|$KAFKA_DIR/data|g" \
        "$REPO_DIR/infra/kafka/server.properties.template" >"$KAFKA_DIR/server.properties.tmp"
    mv "$KAFKA_DIR/server.properties.tmp" "$KAFKA_DIR/server.properties"
    cp "$REPO_DIR/infra/kafka/log4j2.yaml" "$KAFKA_DIR/log4j2.yaml"
}

kafka_java() {
    local cp=$1
    shift
    "$(java_cmd)" -cp "$cp" -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.yaml" \
        -Dkafka.logs.dir="$KAFKA_DIR/logs" "$@"
}

kafka_format() {
    local cp=$1 cluster_id
    [[ -f "$KAFKA_DIR/data/meta.properties" ]] && return 0
    if [[ ! -s "$KAFKA_DIR/cluster.id" ]]; then
        # A cluster id is 16 random bytes in unpadded URL-safe base64.
        head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$KAFKA_DIR/cluster.id"
    fi
    cluster_id="$(cat "$KAFKA_DIR/cluster.id")"
    log "kafka: formatting $KAFKA_DIR/data (cluster $cluster_id)"
    kafka_java "$cp" kafka.tools.StorageTool format -t "$cluster_id" \
        -c "$KAFKA_DIR/server.properties" --ignore-formatted >"$KAFKA_DIR/format.log" 2>&1 ||
        die_with_log "kafka: storage format failed" "$KAFKA_DIR/format.log"
}

kafka_running() { pid_running "$KAFKA_DIR/kafka.pid" "$KAFKA_DIR/server.properties"; }

# $1 = "started" when this run started the broker: on failure it is stopped
# again, so the next run starts afresh instead of adopting a broken one.
kafka_wait_ready() {
    local pid detail
    pid="$(cat "$KAFKA_DIR/kafka.pid")"
    if ! detail="$(project_python "$REPO_DIR/infra/probe.py" kafka "$HOST:$KAFKA_PORT" \
        --timeout "$READY_TIMEOUT" --pid "$pid")"; then
        [[ "${1:-}" == started ]] && kafka_down
        die_with_log "kafka: not ready on $HOST:$KAFKA_PORT (logs in $KAFKA_DIR)" \
            "$KAFKA_DIR/logs/server.log" "$KAFKA_DIR/stdout.log"
    fi
    log "kafka: $detail"
}

kafka_up() {
    local t0 cp
    t0="$(now)"
    mkdir -p "$KAFKA_DIR/data" "$KAFKA_DIR/logs"
    if kafka_running && ! moved kafka "$(sed -n 's/^listeners=//p' "$KAFKA_DIR/server.properties")" \
        "PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT"; then
        kafka_wait_ready
        log "kafka: already running on $HOST:$KAFKA_PORT ($(since "$t0"))"
        return
    fi
    rm -f "$KAFKA_DIR/kafka.pid"
    ensure_java
    require_free_port "$KAFKA_PORT" kafka
    require_free_port "$KAFKA_CONTROLLER_PORT" "kafka controller"
    cp="$(kafka_classpath)"
    render_kafka_config
    kafka_format "$cp"
    : >"$KAFKA_DIR/stdout.log"
    # Heap sized for tests on a small machine.
    spawn "$KAFKA_DIR/kafka.pid" "$KAFKA_DIR/stdout.log" \
        "$(java_cmd)" -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
        -cp "$cp" -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.yaml" -Dkafka.logs.dir="$KAFKA_DIR/logs" \
        kafka.Kafka "$KAFKA_DIR/server.properties"
    log "kafka: started pid $(cat "$KAFKA_DIR/kafka.pid"), waiting for a client to fetch metadata"
    kafka_wait_ready started
    log "kafka: ready on $HOST:$KAFKA_PORT ($(since "$t0"))"
}

kafka_down() {
    # A controlled shutdown of a single node takes a few seconds.
    stop_pidfile "$KAFKA_DIR/kafka.pid" 30 "$KAFKA_DIR/server.properties" kafka
}

kafka_status() {
    if kafka_running && port_open "$KAFKA_PORT"; then
        echo "kafka     up    $HOST:$KAFKA_PORT  pid $(cat "$KAFKA_DIR/kafka.pid")  logs $KAFKA_DIR/logs"
        return 0
    fi
    echo "kafka     down  $HOST:$KAFKA_PORT"
    return 1
}

# ----------------------------------------------------------------------------
# S3 (Versity S3 Gateway, POSIX backend)
# ----------------------------------------------------------------------------
ensure_versitygw() {
    [[ -x "$VERSITYGW_BIN" ]] && return 0
    (
        take_cache_lock
        [[ -x "$VERSITYGW_BIN" ]] || build_versitygw
    )
}

build_versitygw() {
    command -v go >/dev/null 2>&1 || die "s3: the Go toolchain is needed to build versitygw (no 'go' on PATH)"
    local t0 build="$CACHE_DIR/go"
    t0="$(now)"
    log "s3: building versitygw $VERSITYGW_VERSION (first run only, takes a few minutes)"
    mkdir -p "$CACHE_DIR/bin"
    # A private module and build cache, removed afterwards: only the binary is
    # kept. -modcacherw keeps the module cache deletable.
    rm -rf "$build"
    GOPATH="$build/path" GOMODCACHE="$build/mod" GOCACHE="$build/cache" GOFLAGS=-modcacherw \
        GOBIN="$build/bin" CGO_ENABLED=0 \
        go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" \
        >"$CACHE_DIR/versitygw-build.log" 2>&1 ||
        die_with_log "s3: go install github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION failed" \
            "$CACHE_DIR/versitygw-build.log"
    mv "$build/bin/versitygw" "$VERSITYGW_BIN"
    rm -rf "$build"
    log "s3: built $VERSITYGW_BIN ($(since "$t0"))"
}

s3_running() { pid_running "$S3_DIR/versitygw.pid" "$S3_DIR/data"; }

# The host:port the running gateway was started with (the value after --port).
s3_running_address() {
    tr '\0' '\n' <"/proc/$(cat "$S3_DIR/versitygw.pid")/cmdline" | grep -A1 -x -- --port | tail -n 1
}

# $1 = "started": as for kafka_wait_ready.
s3_wait_ready() {
    local pid detail bucket bucket_args=()
    pid="$(cat "$S3_DIR/versitygw.pid")"
    for bucket in "${S3_BUCKETS[@]}"; do bucket_args+=(--bucket "$bucket"); done
    if ! detail="$(project_python "$REPO_DIR/infra/probe.py" s3 "http://$HOST:$S3_PORT" \
        --access "$S3_ACCESS_KEY" --secret "$S3_SECRET_KEY" --region "$S3_REGION" \
        "${bucket_args[@]}" --timeout "$READY_TIMEOUT" --pid "$pid")"; then
        [[ "${1:-}" == started ]] && s3_down
        die_with_log "s3: not ready on $HOST:$S3_PORT" "$S3_DIR/versitygw.log"
    fi
    log "s3: $detail"
}

# The POSIX backend keeps object metadata in user xattrs; where the file
# system has none, it can keep it in a side-car directory instead.
s3_metadata_args() {
    if project_python -c 'import os, sys; os.setxattr(sys.argv[1], "user.chat4all", b"1")' "$S3_DIR/data" 2>/dev/null; then
        return
    fi
    mkdir -p "$S3_DIR/meta"
    echo "--sidecar"
    echo "$S3_DIR/meta"
}

s3_up() {
    local t0 meta_args
    t0="$(now)"
    mkdir -p "$S3_DIR/data"
    if s3_running && ! moved s3 "$(s3_running_address)" "$HOST:$S3_PORT"; then
        s3_wait_ready
        log "s3: already running on $HOST:$S3_PORT ($(since "$t0"))"
        return
    fi
    rm -f "$S3_DIR/versitygw.pid"
    ensure_versitygw
    require_free_port "$S3_PORT" s3
    mapfile -t meta_args < <(s3_metadata_args)
    # Keys through the environment, not the command line (visible in ps).
    ROOT_ACCESS_KEY_ID="$S3_ACCESS_KEY" ROOT_SECRET_ACCESS_KEY="$S3_SECRET_KEY" \
        spawn "$S3_DIR/versitygw.pid" "$S3_DIR/versitygw.log" \
        "$VERSITYGW_BIN" --port "$HOST:$S3_PORT" --region "$S3_REGION" --quiet \
        posix "${meta_args[@]}" "$S3_DIR/data"
    log "s3: started pid $(cat "$S3_DIR/versitygw.pid"), waiting for a signed request to succeed"
    s3_wait_ready started
    log "s3: ready on $HOST:$S3_PORT ($(since "$t0"))"
}

s3_down() { stop_pidfile "$S3_DIR/versitygw.pid" 10 "$S3_DIR/data" s3; }

s3_status() {
    if s3_running && port_open "$S3_PORT"; then
        echo "s3        up    $HOST:$S3_PORT  pid $(cat "$S3_DIR/versitygw.pid")  data $S3_DIR/data"
        return 0
    fi
    echo "s3        down  $HOST:$S3_PORT"
    return 1
}

# ----------------------------------------------------------------------------
# Chromium, for the browser tests (Playwright drives Debian's package; it never
# downloads a browser of its own)
# ----------------------------------------------------------------------------
chromium_path() { command -v chromium 2>/dev/null || echo /usr/bin/chromium; }

ensure_chromium() {
    [[ -x "$(chromium_path)" ]] && return 0
    is_root || die "chromium: the browser tests need Debian's chromium package: apt-get install chromium" \
        "(or run this script as root, which installs it)"
    apt_install chromium
    [[ -x "$(chromium_path)" ]] || die "chromium: installed the chromium package but found no chromium"
    log "chromium: installed $(chromium_path)"
}

# ----------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------
SERVICES=(postgres kafka s3)

# WANTED: the services named in "$@" (every one when none is named), in start order.
wanted() {
    local name
    for name in "$@"; do
        [[ " ${SERVICES[*]} " == *" $name "* ]] || die "unknown service '$name' (one of: ${SERVICES[*]})"
    done
    WANTED=()
    for name in "${SERVICES[@]}"; do
        if (($# == 0)) || [[ " $* " == *" $name "* ]]; then WANTED+=("$name"); fi
    done
}

cmd_up() {
    local t0 name
    t0="$(now)"
    wanted "$@"
    take_lock
    mkdir -p "$CACHE_DIR"
    ensure_project_env
    # The browser is for the whole test suite, not a server: `up kafka` (a fault test) skips it.
    (($# > 0)) || ensure_chromium
    for name in "${WANTED[@]}"; do "${name}_up"; done
    log "ready: ${WANTED[*]} ($(since "$t0")); for a test run: eval \"\$($0 env)\""
}

cmd_down() {
    local i
    wanted "$@"
    take_lock
    for ((i = ${#WANTED[@]} - 1; i >= 0; i--)); do "${WANTED[i]}_down"; done
}

cmd_status() {
    local rc=0
    postgres_status || rc=3
    kafka_status || rc=3
    s3_status || rc=3
    return "$rc"
}

cmd_env() {
    cat <<EOF
export CHAT4ALL_TEST_DATABASE_URL=postgresql+psycopg://postgres@$HOST:$PG_PORT/chat4all_test
export CHAT4ALL_TEST_KAFKA=$HOST:$KAFKA_PORT
export CHAT4ALL_TEST_S3_ENDPOINT=http://$HOST:$S3_PORT
export CHAT4ALL_TEST_S3_ACCESS_KEY=$S3_ACCESS_KEY
export CHAT4ALL_TEST_S3_SECRET_KEY=$S3_SECRET_KEY
export CHAT4ALL_TEST_S3_BUCKET=chat4all-test
export CHAT4ALL_TEST_S3_REGION=$S3_REGION
export CHAT4ALL_TEST_CHROMIUM=$(chromium_path)
EOF
}

main() {
    case "${1:-}" in
    up) shift && cmd_up "$@" ;;
    down) shift && cmd_down "$@" ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *)
        echo "usage: $0 up|down [postgres|kafka|s3]... | status | env" >&2
        exit 2
        ;;
    esac
}

main "$@"
