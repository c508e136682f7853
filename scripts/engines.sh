#!/usr/bin/env bash
# The engine harness: four private Docker engines for tests, the demo and CI.
#
#   online   Docker 26, containerd image store      the build machine (has the network)
#   offline  Docker 26, containerd image store      the air-gapped machine (starts empty)
#   legacy   Docker 26, classic image store         a typical laptop engine
#   old      Debian 12's Docker 20.10               an offline server's distribution Docker
#
# offline, legacy and old run inside a network namespace with nothing but
# loopback: a real air gap, whatever --network a build asks for (BuildKit puts
# the network mode in every RUN step's cache key, so offline builds must use
# the mode the export used; the namespace is what keeps them offline).
#
# Usage: scripts/engines.sh COMMAND [ENGINE...]
#   install          install the engine packages (idempotent)
#   up [ENGINE...]   install if needed, start engines (default: all), make base images;
#                    prints NAME=unix://... per engine
#   images ENGINE... import the harness's base images (debian:bookworm-slim, busybox:local;
#                    on online also debian-arm64:bookworm-slim, run under qemu-aarch64 emulation, and
#                    debian-multi:bookworm-slim holding both platforms)
#   reset ENGINE...  stop the engine, drop all its images and build cache, start it empty
#   hosts            print NAME=unix://... for each running engine
#   env ENGINE       print "export DOCKER_HOST=..." for ENGINE
#   status           which engines run, their pid and version
#   registries       start two registries (Debian's docker-registry) on 127.0.0.1:$PORT:
#                    "team" beside the online engine, "site" inside the air gap;
#                    prints team=HOST:PORT and site=HOST:PORT
#   down [ENGINE...] stop engines this script started (and containerd when none is left;
#                    the registries with it); "stop" is the same
#
# State lives in $OFFLINE_BUILD_ENGINES_DIR (default /var/tmp/offline-build-engines).
#
# OFFLINE_BUILD_ENGINE_SET=N (N >= 1) is another set of the four engines, for tests run in parallel
# (scripts/test.sh gives each pytest worker but the first its own): its own containerd, engines and
# registries under $OFFLINE_BUILD_ENGINES_DIR/set-N, its own air gap (namespace offline-build-airgap-N),
# registries on port 5050+N; the base images' tarballs and Docker 20.10's files are shared.
set -euo pipefail

BASE=${OFFLINE_BUILD_ENGINES_DIR:-/var/tmp/offline-build-engines}
SET=${OFFLINE_BUILD_ENGINE_SET:-0}
[[ $SET =~ ^[0-9]{1,2}$ ]] || { printf 'engines: error: OFFLINE_BUILD_ENGINE_SET must be a number, not %q\n' "$SET" >&2; exit 1; }
SET=$((10#$SET))
if ((SET == 0)); then
    STATE=$BASE
    NETNS=offline-build-airgap
else
    STATE=$BASE/set-$SET
    NETNS=offline-build-airgap-$SET
fi
ALL_ENGINES=(online offline legacy old)
CTD_DIR=$STATE/containerd
CTD_SOCK=$CTD_DIR/containerd.sock
IMAGES_DIR=$BASE/images
OLD_ROOT=$BASE/docker-20.10
REGISTRY_PORT=${OFFLINE_BUILD_REGISTRY_PORT:-$((5050 + SET))}

log() { printf 'engines: %s\n' "$*" >&2; }
die() { printf 'engines: error: %s\n' "$*" >&2; exit 1; }

engine_dir() { echo "$STATE/$1"; }
engine_sock() { echo "$STATE/$1/docker.sock"; }
engine_host() { echo "unix://$(engine_sock "$1")"; }
dk() { local name=$1; shift; docker -H "$(engine_host "$name")" "$@"; }

valid_engine() {
    case $1 in online|offline|legacy|old) ;; *) die "unknown engine '$1' (one of: ${ALL_ENGINES[*]})" ;; esac
}

# --- install -----------------------------------------------------------------

mirror() {
    # The mirror this machine already uses: never a host name written here.
    local m
    m=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [[ -n $m ]] || m=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    [[ -n $m ]] || die "cannot find the Debian mirror in the apt sources"
    echo "$m"
}

installed() { command -v dockerd >/dev/null && command -v containerd >/dev/null \
    && docker buildx version >/dev/null 2>&1 && command -v debootstrap >/dev/null \
    && [[ -x /bin/busybox ]] && command -v nsenter >/dev/null && command -v ip >/dev/null \
    && command -v docker-registry >/dev/null && [[ -x $OLD_ROOT/usr/sbin/dockerd ]] \
    && [[ -d /usr/share/maven-repo/org/apache/maven/plugins/maven-dependency-plugin ]] \
    && command -v minisign >/dev/null && [[ -x /usr/bin/qemu-aarch64-static ]]; }

