#!/bin/sh
# The image's pip install (containers/Dockerfile runs it): the project at $1 with the exact versions
# of its constraints.txt, the same file `make install` uses.
#   VARIANT=cuda  torch's CUDA build. A local wheel directory (PIP_FIND_LINKS) is dropped: its
#                 torch 2.13.0+cpu would sort above the CUDA build.
#   VARIANT=cpu   PIP_FIND_LINKS is used where it is set (torch's CPU wheel on local disk).
#   TORCH_INDEX   optional: a PyTorch wheel index, handed to pip as an extra index so that torch
#                 comes from it (its local version, e.g. 2.13.0+cu126, sorts above PyPI's 2.13.0):
#                 https://download.pytorch.org/whl/cu126 builds an image for drivers older than
#                 CUDA 13.0's (docs/containers.md).
#   PIP_CERT      optional: a CA bundle for pip.
set -eu
project=${1:?usage: pip-install.sh PROJECT_DIR}
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
case "${VARIANT:-}" in
    cuda) unset PIP_FIND_LINKS ;;
    cpu) if [ -n "${PIP_FIND_LINKS:-}" ]; then export PIP_FIND_LINKS; else unset PIP_FIND_LINKS; fi ;;
    *) echo "pip-install.sh: VARIANT must be cuda or cpu, got '${VARIANT:-}'" >&2; exit 1 ;;
esac
if [ -n "${PIP_CERT:-}" ]; then export PIP_CERT; else unset PIP_CERT; fi
if [ -n "${TORCH_INDEX:-}" ]; then export PIP_EXTRA_INDEX_URL="$TORCH_INDEX"; fi
pip install --constraint "$project/constraints.txt" "$project"
pip check
