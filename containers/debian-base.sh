#!/usr/bin/env bash
# Make a plain Debian bookworm base image locally, for machines that reach no container registry:
# debootstrap --variant=minbase from the Debian mirror this machine's apt already uses, imported
# into podman. Prints the image reference, to pass as `--build-arg BASE=...`.
#
#   containers/debian-base.sh            # -> localhost/debian-bookworm-minbase:latest
#
# The root filesystem tarball is cached (LIQUIDBENCH_CACHE, default ~/.cache/liquidbench); delete
# it to start from scratch. Needs root, debootstrap and podman.
set -euo pipefail

SUITE=bookworm
IMAGE=${DEBIAN_BASE_IMAGE:-localhost/debian-${SUITE}-minbase:latest}
CACHE=${LIQUIDBENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/liquidbench}
TARBALL=$CACHE/debian-$SUITE-minbase.tar

die() { echo "debian-base.sh: $*" >&2; exit 1; }

# The first Debian archive URI that apt on this machine is configured with (deb822 or one-line form).
apt_mirror() {
    local uri
    uri=$(
        {
            for f in /etc/apt/sources.list.d/*.sources; do
                [[ -e $f ]] && awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' "$f"
            done
            for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
                [[ -e $f ]] && awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) {print $i; break}}' "$f"
            done
        } | grep -E '/debian/?$' | grep -v -- '-security' | head -n 1
    )
    [[ -n $uri ]] || die "no Debian mirror found in /etc/apt/sources.list*; set DEBIAN_MIRROR"
    echo "$uri"
}

command -v podman >/dev/null || die "podman is not installed (apt-get install podman)"
if ! podman image exists "$IMAGE"; then
    if [[ ! -s $TARBALL ]]; then
        command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
        [[ $(id -u) == 0 ]] || die "debootstrap needs root"
        mirror=${DEBIAN_MIRROR:-$(apt_mirror)}
        mkdir -p "$CACHE"
        root=$(mktemp -d "$CACHE/rootfs.XXXXXX")
        trap 'rm -rf "$root"' EXIT
        echo "debian-base.sh: debootstrap --variant=minbase $SUITE from $mirror" >&2
        debootstrap --variant=minbase "$SUITE" "$root" "$mirror" >&2
        rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
        tar --numeric-owner -C "$root" -cf "$TARBALL.tmp" .
        mv "$TARBALL.tmp" "$TARBALL"
    fi
    podman import --change 'CMD ["/bin/bash"]' "$TARBALL" "$IMAGE" >&2
fi
echo "$IMAGE"