# Debian's packaged Maven plugins and libraries: a Maven repository layout under /usr/share/maven-repo,
# which the Maven capture tests serve on loopback as a site's internal mirror (Maven Central is not reachable).
MAVEN_REPO_PACKAGES=(libmaven-clean-plugin-java libmaven-resources-plugin-java libmaven-compiler-plugin-java
    libsurefire-java libmaven-jar-plugin-java libmaven-dependency-plugin-java libcommons-lang3-java
    libcommons-io-java)

install() {
    [[ $(id -u) == 0 ]] || die "the harness needs root (it installs packages and starts daemons)"
    if installed; then return 0; fi
    local m
    m=$(mirror)
    # Docker 26 comes from trixie, pinned low so nothing else is upgraded.
    if [[ ! -f /etc/apt/sources.list.d/trixie.list ]]; then
        echo "deb $m trixie main" > /etc/apt/sources.list.d/trixie.list
    fi
    if [[ ! -f /etc/apt/preferences.d/trixie ]]; then
        printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' > /etc/apt/preferences.d/trixie
    fi
    log "installing Docker 26 (trixie), debootstrap, busybox-static, Debian's Maven plugins, minisign, qemu-user-static"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        docker.io/trixie docker-buildx/trixie docker-cli/trixie \
        debootstrap busybox-static iproute2 util-linux docker-registry minisign qemu-user-static binfmt-support \
        "${MAVEN_REPO_PACKAGES[@]}" >/dev/null
    # The packages' own units must not start a system engine or registry.
    systemctl disable --now docker.service docker.socket containerd.service docker-registry.service \
        >/dev/null 2>&1 || true
    if [[ -x /etc/init.d/docker-registry ]]; then /etc/init.d/docker-registry stop >/dev/null 2>&1 || true; fi
    if ! docker buildx version >/dev/null 2>&1; then
        mkdir -p "$HOME/.docker/cli-plugins"
        ln -sf /usr/libexec/docker/cli-plugins/docker-buildx "$HOME/.docker/cli-plugins/docker-buildx"
    fi
    if [[ ! -x $OLD_ROOT/usr/sbin/dockerd ]]; then
        log "unpacking Debian 12's docker.io (20.10) for the 'old' engine"
        local tmp
        tmp=$(mktemp -d "$STATE/tmp.XXXXXX")
        chmod 0755 "$tmp"  # apt downloads as _apt when it can
        (cd "$tmp" && apt-get download -qq docker.io/bookworm 2>/dev/null >/dev/null)
        rm -rf "$OLD_ROOT.partial"
        compgen -G "$tmp/docker.io_20.10*.deb" >/dev/null \
            || die "apt-get download docker.io/bookworm fetched nothing (is bookworm in the apt sources?)"
        dpkg -x "$tmp"/docker.io_20.10*.deb "$OLD_ROOT.partial"
        mv "$OLD_ROOT.partial" "$OLD_ROOT"
        rm -rf "$tmp"
    fi
    installed || die "install finished but the engine tools are still missing"
}

