#!/usr/bin/env bash
# Build the Apptainer image liquidbench-VERSION.sif from this repository (`make sif`): the image of
# containers/Dockerfile (variant cuda, the one GPU nodes run, or --variant cpu) built with Docker,
# or with podman through containers/build.sh, saved as a docker archive and converted by Apptainer.
#
#   containers/build-sif.sh                  # liquidbench-VERSION.sif (CUDA)
#   containers/build-sif.sh --variant cpu    # liquidbench-VERSION-cpu.sif
#   containers/build-sif.sh --out /scratch/$USER/liquidbench.sif
#   containers/build-sif.sh --torch-index https://download.pytorch.org/whl/cu126   # -cu126.sif, drivers < 580
#
# Needs Apptainer (or SingularityCE) and Docker or podman, and network access to PyPI. Prints the
# .sif path on its last line; run a study in it with --config container=THAT_PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "build-sif.sh: $*" >&2; exit 1; }

variant=cuda
out=""
torch_index=""
while (($#)); do
    case $1 in
        --variant) variant=${2:?--variant needs cuda or cpu}; shift 2 ;;
        --out) out=${2:?--out needs a path}; shift 2 ;;
        --torch-index) torch_index=${2:?--torch-index needs a URL}; shift 2 ;;
        *) die "unknown argument '$1' (expected --variant cuda|cpu, --out PATH, --torch-index URL)" ;;
    esac
done
[[ $variant == cuda || $variant == cpu ]] || die "--variant must be cuda or cpu, got '$variant'"
apptainer=$(command -v apptainer || command -v singularity) ||
    die "Apptainer is not installed (https://apptainer.org/docs/admin/main/installation.html)"
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' src/liquidbench/__init__.py)
[[ -n $version ]] || die "no __version__ in src/liquidbench/__init__.py"
suffix=""
[[ $variant == cuda ]] || suffix="-$variant"
if [[ -n $torch_index ]]; then
    index_name=${torch_index%/}
    index_name=${index_name##*/}
    [[ $index_name =~ ^[A-Za-z0-9_.-]+$ ]] || die "--torch-index '$torch_index' does not end in a name (e.g. .../whl/cu126)"
    suffix="$suffix-$index_name"
fi
out=${out:-liquidbench-$version$suffix.sif}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/liquidbench-sif.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    tag=liquidbench:$version$suffix
    docker build -f containers/Dockerfile -t "$tag" --build-arg "VERSION=$version" \
        --build-arg "GIT_COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)" --build-arg "VARIANT=$variant" \
        --build-arg "TORCH_INDEX=$torch_index" . >&2
    docker save -o "$tmp/image.tar" "$tag"
elif command -v podman >/dev/null; then
    tag=$(containers/build.sh --variant "$variant" ${torch_index:+--torch-index "$torch_index"} | tail -n 1)
    podman save --format docker-archive -o "$tmp/image.tar" "$tag"
else
    die "neither Docker nor podman is available to build containers/Dockerfile"
fi
# written beside the target and moved into place: an interrupted build leaves no partial .sif
"$apptainer" build "$tmp/image.sif" "docker-archive://$tmp/image.tar" >&2
mv "$tmp/image.sif" "$out"
echo "$out"
