# Shared by scripts/quickstart and scripts/test. Source it from the repository root:
#   cd "$(dirname "$0")/.." && . scripts/lib/common.sh
# Everything here is idempotent: a second run installs nothing that is already there.

# System packages the Swift build needs (Package.swift's system libraries, through pkg-config), the
# openssl CLI, which the TLS tests use to make throwaway certificates, and the sqlite3 shell, which the
# AuditStore tests use to tamper with an audit log behind its back.
BUILD_APT_PACKAGES=(pkg-config libnghttp2-dev libssl-dev libsqlite3-dev zlib1g-dev openssl sqlite3)

# The Python environment for milvus-lite, pymilvus and the end-to-end suite (pinned there).
VENV_DIR=".venv"
REQUIREMENTS="Tests/EndToEnd/requirements.txt"
PYTHON="${PYTHON:-python3}"

log() { printf '==> %s\n' "$*" >&2 || true; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $* (no sudo found)"
    fi
}

# ensure_apt_packages PKG...: installs the missing ones; `apt-get update` once, only when needed.
ensure_apt_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$pkg")
        fi
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "missing packages ${missing[*]} and no apt-get: install them by hand"
    log "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# ensure_build_deps: the apt packages above, python3-venv if this python3 can't make a venv, and Swift.
ensure_build_deps() {
    local packages=("${BUILD_APT_PACKAGES[@]}")
    command -v "$PYTHON" >/dev/null 2>&1 || packages+=(python3)
    if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        packages+=(python3-venv)
    fi
    ensure_apt_packages "${packages[@]}"
    command -v swift >/dev/null 2>&1 || die "swift is not on PATH: install a Swift 6.3 toolchain (swift.org) first"
}

# ensure_venv: .venv with the pinned requirements; reinstalls only when requirements.txt changes.
ensure_venv() {
    local stamp="$VENV_DIR/.requirements.sha256" want
    want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
    if [ -x "$VENV_DIR/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    log "creating $VENV_DIR with $REQUIREMENTS"
    [ -x "$VENV_DIR/bin/python" ] || "$PYTHON" -m venv "$VENV_DIR"
    "$VENV_DIR/bin/python" -m pip install -q --disable-pip-version-check --no-input -r "$REQUIREMENTS"
    echo "$want" >"$stamp"
}

# wait_for_port HOST PORT PID SECONDS NAME: polls until HOST:PORT accepts a TCP connection;
# fails early if PID exits, and after SECONDS.
wait_for_port() {
    local host="$1" port="$2" pid="$3" seconds="$4" name="$5" deadline
    deadline=$((SECONDS + seconds))
    until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || die "$name exited before it listened on $host:$port"
        [ "$SECONDS" -lt "$deadline" ] || die "$name did not listen on $host:$port within ${seconds}s"
        sleep 0.2
    done
}

# port_in_use HOST PORT
port_in_use() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# stop_process PID NAME [SIGNAL...]: sends each signal in turn (default TERM), waiting up to 5 s after
# each for PID to exit, then SIGKILL. (A signal may be ignored: a shell started in the background
# passes SIGINT on ignored, which is why milvus-lite gets INT and then TERM.)
stop_process() {
    local pid="$1" name="$2" sig i
    shift 2
    [ "$#" -gt 0 ] || set -- TERM
    kill -0 "$pid" 2>/dev/null || return 0
    log "stopping $name"
    for sig in "$@" KILL; do
        kill -s "$sig" "$pid" 2>/dev/null || true
        for i in $(seq 1 25); do
            kill -0 "$pid" 2>/dev/null || break 2
            sleep 0.2
        done
    done
    wait "$pid" 2>/dev/null || true
}
