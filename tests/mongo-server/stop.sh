#!/usr/bin/env bash
# Stop a server started by start.sh and remove its temp dir.
#
# Usage:   tests/mongo-server/stop.sh        (reads FLAMENCO_TEST_MONGO_PID/_DIR)
#          eval "$(tests/mongo-server/stop.sh)"   also unsets the variables
#
# Does nothing when start.sh did not start anything (only
# FLAMENCO_TEST_MONGO_URL set, e.g. an external server).
set -euo pipefail

log() { printf 'mongo-server: %s\n' "$*" >&2; }

pid="${FLAMENCO_TEST_MONGO_PID:-}"
dir="${FLAMENCO_TEST_MONGO_DIR:-}"

if [[ -z "${pid}" && -n "${dir}" && -f "${dir}/server.pid" ]]; then
    pid="$(cat "${dir}/server.pid")"
fi

if [[ -n "${pid}" ]]; then
    if kill "${pid}" 2>/dev/null; then
        for _ in $(seq 1 50); do
            kill -0 "${pid}" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "${pid}" 2>/dev/null; then
            log "pid ${pid} still alive after 10s, sending SIGKILL"
            kill -9 "${pid}" 2>/dev/null || true
        fi
        log "stopped server pid ${pid}"
    else
        log "server pid ${pid} was not running"
    fi
fi

# The private PostgreSQL server behind FerretDB, if start.sh started one.
if [[ -n "${dir}" && -f "${dir}/pg.env" && -f "${dir}/.flamenco-test-mongo" ]]; then
    PG_BIN="" PG_USER=""
    # shellcheck disable=SC1091
    source "${dir}/pg.env"
    if [[ -n "${PG_USER}" ]]; then
        runuser -u "${PG_USER}" -- "${PG_BIN}/pg_ctl" -D "${dir}/pg/data" -m immediate stop >&2 || true
    else
        "${PG_BIN}/pg_ctl" -D "${dir}/pg/data" -m immediate stop >&2 || true
    fi
    log "stopped PostgreSQL in ${dir}/pg"
fi

if [[ -n "${dir}" ]]; then
    if [[ -f "${dir}/.flamenco-test-mongo" ]]; then
        rm -rf "${dir}"
        log "removed ${dir}"
    elif [[ -e "${dir}" ]]; then
        log "not removing ${dir}: it was not created by start.sh"
    fi
fi

if [[ -n "${pid}" || -n "${dir}" ]]; then
    echo "unset FLAMENCO_TEST_MONGO_URL FLAMENCO_TEST_MONGO_PID FLAMENCO_TEST_MONGO_DIR"
fi
