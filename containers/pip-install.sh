#!/bin/sh
# The image's pip steps (containers/Dockerfile runs both), with the exact versions of
# PROJECT/constraints.txt, the same file `make install` uses:
#   pip-install.sh deps PROJECT      the dependencies of PROJECT/pyproject.toml ([project]
#                                    dependencies), before the sources are copied: a layer that
#                                    changes only with pyproject.toml or constraints.txt
#   pip-install.sh project PROJECT   the project itself (its dependencies are there), then pip check
# Settings, from the environment:
#   VARIANT=cuda  torch's CUDA build. A local wheel directory (PIP_FIND_LINKS) is dropped: its
#                 torch 2.13.0+cpu would sort above the CUDA build.
#   VARIANT=cpu   PIP_FIND_LINKS is used where it is set (torch's CPU wheel on local disk).
#   TORCH_INDEX   optional: a PyTorch wheel index, handed to pip as an extra index so that torch
#                 comes from it (its local version, e.g. 2.13.0+cu126, sorts above PyPI's 2.13.0):
#                 https://download.pytorch.org/whl/cu126 builds an image for drivers older than
#                 CUDA 13.0's (docs/containers.md).
#   PIP_CERT      optional: a CA bundle for pip.
set -eu
step=${1:?usage: pip-install.sh deps|project PROJECT_DIR}
project=${2:?usage: pip-install.sh deps|project PROJECT_DIR}
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
case "${VARIANT:-}" in
    cuda) unset PIP_FIND_LINKS ;;
    cpu) if [ -n "${PIP_FIND_LINKS:-}" ]; then export PIP_FIND_LINKS; else unset PIP_FIND_LINKS; fi ;;
    *) echo "pip-install.sh: VARIANT must be cuda or cpu, got '${VARIANT:-}'" >&2; exit 1 ;;
esac
if [ -n "${PIP_CERT:-}" ]; then export PIP_CERT; else unset PIP_CERT; fi
if [ -n "${TORCH_INDEX:-}" ]; then export PIP_EXTRA_INDEX_URL="$TORCH_INDEX"; fi
case "$step" in
    deps)
        requirements=$(mktemp)
        trap 'rm -f "$requirements"' EXIT
        python -c 'import sys, tomllib; print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))' \
            "$project/pyproject.toml" > "$requirements"
        pip install --constraint "$project/constraints.txt" --requirement "$requirements" ;;
    project)
        pip install --no-deps --constraint "$project/constraints.txt" "$project"
        pip check ;;
    *) echo "pip-install.sh: the step must be deps or project, got '$step'" >&2; exit 1 ;;
esac
