#!/usr/bin/env bash
# Start a throw-away MongoDB-wire-compatible server for the test-suite.
#
# Usage:   eval "$(tests/mongo-server/start.sh)"
#          ... run tests (they read FLAMENCO_TEST_MONGO_URL) ...
#          tests/mongo-server/stop.sh
#
# Order of preference:
#   1. FLAMENCO_TEST_MONGO_URL already set   -> print it, start nothing.
#   2. a `mongod` binary on PATH             -> run it on a free loopback port.
#   3. `go` available                        -> build FerretDB once from the Go
#      module proxy into a cache dir, and run that: on a private PostgreSQL
#      server when PostgreSQL's server programs are installed (much faster for a
#      growing queue), else on its SQLite backend.
#   4. none of those                         -> one-line reason on stderr, exit 3.
#
# Stdout carries only `export ...` lines (for eval); progress goes to stderr.
#
# Environment knobs:
#   FLAMENCO_FERRETDB_VERSION   module query for FerretDB (default: v1.24, i.e.
#                               the newest v1.24.x tag)
#   FLAMENCO_MONGO_CACHE_DIR    cache root (default:
#                               ${XDG_CACHE_HOME:-$HOME/.cache}/flamenco-manager)
#   FLAMENCO_MONGO_START_TIMEOUT seconds to wait for the port (default: 60)
#   FLAMENCO_TEST_MONGO_FORCE_FERRETDB=1  ignore a mongod on PATH
#   FLAMENCO_FERRETDB_BACKEND=sqlite      do not use PostgreSQL even if installed
set -euo pipefail

log() { printf 'mongo-server: %s\n' "$*" >&2; }
die() { printf 'mongo-server: %s\n' "$1" >&2; exit "${2:-1}"; }

if [[ -n "${FLAMENCO_TEST_MONGO_URL:-}" ]]; then
    log "using existing server at ${FLAMENCO_TEST_MONGO_URL}"
    printf 'export FLAMENCO_TEST_MONGO_URL=%s\n' "${FLAMENCO_TEST_MONGO_URL}"
    exit 0
fi

FERRETDB_QUERY="${FLAMENCO_FERRETDB_VERSION:-v1.24}"
CACHE_ROOT="${FLAMENCO_MONGO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/flamenco-manager}"
START_TIMEOUT="${FLAMENCO_MONGO_START_TIMEOUT:-60}"

