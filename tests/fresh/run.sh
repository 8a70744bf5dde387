#!/usr/bin/env bash
# The test suite as a new user meets it: a fresh Debian bookworm with only python3, python3-venv,
# make, git and ca-certificates (a debootstrap chroot), a clone of this checkout's committed HEAD,
# and README's commands run by an unprivileged user with CI unset.
#
#   tests/fresh/run.sh                          # make test
#   tests/fresh/run.sh make test-fast           # any command, run in the clone's root
#   tests/fresh/run.sh 'make install && .venv/bin/pytest -ra -m "not slow"'
#
# Needs root and debootstrap (apt-get install debootstrap). The chroot (FRESH_ROOT, default
# /var/tmp/liquidbench-fresh) is built once from the Debian mirror apt on this machine uses
# (DEBIAN_MIRROR overrides) and kept: each run makes a new clone in it (delete FRESH_ROOT to start
# from scratch). The host's /etc/hosts and /etc/resolv.conf are copied in, /proc, /sys and /dev
# bind-mounted for the run; ../shared (the real data the tests read) is copied beside the clone.
# Slurm and container tests skip there with their reason, as on a user's machine without those parts.
#
# FRESH_REV=REV: test that commit instead of HEAD.
# FRESH_CA_BUNDLE=FILE: the CA bundle pip verifies PyPI with (copied in, as PIP_CERT), for a
# network whose TLS proxy only the host trusts (e.g. /etc/ssl/certs/ca-certificates.crt).
# FRESH_WHEELS=DIR: a folder of wheels that pip may also take packages from (mounted read-only as
# PIP_FIND_LINKS), e.g. a torch CPU wheel instead of PyPI's multi-gigabyte CUDA build; every other
# package comes from PyPI.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(git -C "$HERE" rev-parse --show-toplevel)
ROOT=${FRESH_ROOT:-/var/tmp/liquidbench-fresh}
SUITE=bookworm
PACKAGES=python3,python3-venv,make,git,ca-certificates
USER_NAME=newuser
CMD=${*:-make test}
REV=$(git -C "$REPO" rev-parse "${FRESH_REV:-HEAD}")

die() { echo "fresh/run.sh: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "needs root (debootstrap, chroot, mounts)"
command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"

if [[ ! -x $ROOT/usr/bin/python3 ]]; then
    mirror=${DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
    mirror=${mirror:-http://deb.debian.org/debian}
    echo "fresh/run.sh: debootstrap --variant=minbase --include=$PACKAGES $SUITE from $mirror" >&2
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT" "$mirror" >&2
    chroot "$ROOT" useradd --create-home --shell /bin/bash "$USER_NAME"
fi
cp /etc/hosts /etc/resolv.conf "$ROOT/etc/"

mounted=()
cleanup() {
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount "${mounted[i]}" || umount -l "${mounted[i]}"; done
}
trap cleanup EXIT
for fs in proc sys dev; do
    mount --bind "/$fs" "$ROOT/$fs"
    mounted+=("$ROOT/$fs")
done
pip_env=()
if [[ -n ${FRESH_WHEELS:-} ]]; then
    mkdir -p "$ROOT/wheels"
    mount --bind -o ro "$FRESH_WHEELS" "$ROOT/wheels"
    mounted+=("$ROOT/wheels")
    pip_env=(PIP_FIND_LINKS=/wheels)
fi

if [[ -n ${FRESH_CA_BUNDLE:-} ]]; then
    cp "$FRESH_CA_BUNDLE" "$ROOT/etc/ssl/certs/fresh-run-ca-bundle.crt"
    pip_env+=(PIP_CERT=/etc/ssl/certs/fresh-run-ca-bundle.crt)
fi

home=/home/$USER_NAME
work=$home/work
rm -rf "$ROOT$work"
mkdir -p "$ROOT$work"
git init --quiet "$ROOT$work/liquidbench"
git -C "$ROOT$work/liquidbench" fetch --quiet "$REPO" "$REV"
git -C "$ROOT$work/liquidbench" checkout --quiet FETCH_HEAD
[[ -d $REPO/../shared ]] && cp -a "$REPO/../shared" "$ROOT$work/shared"
chroot "$ROOT" chown -R "$USER_NAME:$USER_NAME" "$work"

echo "fresh/run.sh: in $ROOT as $USER_NAME, commit ${REV:0:12}: $CMD" >&2
chroot --userspec="$USER_NAME:$USER_NAME" "$ROOT" /usr/bin/env -i HOME="$home" USER="$USER_NAME" \
    PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 "${pip_env[@]}" \
    /bin/bash -c "cd $work/liquidbench && $CMD"
