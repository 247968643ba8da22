#!/usr/bin/env bash
# The services the scaled-out tests use, on this machine, bound to 127.0.0.1 only:
#   PostgreSQL (Iceberg JDBC catalog, Dagster instance storage, CDC source; wal_level=logical)
#   Redis      (online feature store)
# The embedded default (`make run`) needs none of this.
#
#   deploy/local/services.sh start             install where missing (Debian's packages), start both
#   deploy/local/services.sh restart-postgres  restart PostgreSQL (e.g. after ALTER SYSTEM)
#   deploy/local/services.sh status            exit 0 when both answer on 127.0.0.1
#   deploy/local/services.sh stop              stop both
#
# Idempotent: run it as often as you like; it changes only what is missing or different.
# Installing needs root (or sudo) and apt; starting needs only what installing left behind.
# Local connections over TCP from 127.0.0.1 are trusted (user `postgres`, no password): this is a
# developer's and CI's throwaway server, never the compose stack's (deploy/compose.yaml).
set -euo pipefail

PG_PORT=${LAKEHOUSE_PG_PORT:-5432}
REDIS_PORT=${LAKEHOUSE_REDIS_PORT:-6379}
REDIS_DIR=${LAKEHOUSE_REDIS_DIR:-/var/lib/lakehouse-redis}
MARK="# lakehouse: local services (deploy/local/services.sh)"

log() { printf 'services: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"
    else die "need root (or passwordless sudo) to run: $*"; fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {  # port, what, seconds
    local i
    for ((i = 0; i < $3 * 4; i++)); do port_open "$1" && return 0; sleep 0.25; done
    die "$2 did not answer on 127.0.0.1:$1 within $3 s"
}

pg_version() { ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1; }

install_missing() {
    local pkgs=()
    [ -n "$(pg_version)" ] && [ -x "/usr/lib/postgresql/$(pg_version)/bin/postgres" ] || pkgs+=(postgresql)
    command -v pg_ctlcluster >/dev/null || pkgs+=(postgresql-common)
    command -v redis-server >/dev/null || pkgs+=(redis-server)
    [ ${#pkgs[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "missing ${pkgs[*]} and no apt-get to install them"
    log "installing ${pkgs[*]} from Debian's packages"
    local t0=$SECONDS
    as_root apt-get update -qq
    # policy-rc.d 101: the packages' own init scripts must not start servers on every interface
    as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null \
        || { as_root rm -f /usr/sbin/policy-rc.d; die "apt-get install ${pkgs[*]} failed"; }
    as_root rm -f /usr/sbin/policy-rc.d
    log "installed in $((SECONDS - t0)) s"
}

pg_configure() {  # prints "restart" when a setting that needs a restart changed
    local v conf hba dropin want
    v=$(pg_version)
    conf=/etc/postgresql/$v/main
    if [ ! -f "$conf/postgresql.conf" ]; then
        log "creating PostgreSQL $v cluster main"
        as_root pg_createcluster --port "$PG_PORT" "$v" main >/dev/null
    fi
    dropin=$conf/conf.d/lakehouse.conf
    want="$MARK
listen_addresses = '127.0.0.1'
port = $PG_PORT
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
max_connections = 200"
    if [ "$(cat "$dropin" 2>/dev/null)" != "$want" ]; then
        as_root mkdir -p "$conf/conf.d"
        printf '%s\n' "$want" | as_root tee "$dropin" >/dev/null
        echo restart
    fi
    # pg_hba is first-match: our trust lines go on top, once
    hba=$conf/pg_hba.conf
    if ! grep -qF "$MARK" "$hba"; then
        as_root sh -c "{ printf '%s\n' '$MARK' \
            'host all all 127.0.0.1/32 trust' 'host replication all 127.0.0.1/32 trust'; cat '$hba'; } > '$hba.new' \
            && chown --reference='$hba' '$hba.new' && chmod --reference='$hba' '$hba.new' && mv '$hba.new' '$hba'"
        echo restart
    fi
}

pg_ready() {  # the port opens before the server accepts queries
    local i
    for ((i = 0; i < 120; i++)); do
        psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atc "SELECT 1" >/dev/null 2>&1 && return 0
        sleep 0.25
    done
    die "PostgreSQL on 127.0.0.1:$PG_PORT does not accept queries (see /var/log/postgresql)"
}

pg_running() { pg_ctlcluster "$(pg_version)" main status >/dev/null 2>&1; }

start_postgres() {
    local changed
    changed=$(pg_configure)
    if pg_running; then
        if [ -n "$changed" ]; then
            log "PostgreSQL settings changed: restarting"
            as_root pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" main restart
        fi
    else
        as_root pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" main start
    fi
    wait_port "$PG_PORT" PostgreSQL 60
    pg_ready
    # the database the CDC tests use as their source
    if [ "$(psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'test'")" != 1 ]; then
        psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qc "CREATE DATABASE test" >/dev/null
    fi
    log "PostgreSQL $(pg_version) on 127.0.0.1:$PG_PORT (wal_level=logical)"
}

restart_postgres() {
    pg_configure >/dev/null
    as_root pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" main restart
    wait_port "$PG_PORT" PostgreSQL 60
    pg_ready
}

redis_up() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

start_redis() {
    if ! redis_up; then
        as_root mkdir -p "$REDIS_DIR"
        # no persistence: it is a cache of the offline store, rebuilt by the nightly push
        as_root redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --protected-mode yes --daemonize yes \
            --dir "$REDIS_DIR" --save '' --appendonly no --pidfile "$REDIS_DIR/redis.pid" \
            --logfile "$REDIS_DIR/redis.log"
        local i
        for ((i = 0; i < 40; i++)); do redis_up && break; sleep 0.25; done
        redis_up || die "Redis did not answer on 127.0.0.1:$REDIS_PORT (see $REDIS_DIR/redis.log)"
    fi
    log "Redis on 127.0.0.1:$REDIS_PORT"
}

case "${1:-start}" in
    start)
        install_missing
        start_postgres
        start_redis
        ;;
    restart-postgres) restart_postgres ;;
    status)
        port_open "$PG_PORT" && redis_up && { log "PostgreSQL and Redis are up"; exit 0; }
        log "not running (start them with: make services)"; exit 1
        ;;
    stop)
        pg_running && as_root pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" main stop || true
        redis_up && redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
        log "stopped"
        ;;
    *) die "usage: $0 [start|restart-postgres|status|stop]" ;;
esac
