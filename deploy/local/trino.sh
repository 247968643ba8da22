#!/usr/bin/env bash
# A real Trino server on this machine, bound to 127.0.0.1, over the lake's tables (the tests' and
# `make trino`'s; the compose stack runs its own image). Trino is not a Python package: the
# official io.trino:trino-server tarball from Maven Central is fetched ONCE into a cache outside
# the repository, checked against the SHA-256 pinned below, unpacked, and pruned to the plugins
# the lake uses. It runs on a Java 24+ JDK (Temurin 25 here), set for Trino only.
#
#   deploy/local/trino.sh install   fetch, verify, unpack and prune into the cache (idempotent);
#                                   prints the install folder
#   deploy/local/trino.sh start     write etc/ under TRINO_STATE from the catalog files in
#                                   TRINO_CATALOG_DIR (default: `lakehouse trino catalogs` for the
#                                   lake of this environment) and start in the background; returns
#                                   once the server answers queries
#   deploy/local/trino.sh run       the same in the foreground (exec: the caller owns the JVM)
#   deploy/local/trino.sh stop      stop the server started with `start`
#   deploy/local/trino.sh status    exit 0 when it answers on 127.0.0.1:TRINO_PORT
#   deploy/local/trino.sh rules     re-render the access-control rules (after new tables)
#
# Clients connect over HTTPS with a password (TRINO_HTTPS_PORT); the HTTP port only carries the
# server's own signed internal requests and /v1/info (any other request over it is refused:
# "Authentication over HTTP is not enabled"). Made at every start under TRINO_STATE/etc, never in
# the repository: the password file (PBKDF2 hashes), the TLS certificate with a private CA (kept
# while valid: clients verify with TRINO_STATE/etc/tls/ca.pem = LAKEHOUSE_TRINO_CA_FILE) and the
# access-control rules (deploy/trino/access-control: governance roles = groups, column masks).
#
# Secrets, from the environment only:
#   LAKEHOUSE_TRINO_PASSWORD         password of the service user `lakehouse` (required)
#   LAKEHOUSE_TRINO_PASSWORD_<USER>  password of another user, e.g. _ANALYST, _STEWARD (groups.txt)
#   LAKEHOUSE_TRINO_SHARED_SECRET    internal-communication secret (default: random per start)
#   LAKEHOUSE_MASKING_KEY            key of the hashed columns: loaded at start into a memory
#                                    table the masks read (never into a file, never in a mask's
#                                    text); without it they are NULL for roles without clear access
#
# Environment (all optional):
#   TRINO_PORT         internal HTTP port on 127.0.0.1 (default 8080)
#   TRINO_HTTPS_PORT   the clients' HTTPS port on 127.0.0.1 (default 8443)
#   TRINO_RULES_FILE   access-control rules to load in place (default: rendered at start with
#                      `lakehouse trino rules` into TRINO_STATE/etc/rules.json; re-render with
#                      `trino.sh rules` after new tables, Trino reloads it within a minute)
#   TRINO_RULES_REFRESH  how often Trino re-reads the rules (default 60s)
#   TRINO_GROUPS_FILE  users per role (default deploy/trino/access-control/groups.txt)
#   TRINO_STATE        etc/, data and logs of this server (default ${LAKEHOUSE_HOME:-.lakehouse}/trino)
#   TRINO_CATALOG_DIR  folder of <catalog>.properties files to serve
#   TRINO_HEAP         -Xmx of the JVM (default 1G: a laptop or a 2-core CI machine)
#   TRINO_JAVA_HOME    a JDK >= 24 (default: Temurin 25 in /usr/lib/jvm, else the newest JDK >= 24 there)
#   LAKEHOUSE_CACHE    the download cache (default ${XDG_CACHE_HOME:-~/.cache}/lakehouse)
#   TRINO_MAVEN_REPO   a Maven Central mirror (default: Maven Central)
#
# Catalog files carry no secrets: they name environment variables (${ENV:...}) that this process
# passes on to the server (LAKEHOUSE_S3_ACCESS_KEY_ID / LAKEHOUSE_S3_SECRET_ACCESS_KEY, filled from
# AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY when unset).
set -euo pipefail