# --- processes ---------------------------------------------------------------

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_gone() {
    local pid=$1 i
    for ((i = 0; i < 150; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
}

stop_pidfile() {
    local pidfile=$1 pid
    if alive "$pidfile"; then
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || true
        wait_gone "$pid"
    fi
    rm -f "$pidfile"
}

# ARM64 under emulation: qemu-aarch64 registered with binfmt_misc (kernel-wide, so the
# air-gapped engines see it too), flag F so it works in containers of any root. Only
# aarch64: a platform the machine cannot run stays for the tests that expect a refusal.
EMULATED=aarch64

emulation() {
    local fmt
    [[ -e /proc/sys/fs/binfmt_misc/register ]] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    for fmt in /proc/sys/fs/binfmt_misc/qemu-*; do
        [[ -e $fmt ]] || continue
        [[ ${fmt##*/qemu-} == "$EMULATED" ]] || echo -1 > "$fmt"   # unregister the others
    done
    if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-$EMULATED ]]; then
        update-binfmts --enable "qemu-$EMULATED" >/dev/null 2>&1 || true
    fi
    grep -q '^flags: .*F' "/proc/sys/fs/binfmt_misc/qemu-$EMULATED" 2>/dev/null \
        || die "qemu-$EMULATED is not registered with binfmt_misc (flag F): arm64 builds cannot run"
}

airgap() {
    if ! ip netns list | grep -qw "$NETNS"; then
        ip netns add "$NETNS"
    fi
    ip netns exec "$NETNS" ip link set lo up
}

start_containerd() {
    mkdir -p "$CTD_DIR"
    if alive "$CTD_DIR/containerd.pid" && [[ -S $CTD_SOCK ]]; then return 0; fi
    stop_pidfile "$CTD_DIR/containerd.pid"
    rm -f "$CTD_SOCK"
    # Its own root, state and socket: never the system containerd's.
    containerd --root "$CTD_DIR/root" --state "$CTD_DIR/state" --address "$CTD_SOCK" \
        >"$CTD_DIR/containerd.log" 2>&1 &
    echo $! > "$CTD_DIR/containerd.pid"
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -S $CTD_SOCK ]] && return 0
        alive "$CTD_DIR/containerd.pid" || break
        sleep 0.1
    done
    tail -n 20 "$CTD_DIR/containerd.log" >&2 || true
    die "containerd did not start (log: $CTD_DIR/containerd.log)"
}

answering() { dk "$1" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

generation() { cat "$(engine_dir "$1")/generation" 2>/dev/null || echo 0; }

start_engine() {
    local name=$1 dir
    dir=$(engine_dir "$name")
    mkdir -p "$dir"
    if alive "$dir/docker.pid" && answering "$name"; then return 0; fi
    # A stale pid file, socket or mounts from an earlier run (or a hung daemon).
    stop_engine "$name"
    local dockerd=dockerd config='{}' ns=()
    case $name in
        online|offline) config='{"features": {"containerd-snapshotter": true}}' ;;
        old) dockerd=$OLD_ROOT/usr/sbin/dockerd ;;
    esac
    [[ $name == online ]] || ns=(nsenter "--net=/run/netns/$NETNS")
    echo "$config" > "$dir/daemon.json"
    local cns
    cns="obe-$name-$(generation "$name")"
    # --bridge none keeps the engine off private address ranges.
    "${ns[@]}" "$dockerd" --containerd "$CTD_SOCK" --config-file "$dir/daemon.json" \
        --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/docker.pid" \
        -H "unix://$dir/docker.sock" \
        --containerd-namespace "$cns" --containerd-plugins-namespace "$cns-plugins" \
        --bridge none --iptables=false --ip6tables=false >"$dir/dockerd.log" 2>&1 &
    local pid=$! i
    for ((i = 0; i < 300; i++)); do
        answering "$name" && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    tail -n 20 "$dir/dockerd.log" >&2 || true
    die "engine '$name' did not start (log: $dir/dockerd.log)"
}

unmount_under() {
    # A daemon killed hard (as at the end of a CI session) leaves its mounts
    # behind; unmount them, deepest first, before anything deletes the folder.
    local dir=$1
    findmnt -rn -o TARGET | awk -v d="$dir/" 'index($0, d) == 1' | sort -r \
        | while read -r target; do umount -l "$target" 2>/dev/null || true; done
}

wipe() {
    # Remove a stopped engine's folder. A mount a shim still holds makes rm fail ("busy"): unmount and try
    # again, and if it still fails, move the folder out of the way (a fresh containerd namespace and data
    # root follow, so nothing reads it again): a reset must never leave the engine down.
    local dir=$1
    rm -rf "$dir" 2>/dev/null && return 0
    unmount_under "$dir"
    rm -rf "$dir" 2>/dev/null && return 0
    mkdir -p "$STATE/trash"
    mv "$dir" "$(mktemp -d "$STATE/trash/XXXXXX")/"
}

stop_engine() {
    stop_pidfile "$(engine_dir "$1")/docker.pid"
    rm -f "$(engine_sock "$1")"
    unmount_under "$(engine_dir "$1")"
}

# --- base images -------------------------------------------------------------

make_tarball() {
    # $1 target tarball, $2 function that fills the rootfs folder given as $1
    local target=$1 fill=$2
    [[ -s $target ]] && return 0
    mkdir -p "$IMAGES_DIR" "$STATE"
    (
        # Engine sets share the tarballs: one set makes each, another waits for it.
        flock 9
        [[ -s $target ]] && exit 0
        tmp=$(mktemp -d "$STATE/tmp.XXXXXX")
        "$fill" "$tmp/rootfs"
        tar -C "$tmp/rootfs" -cf "$target.partial" .
        mv "$target.partial" "$target"   # atomic: never a half tarball under the final name
        rm -rf "$tmp"
    ) 9>"$IMAGES_DIR/.lock"
}

