#!/usr/bin/env bash
# A throwaway PostgreSQL server for the dedup tests (Debian 12).
#
#   eval "$(.ci/postgres.sh start)"   # prints: export KSAFE_TEST_PG="..."
#   meson test -C build dedup-pg
#   .ci/postgres.sh stop
#
# start: installs postgresql and libpq-dev if missing (apt-get, needs root),
#        initialises a cluster in $KSAFE_PG_DIR (default /tmp/ksafe-pg-<uid>)
#        as the `postgres` user (initdb refuses root), starts it on 127.0.0.1
#        on a free port with its unix socket in that directory, creates the
#        database ksafe_test, writes the export line to $KSAFE_PG_DIR/env and
#        prints it. Already running: just prints it again.
# env:   prints the export line of the running server.
# restart: stops the running server (fast: its connections are cut) and
#        starts the same cluster on the same port again - a server restart
#        as clients see it; the data stays.
# stop:  stops the server and deletes the directory.
# Progress goes to stderr, so only the export line reaches `eval`.
set -euo pipefail

dir=${KSAFE_PG_DIR:-/tmp/ksafe-pg-$(id -u)}
bindir=${KSAFE_PG_BINDIR:-/usr/lib/postgresql/15/bin}
db=ksafe_test

log() { echo "postgres.sh: $*" >&2; }

# Runs a command as the cluster owner: `postgres` when we are root.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

owner() {
    if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi
}

install_missing() {
    local missing="" p
    for p in postgresql libpq-dev; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
            missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        log "missing packages:$missing (run as root to install them)"
        exit 1
    fi
    log "installing:$missing"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >&2
    # The Debian package starts its own cluster on 5432; ours does not need it.
}

running() {
    [ -f "$dir/data/postmaster.pid" ] &&
        as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
    install_missing
    if running; then
        log "already running in $dir"
        cat "$dir/env"
        return 0
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    chown "$(owner)" "$dir"
    chmod 700 "$dir"
    log "initdb in $dir/data"
    as_owner "$bindir/initdb" -D "$dir/data" -U "$(owner)" -A trust \
        --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
    local port
    port=$(free_port)
    log "starting on 127.0.0.1:$port (socket in $dir)"
    echo "$port" >"$dir/port"
    server_start "$port"
    as_owner "$bindir/createdb" -h 127.0.0.1 -p "$port" -U "$(owner)" "$db"
    echo "export KSAFE_TEST_PG=\"host=127.0.0.1 port=$port dbname=$db user=$(owner)\"" \
        >"$dir/env"
    cat "$dir/env"
}

server_start() {
    # fsync=off: a throwaway cluster; the tests crash processes, not the OS.
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-k $dir -p $1 -h 127.0.0.1 -c fsync=off" start >&2 ||
        { cat "$dir/server.log" >&2; exit 1; }
}

restart() {
    running || { log "not running (use: $0 start)"; exit 1; }
    local port
    port=$(cat "$dir/port")
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >&2
    server_start "$port"
    log "restarted on 127.0.0.1:$port"
}

stop() {
    if running; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >&2
    fi
    rm -rf "$dir"
    log "stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    restart) restart ;;
    env)
        running || { log "not running (use: $0 start)"; exit 1; }
        cat "$dir/env"
        ;;
    *)
        echo "usage: $0 start|env|restart|stop" >&2
        exit 2
        ;;
esac
