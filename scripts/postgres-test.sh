#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests (the two-worker Optuna study needs one).
#
#   scripts/postgres-test.sh start       install PostgreSQL through apt if it is missing,
#                                        start a fresh cluster on a free loopback port; prints
#                                        its URL, then its directory, one per line
#   scripts/postgres-test.sh stop DIR    stop that cluster and delete DIR
#
# The cluster lives in a temporary directory, trusts local connections, listens on
# 127.0.0.1 only and runs without fsync. Run as root, it runs as the `postgres` user
# (initdb refuses root). scripts/test starts one, exports INSTRLAB_TEST_POSTGRES_URL and
# stops it at exit; tests/test_tune.py runs `start` itself when the variable is unset.
set -euo pipefail
say() { printf '\033[1mpostgres-test:\033[0m %s\n' "$*" >&2; }

find_bin() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$d/initdb" ] && { echo "$d"; return 0; }
    done
    command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
    return 1
}

install_postgres() {
    command -v apt-get >/dev/null 2>&1 || { say "PostgreSQL is not installed and apt-get is not available; install PostgreSQL (initdb, pg_ctl) and run this again"; return 1; }
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || { say "need root or sudo to apt-get install postgresql"; return 1; }
        sudo=(sudo)
    fi
    say "apt-get install postgresql"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        postgresql >/dev/null
}

as_owner() {  # run a command as the cluster's owner: ourselves, or `postgres` when root
    if [ "$(id -u)" -ne 0 ]; then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        runuser -u postgres -- "$@"
    else
        su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
}

start() {
    local bin dir port
    bin=$(find_bin) || { install_postgres && bin=$(find_bin); } || {
        say "no initdb found after installing PostgreSQL"; return 1; }
    if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
        say "running as root but there is no postgres user to run the server as"; return 1
    fi
    local base=${TMPDIR:-/tmp}
    [ "$(id -u)" -eq 0 ] && base=/tmp  # the postgres user must reach it
    dir=$(mktemp -d "$base/instrlab-pg.XXXXXX")
    chmod 755 "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$bin/initdb" -D "$dir/data" -U instrlab --auth=trust -E UTF8 --no-sync \
        >"$dir/initdb.log" 2>&1 || { say "initdb failed:"; cat "$dir/initdb.log" >&2; return 1; }
    if ! as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c full_page_writes=off -c synchronous_commit=off" \
            start >/dev/null; then
        say "the server did not start:"; cat "$dir/server.log" >&2 || true; return 1
    fi
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U instrlab instrlab_test
    say "PostgreSQL $("$bin/postgres" --version | awk "{print \$3}") on 127.0.0.1:$port ($dir)"
    echo "postgresql://instrlab@127.0.0.1:$port/instrlab_test"
    echo "$dir"
}

stop() {
    local dir=${1:?usage: postgres-test.sh stop DIR} bin
    [ -d "$dir/data" ] || return 0
    bin=$(find_bin) || return 0
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}

case "${1:-}" in
    start) start ;;
    stop) stop "${2:-}" ;;
    *) say "usage: $0 start | stop DIR"; exit 2 ;;
esac