fill_debian() {
    log "debootstrap bookworm (minbase), once; later runs only import the tarball"
    debootstrap --variant=minbase bookworm "$1" "$(mirror)" >"$STATE/debootstrap.log" 2>&1 \
        || { tail -n 20 "$STATE/debootstrap.log" >&2; die "debootstrap failed"; }
    rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*_Packages
}

fill_debian_arm64() {
    log "debootstrap bookworm for arm64 (minbase, under emulation), once; later runs only import the tarball"
    debootstrap --arch=arm64 --variant=minbase bookworm "$1" "$(mirror)" >"$STATE/debootstrap-arm64.log" 2>&1 \
        || { tail -n 20 "$STATE/debootstrap-arm64.log" >&2; die "debootstrap for arm64 failed"; }
    rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*_Packages
}

fill_busybox() {
    mkdir -p "$1/bin" "$1/tmp" "$1/etc"
    cp /bin/busybox "$1/bin/busybox"
    local cmd
    # busybox --list names busybox itself: linking that would replace the binary with a loop.
    for cmd in $(/bin/busybox --list); do [[ $cmd == busybox ]] || ln -sf busybox "$1/bin/$cmd"; done
}

images() {
    local name
    make_tarball "$IMAGES_DIR/debian-bookworm-slim.rootfs.tar" fill_debian
    make_tarball "$IMAGES_DIR/busybox-v2.rootfs.tar" fill_busybox
    make_tarball "$IMAGES_DIR/debian-bookworm-slim-arm64.rootfs.tar" fill_debian_arm64
    for name in "$@"; do
        # The arm64 Debian base: for ARM64 projects exported on this amd64 machine (containerd store only).
        [[ $name != online ]] || dk "$name" image inspect debian-arm64:bookworm-slim >/dev/null 2>&1 \
            || dk "$name" import --platform linux/arm64 --change 'CMD ["bash"]' \
                "$IMAGES_DIR/debian-bookworm-slim-arm64.rootfs.tar" debian-arm64:bookworm-slim >/dev/null
        dk "$name" image inspect debian:bookworm-slim >/dev/null 2>&1 \
            || dk "$name" import --change 'CMD ["bash"]' "$IMAGES_DIR/debian-bookworm-slim.rootfs.tar" debian:bookworm-slim >/dev/null
        dk "$name" image inspect busybox:local >/dev/null 2>&1 \
            || dk "$name" import --change 'CMD ["sh"]' "$IMAGES_DIR/busybox-v2.rootfs.tar" busybox:local >/dev/null
        [[ $name != online ]] || multi_platform_base "$name"
    done
}

# One image holding both Debian bases, as a registry's debian:bookworm-slim holds several
# platforms: a multi-platform build whose stages pick base-${TARGETARCH}, loaded as one image
# (the containerd store keeps an index; no registry needed). Nothing runs: no network either.
multi_platform_base() {
    dk "$1" image inspect debian-multi:bookworm-slim >/dev/null 2>&1 && return 0
    local ctx
    ctx=$(mktemp -d)
    printf '%s\n' 'FROM debian:bookworm-slim AS base-amd64' 'FROM debian-arm64:bookworm-slim AS base-arm64' \
        'FROM base-${TARGETARCH}' > "$ctx/Dockerfile"
    dk "$1" buildx build --platform linux/amd64,linux/arm64 --network none --load \
        --tag debian-multi:bookworm-slim "$ctx" >"$STATE/multi-platform-base.log" 2>&1 \
        || { rm -rf "$ctx"; tail -n 20 "$STATE/multi-platform-base.log" >&2; die "building debian-multi:bookworm-slim failed"; }
    rm -rf "$ctx"
}

# --- registries --------------------------------------------------------------

registry_answering() {
    # $1 registry name; asks its /v2/ endpoint from inside the right namespace.
    local ns=()
    [[ $1 == team ]] || ns=(ip netns exec "$NETNS")
    "${ns[@]}" busybox wget -q -O /dev/null "http://127.0.0.1:$REGISTRY_PORT/v2/" 2>/dev/null
}