# --------------------------------------------------------------------------
# helpers

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
        return
    fi
    local port i
    for i in $(seq 1 100); do
        port=$((20000 + RANDOM % 30000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then
            echo "${port}"
            return
        fi
    done
    die "could not find a free port"
}

wait_for_port() { # pid port logfile
    local pid="$1" port="$2" logfile="$3"
    local deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! kill -0 "${pid}" 2>/dev/null; then
            log "server process ${pid} exited early; last log lines:"
            tail -n 30 "${logfile}" >&2 || true
            return 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    log "server did not accept connections on 127.0.0.1:${port} within ${START_TIMEOUT}s; last log lines:"
    tail -n 30 "${logfile}" >&2 || true
    kill "${pid}" 2>/dev/null || true
    return 1
}

emit() { # port pid dir
    printf 'export FLAMENCO_TEST_MONGO_URL=mongodb://127.0.0.1:%s/\n' "$1"
    printf 'export FLAMENCO_TEST_MONGO_PID=%s\n' "$2"
    printf 'export FLAMENCO_TEST_MONGO_DIR=%s\n' "$3"
}

make_tmpdir() {
    local d
    d="$(mktemp -d "${TMPDIR:-/tmp}/flamenco-test-mongo.XXXXXX")"
    # stop.sh only removes directories carrying this marker.
    : >"${d}/.flamenco-test-mongo"
    echo "${d}"
}

# --------------------------------------------------------------------------
# 2. a real mongod

if [[ "${FLAMENCO_TEST_MONGO_FORCE_FERRETDB:-}" != 1 ]] && command -v mongod >/dev/null 2>&1; then
    dir="$(make_tmpdir)"
    port="$(free_port)"
    mkdir -p "${dir}/db"
    log "starting $(command -v mongod) on 127.0.0.1:${port} (dir ${dir})"
    nohup mongod --dbpath "${dir}/db" --bind_ip 127.0.0.1 --port "${port}" \
        --logpath "${dir}/mongod.log" \
        </dev/null >"${dir}/stdout.log" 2>&1 &
    pid=$!
    echo "${pid}" >"${dir}/server.pid"
    if ! wait_for_port "${pid}" "${port}" "${dir}/mongod.log"; then
        die "mongod failed to start (see ${dir})"
    fi
    log "mongod is up (pid ${pid})"
    emit "${port}" "${pid}" "${dir}"
    exit 0
fi

# --------------------------------------------------------------------------
# 3. FerretDB built from the Go module proxy

if ! command -v go >/dev/null 2>&1; then
    die "no MongoDB server available: FLAMENCO_TEST_MONGO_URL unset, no 'mongod' on PATH and no 'go' to build FerretDB" 3
fi

mkdir -p "${CACHE_ROOT}"

# Newest already-built binary matching the query, if any (no network needed).
find_cached_binary() {
    local d best=""
    for d in "${CACHE_ROOT}"/ferretdb-"${FERRETDB_QUERY}"*/; do
        [[ -x "${d}ferretdb" ]] || continue
        best="$(printf '%s\n%s\n' "${best}" "${d}ferretdb" | sed '/^$/d' | sort -V | tail -n 1)"
    done
    echo "${best}"
}

build_ferretdb() {
    local json version srcdir cachedir builddir t0
    log "resolving github.com/FerretDB/FerretDB@${FERRETDB_QUERY} via the Go module proxy"

    # Private module/build caches, removed again after a successful build.
    export GOMODCACHE="${CACHE_ROOT}/gomodcache"
    export GOPATH="${CACHE_ROOT}/gopath"
    export GOCACHE="${CACHE_ROOT}/gobuildcache"
    export CGO_ENABLED=0 # modernc.org/sqlite is pure Go
    export GOFLAGS="-mod=mod -buildvcs=false"
    export GOWORK=off

    local workdir
    workdir="$(mktemp -d "${CACHE_ROOT}/tmp.XXXXXX")"
    # `go mod download` outside a module works; run it from an empty dir so
    # that a surrounding go.mod/go.work cannot interfere.
    json="$(cd "${workdir}" && go mod download -json "github.com/FerretDB/FerretDB@${FERRETDB_QUERY}")" ||
        die "go mod download github.com/FerretDB/FerretDB@${FERRETDB_QUERY} failed"
    version="$(printf '%s\n' "${json}" | sed -n 's/^[[:space:]]*"Version": "\(.*\)",\{0,1\}$/\1/p' | head -n 1)"
    srcdir="$(printf '%s\n' "${json}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' | head -n 1)"
    [[ -n "${version}" && -d "${srcdir}" ]] || die "could not parse go mod download output: ${json}"

    cachedir="${CACHE_ROOT}/ferretdb-${version}"
    if [[ -x "${cachedir}/ferretdb" ]]; then
        rm -rf "${workdir}"
        echo "${cachedir}/ferretdb"
        return
    fi
    mkdir -p "${cachedir}"

    # Module cache is read-only: build from a writable copy.
    builddir="${workdir}/src"
    cp -R "${srcdir}" "${builddir}"
    chmod -R u+w "${builddir}"
    # Required by build/version (embedded); normally generated from git.
    printf '%s\n' "${version}" >"${builddir}/build/version/version.txt"
    printf 'flamenco-test\n' >"${builddir}/build/version/package.txt"

    # No build tags needed: the SQLite handler is built unless the
    # `ferretdb_no_sqlite` tag is given (internal/handler/registry/sqlite.go).
    log "building FerretDB ${version} (one-off; ~1 min on 2 cores when the proxy is fast)"
    t0=${SECONDS}
    (cd "${builddir}" && go build -trimpath -ldflags='-s -w' -o "${cachedir}/ferretdb.tmp" ./cmd/ferretdb) >&2 ||
        die "go build of FerretDB ${version} failed"
    mv -f "${cachedir}/ferretdb.tmp" "${cachedir}/ferretdb"
    log "built ${cachedir}/ferretdb in $((SECONDS - t0))s"

    # Only the binary is needed from now on: drop sources, build cache and
    # the (read-only, ~650 MB) module cache.
    rm -rf "${workdir}" "${GOCACHE}"
    go clean -modcache >&2 || true
    rm -rf "${GOMODCACHE}" "${GOPATH}"
    echo "${cachedir}/ferretdb"
}

ferretdb="$(find_cached_binary)"
if [[ -z "${ferretdb}" ]]; then
    # Serialise concurrent first builds.
    exec 9>"${CACHE_ROOT}/.build.lock"
    if command -v flock >/dev/null 2>&1; then
        log "acquiring build lock ${CACHE_ROOT}/.build.lock"
        flock 9
    fi
    ferretdb="$(find_cached_binary)"
    if [[ -z "${ferretdb}" ]]; then
        ferretdb="$(build_ferretdb)"
    fi
    exec 9>&-
fi
log "using ${ferretdb}"

# A private PostgreSQL server for FerretDB's PostgreSQL backend, in DIR/pg. Its
# settings (fsync off) suit a throw-away test database only. Prints the
# PostgreSQL URL; records how to stop it in DIR/pg.env for stop.sh.
start_postgres() { # dir
    local dir="$1" bin="" candidate user="" pgport
    for candidate in /usr/lib/postgresql/*/bin; do
        [[ -x "${candidate}/initdb" && -x "${candidate}/pg_ctl" ]] && bin="${candidate}"
    done
    [[ -n "${bin}" ]] || return 1
    as_user() { "$@"; }
    if [[ "$(id -u)" == 0 ]]; then
        # PostgreSQL refuses to run as root.
        id postgres >/dev/null 2>&1 && command -v runuser >/dev/null 2>&1 || return 1
        user=postgres
        as_user() { runuser -u postgres -- "$@"; }
        chmod 755 "${dir}"
    fi
    mkdir -p "${dir}/pg"
    [[ -z "${user}" ]] || chown "${user}" "${dir}/pg"
    pgport="$(free_port)"
    as_user "${bin}/initdb" -D "${dir}/pg/data" -A trust -U postgres --no-sync \
        >"${dir}/pg/initdb.log" 2>&1 || return 1
    printf 'PG_BIN=%q\nPG_USER=%q\n' "${bin}" "${user}" >"${dir}/pg.env"
    as_user "${bin}/pg_ctl" -D "${dir}/pg/data" -l "${dir}/pg/server.log" -w -t 60 \
        -o "-p ${pgport} -k ${dir}/pg -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >&2 || return 1
    as_user "${bin}/createdb" -h 127.0.0.1 -p "${pgport}" -U postgres ferretdb >&2 || return 1
    echo "postgres://postgres@127.0.0.1:${pgport}/ferretdb"
}

dir="$(make_tmpdir)"
port="$(free_port)"
mkdir -p "${dir}/data" "${dir}/state"
backend=(--handler=sqlite --sqlite-url="file:${dir}/data/")
if [[ "${FLAMENCO_FERRETDB_BACKEND:-postgresql}" != sqlite ]]; then
    if pg_url="$(start_postgres "${dir}")"; then
        backend=(--handler=postgresql --postgresql-url="${pg_url}")
        log "PostgreSQL for FerretDB is up (${pg_url})"
    else
        log "no PostgreSQL server could be started (see ${dir}/pg); using FerretDB's SQLite backend"
    fi
fi
log "starting FerretDB (${backend[0]#--handler=} backend) on 127.0.0.1:${port} (dir ${dir})"
FERRETDB_TELEMETRY=disable nohup "${ferretdb}" \
    "${backend[@]}" \
    --listen-addr="127.0.0.1:${port}" \
    --state-dir="${dir}/state" \
    --debug-addr=- \
    --telemetry=disable \
    --log-level=info \
    </dev/null >"${dir}/ferretdb.log" 2>&1 &
pid=$!
echo "${pid}" >"${dir}/server.pid"
echo "${port}" >"${dir}/server.port"
if ! wait_for_port "${pid}" "${port}" "${dir}/ferretdb.log"; then
    die "FerretDB failed to start (see ${dir}/ferretdb.log)"
fi
log "FerretDB is up (pid ${pid})"
emit "${port}" "${pid}" "${dir}"
