#!/usr/bin/env bash
# Build containers/Dockerfile with podman on a machine without a Docker engine or registry access.
#
#   containers/build.sh                      # the CUDA image, official Python base (needs a registry)
#   containers/build.sh --variant cpu        # the CPU image (CI, laptops)
#   containers/build.sh --debian-base        # local Debian bookworm base (containers/debian-base.sh)
#   containers/build.sh --base IMAGE --tag localhost/liquidbench:dev
#   containers/build.sh --torch-index https://download.pytorch.org/whl/cu126   # CUDA 12.6, drivers < 580
#
# Prints the image reference on its last line (localhost/liquidbench:VERSION for cuda,
# VERSION-cpu for cpu). Passes VERSION (from the package), GIT_COMMIT (HEAD, "-dirty" when the
# tree has changes) and VARIANT as build arguments. The CA bundle ($PIP_CERT or $SSL_CERT_FILE) is
# mounted into the build when it exists. A local wheel directory ($LIQUIDBENCH_WHEELS, default
# /opt/wheels, e.g. torch's CPU wheel) is handed to pip for the cpu variant only: its torch
# 2.13.0+cpu would sort above PyPI's CUDA build, so the cuda variant takes everything from PyPI.
# --torch-index URL hands pip a PyPI-style index that torch comes from (build argument TORCH_INDEX,
# containers/pip-install.sh): the tag gets the index's last path component as a suffix
# (localhost/liquidbench:VERSION-cu126).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "build.sh: $*" >&2; exit 1; }

base=""
tag=""
variant=cuda
torch_index=""
while (($#)); do
    case $1 in
        --base) base=${2:?--base needs an image}; shift 2 ;;
        --debian-base) base=$(containers/debian-base.sh); shift ;;
        --tag) tag=${2:?--tag needs a name}; shift 2 ;;
        --variant) variant=${2:?--variant needs cuda or cpu}; shift 2 ;;
        --torch-index) torch_index=${2:?--torch-index needs a URL}; shift 2 ;;
        *) die "unknown argument '$1' (expected --base IMAGE, --debian-base, --tag NAME, --variant cuda|cpu, --torch-index URL)" ;;
    esac
done
[[ $variant == cuda || $variant == cpu ]] || die "--variant must be cuda or cpu, got '$variant'"

command -v podman >/dev/null || die "podman is not installed (apt-get install podman)"
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' src/liquidbench/__init__.py)
[[ -n $version ]] || die "no __version__ in src/liquidbench/__init__.py"
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [[ $commit != unknown && -n $(git status --porcelain 2>/dev/null) ]]; then
    commit="$commit-dirty"
fi
suffix=""
[[ $variant == cuda ]] || suffix="-$variant"
if [[ -n $torch_index ]]; then
    index_name=${torch_index%/}
    index_name=${index_name##*/}
    [[ $index_name =~ ^[A-Za-z0-9_.-]+$ ]] || die "--torch-index '$torch_index' does not end in a name for the tag (e.g. .../whl/cu126)"
    suffix="$suffix-$index_name"
fi
tag=${tag:-localhost/liquidbench:$version$suffix}

args=(--build-arg "VERSION=$version" --build-arg "GIT_COMMIT=$commit" --build-arg "VARIANT=$variant")
[[ -z $base ]] || args+=(--build-arg "BASE=$base")
[[ -z $torch_index ]] || args+=(--build-arg "TORCH_INDEX=$torch_index")
ca=${PIP_CERT:-${SSL_CERT_FILE:-}}
if [[ -n $ca && -f $ca ]]; then
    # Mounted beside, not over, the image's own bundle: dpkg owns that path in the image.
    args+=(--volume "$(realpath "$ca"):/run/build-ca.crt:ro" --build-arg PIP_CERT=/run/build-ca.crt)
fi
wheels=${LIQUIDBENCH_WHEELS:-/opt/wheels}
if [[ $variant == cpu && -d $wheels ]]; then
    args+=(--volume "$(realpath "$wheels"):/run/wheels:ro" --build-arg PIP_FIND_LINKS=/run/wheels)
fi

echo "build.sh: building $tag (variant $variant, base ${base:-Dockerfile default}, torch from ${torch_index:-PyPI}, commit $commit)" >&2
podman --cgroup-manager=cgroupfs build --isolation chroot --network host \
    -f containers/Dockerfile -t "$tag" "${args[@]}" . >&2
echo "$tag"