start_registry() {
    local name=$1 dir=$STATE/registry-$1 ns=()
    [[ $name == team ]] || ns=(ip netns exec "$NETNS")
    mkdir -p "$dir/data"
    if alive "$dir/registry.pid" && registry_answering "$name"; then return 0; fi
    stop_pidfile "$dir/registry.pid"
    # Loopback only, no auth, deletes allowed: a test fixture, not a service.
    printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:%s\n' \
        "$dir/data" "$REGISTRY_PORT" > "$dir/config.yml"
    "${ns[@]}" docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
    echo $! > "$dir/registry.pid"
    local i
    for ((i = 0; i < 100; i++)); do
        registry_answering "$name" && return 0
        alive "$dir/registry.pid" || break
        sleep 0.1
    done
    tail -n 20 "$dir/registry.log" >&2 || true
    die "registry '$name' did not start (log: $dir/registry.log)"
}

registries() {
    mkdir -p "$STATE"
    install
    airgap
    start_registry team
    start_registry site
    echo "team=127.0.0.1:$REGISTRY_PORT"
    echo "site=127.0.0.1:$REGISTRY_PORT"
}

# --- commands ----------------------------------------------------------------

hosts() {
    local name
    for name in "${ALL_ENGINES[@]}"; do
        if alive "$(engine_dir "$name")/docker.pid"; then echo "$name=$(engine_host "$name")"; fi
    done
}

up() {
    local names=("$@") name
    ((${#names[@]})) || names=("${ALL_ENGINES[@]}")
    for name in "${names[@]}"; do valid_engine "$name"; done
    mkdir -p "$STATE"
    install
    emulation
    airgap
    start_containerd
    for name in "${names[@]}"; do start_engine "$name"; done
    # Only the build machine is seeded; the offline engine stays empty.
    for name in "${names[@]}"; do [[ $name != online ]] || images online; done
    for name in "${names[@]}"; do echo "$name=$(engine_host "$name")"; done
}

reset() {
    local name dir
    for name in "$@"; do
        valid_engine "$name"
        dir=$(engine_dir "$name")
        if answering "$name"; then
            dk "$name" buildx prune -af >/dev/null 2>&1 || true
            dk "$name" image ls -aq | sort -u | xargs -r docker -H "$(engine_host "$name")" image rm -f >/dev/null 2>&1 || true
        fi
        stop_engine "$name"
        wipe "$dir/data"
        wipe "$dir/exec"
        # A fresh containerd namespace: whatever the old one still holds is unreachable.
        echo $(($(generation "$name") + 1)) > "$dir/generation"
        start_containerd
        airgap
        start_engine "$name"
    done
}

down() {
    local names=("$@") name
    ((${#names[@]})) || names=("${ALL_ENGINES[@]}")
    for name in "${names[@]}"; do valid_engine "$name"; stop_engine "$name"; done
    if [[ -z $(hosts) ]]; then
        stop_pidfile "$STATE/registry-team/registry.pid"
        stop_pidfile "$STATE/registry-site/registry.pid"
        stop_pidfile "$CTD_DIR/containerd.pid"
        rm -f "$CTD_SOCK"
        if ip netns list 2>/dev/null | grep -qw "$NETNS"; then ip netns delete "$NETNS"; fi
    fi
}

status() {
    local name dir version store
    printf '%-8s %-8s %-8s %-14s %s\n' ENGINE STATE PID VERSION IMAGE-STORE
    for name in "${ALL_ENGINES[@]}"; do
        dir=$(engine_dir "$name")
        if alive "$dir/docker.pid" && answering "$name"; then
            version=$(dk "$name" version --format '{{.Server.Version}}')
            store=$(dk "$name" info --format '{{.DriverStatus}}' | grep -q snapshotter && echo containerd || echo classic)
            printf '%-8s %-8s %-8s %-14s %s\n' "$name" running "$(cat "$dir/docker.pid")" "$version" "$store"
        else
            printf '%-8s %-8s %-8s %-14s %s\n' "$name" stopped - - -
        fi
    done
}

main() {
    local cmd=${1:-help}
    shift || true
    case $cmd in
        install) mkdir -p "$STATE"; install ;;
        up) up "$@" ;;
        images) (($#)) || die "images needs engine names"; for n in "$@"; do valid_engine "$n"; done; images "$@" ;;
        reset) (($#)) || die "reset needs engine names"; reset "$@" ;;
        hosts) hosts ;;
        env) (($# == 1)) || die "env needs one engine name"; valid_engine "$1"; echo "export DOCKER_HOST=$(engine_host "$1")" ;;
        status) status ;;
        registries) registries ;;
        down|stop) down "$@" ;;
        help|-h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
        *) die "unknown command '$cmd' (try: $0 help)" ;;
    esac
}

main "$@"