TRINO_VERSION=476
# SHA-256 computed once from the artifact; Maven Central's published SHA-1 is checked as well
TRINO_SHA256=cfd5accde17e8ebd251eeeb78aed1f490e77bb3a164d95a0f454bf8a7c1cbd3f
TRINO_SHA1=c9b38be4017ebd2f7095455aaac772fb40247ebe
# the connectors the lake uses (+ tpch/memory for smoke tests, password authenticators for the
# compose stack's login); the full tarball carries ~60 plugins
TRINO_PLUGINS=(iceberg delta-lake tpch memory password-authenticators)

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT=$(cd "$HERE/../.." && pwd)
CACHE=${LAKEHOUSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lakehouse}
INSTALL="$CACHE/trino-$TRINO_VERSION"
TARBALL="$CACHE/downloads/trino-server-$TRINO_VERSION.tar.gz"
REPO=${TRINO_MAVEN_REPO:-https://repo1.maven.org/maven2}
URL="$REPO/io/trino/trino-server/$TRINO_VERSION/trino-server-$TRINO_VERSION.tar.gz"
PORT=${TRINO_PORT:-8080}
HTTPS_PORT=${TRINO_HTTPS_PORT:-8443}
STATE=${TRINO_STATE:-${LAKEHOUSE_HOME:-$PROJECT/.lakehouse}/trino}
HEAP=${TRINO_HEAP:-1G}

log() { printf 'trino: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

java_home() {
    local candidate version
    for candidate in ${TRINO_JAVA_HOME:-} /usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/temurin-25-jdk-arm64 \
        $(ls -d /usr/lib/jvm/*/ 2>/dev/null | sort -rV); do
        candidate=${candidate%/}
        [ -x "$candidate/bin/java" ] || continue
        version=$("$candidate/bin/java" -XshowSettings:properties -version 2>&1 \
            | sed -n 's/^ *java.specification.version = //p')
        if [ "${version%%.*}" -ge 24 ] 2>/dev/null; then echo "$candidate"; return 0; fi
        [ -n "${TRINO_JAVA_HOME:-}" ] && [ "$candidate" = "$TRINO_JAVA_HOME" ] \
            && die "TRINO_JAVA_HOME=$TRINO_JAVA_HOME is Java $version; Trino $TRINO_VERSION needs 24 or later"
    done
    die "no JDK >= 24 under /usr/lib/jvm (Trino $TRINO_VERSION needs one); set TRINO_JAVA_HOME"
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

fetch() {
    [ -f "$TARBALL" ] && [ "$(sha256_of "$TARBALL")" = "$TRINO_SHA256" ] && return 0
    mkdir -p "$(dirname "$TARBALL")"
    log "fetching trino-server $TRINO_VERSION (821 MB, once) from Maven Central"
    local t0=$SECONDS
    curl -fSL --retry 3 --retry-delay 2 -o "$TARBALL.part" "$URL" || die "download of $URL failed"
    local got
    got=$(sha256_of "$TARBALL.part")
    if [ "$got" != "$TRINO_SHA256" ] || [ "$(sha1sum "$TARBALL.part" | cut -d' ' -f1)" != "$TRINO_SHA1" ]; then
        rm -f "$TARBALL.part"
        die "checksum mismatch for $URL: sha256 $got, expected $TRINO_SHA256 (file removed)"
    fi
    mv "$TARBALL.part" "$TARBALL"
    log "fetched and verified in $((SECONDS - t0)) s"
}

install() {
    local stamp="sha256=$TRINO_SHA256 plugins=${TRINO_PLUGINS[*]}"
    if [ "$(cat "$INSTALL/.lakehouse-install" 2>/dev/null)" = "$stamp" ]; then echo "$INSTALL"; return 0; fi
    mkdir -p "$CACHE"
    exec 9>"$CACHE/trino-$TRINO_VERSION.lock"
    flock 9  # two test workers installing at once: the second waits and finds it done
    if [ "$(cat "$INSTALL/.lakehouse-install" 2>/dev/null)" = "$stamp" ]; then echo "$INSTALL"; return 0; fi
    fetch
    local t0=$SECONDS tmp="$INSTALL.tmp.$$" top="trino-server-$TRINO_VERSION" arch
    case "$(uname -m)" in x86_64 | amd64) arch=amd64 ;; aarch64 | arm64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
    rm -rf "$tmp" && mkdir -p "$tmp"
    # whole tarball first: plugins share jars as hard links to other plugins' copies, so a partial
    # extract breaks; what is pruned afterwards keeps its content through the remaining links
    tar -xzf "$TARBALL" -C "$tmp" --strip-components=1 || { rm -rf "$tmp"; die "unpacking $TARBALL failed"; }
    local full
    full=$(du -sh "$tmp" | cut -f1)
    local keep=" ${TRINO_PLUGINS[*]} " d
    for d in "$tmp"/plugin/*/; do
        d=${d%/}
        [[ $keep == *" ${d##*/} "* ]] || rm -rf "$d"
    done
    for d in "$tmp"/bin/*/; do
        d=${d%/}
        [ "${d##*/}" = "linux-$arch" ] || rm -rf "$d"
    done
    for p in "${TRINO_PLUGINS[@]}"; do [ -d "$tmp/plugin/$p" ] || { rm -rf "$tmp"; die "plugin $p is not in trino-server $TRINO_VERSION"; }; done
    echo "$stamp" >"$tmp/.lakehouse-install"
    rm -rf "$INSTALL" && mv "$tmp" "$INSTALL"
    # the verified install is what is kept; the tarball is fetched again only for another version
    [ "${TRINO_KEEP_TARBALL:-0}" = 1 ] || rm -f "$TARBALL"
    log "unpacked ($full) and pruned to ${TRINO_PLUGINS[*]} ($(du -sh "$INSTALL" | cut -f1)) in $((SECONDS - t0)) s"
    echo "$INSTALL"
}

# JDK 25's AOT cache (JEP 483/514) of the classes Trino loads while starting: recorded once per
# install and JDK by a training start (tpch only), it cuts the start by about a third (25 -> 15 s
# measured on 2 cores). Plugins' own class loaders are outside it. TRINO_AOT=0 turns it off.
aot_cache() {  # prints the cache file to use, training it first when missing; empty when off
    [ "${TRINO_AOT:-1}" = 1 ] || return 0
    local release file
    release=$("$JAVA_HOME/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.runtime.version = //p')
    [ "$(echo "$release" | cut -d. -f1 | cut -d+ -f1)" -ge 25 ] 2>/dev/null || return 0
    file="$INSTALL/aot/trino-$release.aot"
    if [ ! -s "$file" ]; then
        mkdir -p "$INSTALL/aot"
        exec 8>"$INSTALL/aot/.lock"
        flock 8
        [ -s "$file" ] || train_aot "$file" >&2 || log "AOT training failed; starting without it"
        flock -u 8
    fi
    [ -s "$file" ] && echo "$file"
    return 0
}

train_aot() {
    local dir port pid i
    dir=$(mktemp -d)
    for ((i = 0; i < 50; i++)); do
        port=$((20000 + RANDOM % 10000))
        port_taken "$port" || break
    done
    mkdir -p "$dir/etc/catalog" "$dir/data"
    echo "connector.name=tpch" >"$dir/etc/catalog/tpch.properties"
    printf 'coordinator=true\nnode-scheduler.include-coordinator=true\nhttp-server.http.port=%s\ndiscovery.uri=http://127.0.0.1:%s\n' \
        "$port" "$port" >"$dir/etc/config.properties"
    printf 'node.environment=training\nnode.data-dir=%s\nnode.bind-ip=127.0.0.1\nnode.internal-address=127.0.0.1\n' \
        "$dir/data" >"$dir/etc/node.properties"
    jvm_config "-XX:AOTCacheOutput=$1.tmp" >"$dir/etc/jvm.config"
    log "recording the JVM's AOT cache once (a training start of Trino)"
    local t0=$SECONDS
    "$INSTALL/bin/launcher" --etc-dir="$dir/etc" --data-dir="$dir/data" run >"$dir/training.log" 2>&1 &
    pid=$!
    for ((i = 0; i < 960; i++)); do
        curl -fsS --max-time 2 "http://127.0.0.1:$port/v1/info" 2>/dev/null | grep -q '"starting":false' && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" || true  # the JVM writes the cache as it exits
    if [ -s "$1.tmp" ]; then mv "$1.tmp" "$1"; log "AOT cache recorded in $((SECONDS - t0)) s"; fi
    rm -rf "$dir" "$1.tmp"
    [ -s "$1" ]
}

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

jvm_config() {  # extra JVM options as arguments
    printf '%s\n' -server "-Xmx$HEAP" -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -XX:-OmitStackTraceInFastThrow \
        -XX:ReservedCodeCacheSize=128M -XX:+EnableDynamicAgentLoading -Djdk.attach.allowAttachSelf=true \
        -Dfile.encoding=UTF-8 "$@"
}

answers() { curl -fsS --max-time 2 "http://127.0.0.1:$PORT/v1/info" 2>/dev/null | grep -q '"starting":false'; }

LAKEHOUSE=${LAKEHOUSE_BIN:-$PROJECT/.venv/bin/lakehouse}

write_rules() {  # the access-control rules from the governance policy and the lake's tables (no secret in them)
    [ -n "${TRINO_RULES_FILE:-}" ] && return 0
    mkdir -p "$STATE/etc"
    "$LAKEHOUSE" trino rules --output "$STATE/etc/rules.json" >/dev/null \
        || die "could not render the access-control rules (lakehouse trino rules)"
}

load_key() {  # LAKEHOUSE_MASKING_KEY into the server's key table, as the service user over HTTPS
    if [ -z "${LAKEHOUSE_MASKING_KEY:-}" ]; then
        log "LAKEHOUSE_MASKING_KEY is not set: hashed columns stay NULL for roles without clear access"
        return 0
    fi
    local i
    for ((i = 0; i < 10; i++)); do
        LAKEHOUSE_TRINO_URL="https://lakehouse@127.0.0.1:$HTTPS_PORT" LAKEHOUSE_TRINO_CA_FILE="$STATE/etc/tls/ca.pem" \
            "$LAKEHOUSE" trino load-key >/dev/null && return 0
        sleep 2
    done
    log "could not load the masking key (lakehouse trino load-key): hashed columns stay NULL for masked roles"
    return 1
}

write_etc() {
    local catalogs=${TRINO_CATALOG_DIR:-}
    mkdir -p "$STATE/etc/catalog" "$STATE/data"
    if [ -z "$catalogs" ]; then
        catalogs="$STATE/generated-catalog"
        "$LAKEHOUSE" trino catalogs --output "$catalogs" >/dev/null
    fi
    ls "$catalogs"/*.properties >/dev/null 2>&1 || die "no <catalog>.properties in $catalogs"
    rm -f "$STATE/etc/catalog/"*.properties
    cp "$catalogs"/*.properties "$STATE/etc/catalog/"
    # the masking key's table (memory: gone at stop, loaded at start by `load_key`)
    printf '# the column masks read the masking key here (lakehouse trino load-key)\nconnector.name=memory\n' \
        >"$STATE/etc/catalog/lakehouse_secrets.properties"
    # password file and TLS certificate (from the environment; the CA's key is not kept)
    "$LAKEHOUSE" trino server-files --output "$STATE/etc" >/dev/null || die "could not write the password file / certificate"
    write_rules
    cat >"$STATE/etc/config.properties" <<EOF
coordinator=true
node-scheduler.include-coordinator=true
http-server.http.port=$PORT
http-server.https.enabled=true
http-server.https.port=$HTTPS_PORT
http-server.https.keystore.path=$STATE/etc/tls/server.pem
http-server.authentication.type=PASSWORD
internal-communication.shared-secret=\${ENV:LAKEHOUSE_TRINO_SHARED_SECRET}
discovery.uri=http://127.0.0.1:$PORT
query.max-memory=512MB
query.max-memory-per-node=256MB
EOF
    cat >"$STATE/etc/password-authenticator.properties" <<EOF
password-authenticator.name=file
file.password-file=$STATE/etc/password.db
EOF
    cat >"$STATE/etc/access-control.properties" <<EOF
access-control.name=file
security.config-file=${TRINO_RULES_FILE:-$STATE/etc/rules.json}
security.refresh-period=${TRINO_RULES_REFRESH:-60s}
EOF
    cat >"$STATE/etc/group-provider.properties" <<EOF
group-provider.name=file
file.group-file=${TRINO_GROUPS_FILE:-$PROJECT/deploy/trino/access-control/groups.txt}
file.refresh-period=60s
EOF
    cat >"$STATE/etc/node.properties" <<EOF
node.environment=lakehouse
node.id=lakehouse-local-$PORT
node.data-dir=$STATE/data
node.bind-ip=127.0.0.1
node.internal-address=127.0.0.1
EOF
    local aot
    aot=$(aot_cache)
    jvm_config ${aot:+"-XX:AOTCache=$aot"} >"$STATE/etc/jvm.config"
    echo "io.trino=WARN" >"$STATE/etc/log.properties"
}

server_env() {
    export JAVA_HOME PATH
    JAVA_HOME=$(java_home)
    PATH="$JAVA_HOME/bin:$PATH"
    export LAKEHOUSE_S3_ACCESS_KEY_ID=${LAKEHOUSE_S3_ACCESS_KEY_ID:-${AWS_ACCESS_KEY_ID:-}}
    export LAKEHOUSE_S3_SECRET_ACCESS_KEY=${LAKEHOUSE_S3_SECRET_ACCESS_KEY:-${AWS_SECRET_ACCESS_KEY:-}}
    [ -n "${LAKEHOUSE_TRINO_PASSWORD:-}" ] || die "set LAKEHOUSE_TRINO_PASSWORD (the service user lakehouse's password; clients log in over HTTPS)"
    if [ -z "${LAKEHOUSE_TRINO_SHARED_SECRET:-}" ]; then  # one node: a fresh secret per start will do
        LAKEHOUSE_TRINO_SHARED_SECRET=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
    fi
    export LAKEHOUSE_TRINO_SHARED_SECRET
}

launcher() {
    "$INSTALL/bin/launcher" --etc-dir="$STATE/etc" --data-dir="$STATE/data" \
        --pid-file="$STATE/launcher.pid" --server-log-file="$STATE/server.log" \
        --launcher-log-file="$STATE/launcher.log" "$@"
}

case "${1:-}" in
    install) install ;;
    run)
        install >/dev/null
        server_env
        write_etc
        if [ -n "${LAKEHOUSE_MASKING_KEY:-}" ]; then  # once it answers (this shell becomes the JVM)
            (
                for ((i = 0; i < 480; i++)); do answers && break; sleep 0.5; done
                load_key
            ) &
        fi
        exec "$INSTALL/bin/launcher" --etc-dir="$STATE/etc" --data-dir="$STATE/data" run
        ;;
    start)
        install >/dev/null
        answers && die "something already answers on 127.0.0.1:$PORT (stop it, or set TRINO_PORT)"
        server_env
        write_etc
        t0=$(date +%s.%N)
        launcher start >/dev/null
        for ((i = 0; i < 480; i++)); do
            answers && break
            launcher status >/dev/null 2>&1 || die "Trino exited while starting; see $STATE/server.log: $(tail -n 20 "$STATE/server.log" 2>/dev/null)"
            sleep 0.25
        done
        answers || die "Trino did not answer on 127.0.0.1:$PORT within 120 s; see $STATE/server.log"
        load_key || true
        log "Trino $TRINO_VERSION answers after $(echo "$(date +%s.%N) - $t0" | bc) s (state: $STATE); connect with"
        log "  LAKEHOUSE_TRINO_URL=https://lakehouse@127.0.0.1:$HTTPS_PORT LAKEHOUSE_TRINO_CA_FILE=$STATE/etc/tls/ca.pem"
        ;;
    rules)
        write_rules
        log "rules re-rendered into ${TRINO_RULES_FILE:-$STATE/etc/rules.json}; Trino reloads them within ${TRINO_RULES_REFRESH:-60s}"
        ;;
    stop) [ -f "$STATE/etc/config.properties" ] && launcher stop || true ;;
    status) answers ;;
    *)
        sed -n '2,51p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
