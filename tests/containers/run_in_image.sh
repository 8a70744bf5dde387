#!/usr/bin/env bash
# Run a command inside a container image without `podman run` (which cannot set rlimits on some
# hosts): export the image's file system into ROOTFS once, then chroot into it in private mount
# and PID namespaces, as the image's user, with the image's environment and working directory.
#
#   tests/containers/run_in_image.sh IMAGE ROOTFS 'liquidbench --version'
#
# Needs root, podman, unshare and chroot. ROOTFS is created if it does not exist; it is reused
# as it is when it does (so that a second command sees what the first one wrote): an earlier
# export, or a container of the image mounted there (`podman mount`, as tests/containers/test_image.py
# gives it, which copies nothing).
set -euo pipefail

die() { echo "run_in_image.sh: $*" >&2; exit 1; }
(($# == 3)) || die "usage: run_in_image.sh IMAGE ROOTFS COMMAND"
image=$1 rootfs=$2 command=$3
[[ $(id -u) == 0 ]] || die "needs root (chroot, mounts)"

if [[ ! -e $rootfs/etc/passwd ]]; then
    mkdir -p "$rootfs"
    ctr=$(podman --cgroup-manager=cgroupfs create "$image")
    trap 'podman rm -f "$ctr" >/dev/null' EXIT
    podman export "$ctr" | tar --numeric-owner -x -C "$rootfs"
    # now: the exec below would skip an EXIT trap and leave the container behind
    podman rm -f "$ctr" >/dev/null
    trap - EXIT
fi

inspect() { podman image inspect --format "$1" "$image"; }
user=$(inspect '{{.Config.User}}')
workdir=$(inspect '{{.Config.WorkingDir}}')
mapfile -t env < <(inspect '{{range .Config.Env}}{{println .}}{{end}}' | sed '/^$/d')
user=${user:-root}
entry=$(awk -F: -v u="${user%%:*}" '$1 == u || $3 == u' "$rootfs/etc/passwd" | head -n 1)
[[ -n $entry ]] || die "user '$user' of $image is not in its /etc/passwd"
IFS=: read -r name _ uid gid _ home _ <<<"$entry"

# Mounts made in the private namespace vanish with it; nothing to clean up on the host.
exec unshare --mount --pid --fork --propagation private -- bash -c '
    set -eu
    root=$1; shift
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    # The host name must resolve (gloo binds to its address), as it does under Docker (its own
    # /etc/hosts names the container) and Apptainer (which binds the host'"'"'s).
    touch "$root/etc/hosts"
    mount --bind /etc/hosts "$root/etc/hosts"
    exec chroot --userspec="$1" "$root" /usr/bin/env -i "${@:2}"
' _ "$rootfs" "$uid:$gid" "${env[@]}" "HOME=$home" "USER=$name" \
    /bin/bash -c "cd '${workdir:-$home}' && $command"
