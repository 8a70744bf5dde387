"""The container images of this version: names, variants, and the check of a study's `container:`.

Two variants come from containers/Dockerfile (build argument ``VARIANT``): ``cuda``, the image GPU
nodes run (torch 2.13.0's CUDA build from PyPI, with triton), published as
``ghcr.io/liquidbench/liquidbench:<version>``; and ``cpu``, for CI and laptops (torch's CPU build
where a local wheel directory holds it), tagged ``<version>-cpu``. ``make sif`` builds the Apptainer
image ``liquidbench-<version>.sif`` from this repository.
"""

from __future__ import annotations

from pathlib import Path

from . import __version__

REGISTRY = "ghcr.io/liquidbench/liquidbench"
VARIANTS = ("cuda", "cpu")
# Whether the registry holds this version's image yet; until it does, a study that names it gets
# the command that builds it instead of a failed pull.
PUBLISHED = False


def published_image(version: str = __version__) -> str:
    """The reference config/config.yaml names: the CUDA image of this version."""
    return f"docker://{REGISTRY}:{version}"


def sif_name(version: str = __version__) -> str:
    return f"liquidbench-{version}.sif"


BUILD_HINT = "build it here with `make sif` (Apptainer plus Docker or podman) and run with --config container={sif}"


def container_problem(container: str, version: str = __version__, published: bool = PUBLISHED) -> str | None:
    """One line saying why jobs cannot run in ``container`` and how to build the image, or None.
    Called only where jobs run in the image (Snakemake's --sdm apptainer)."""
    hint = BUILD_HINT.format(sif=sif_name(version))
    if container == published_image(version) and not published:
        return f"container '{container}' is not in any registry yet: {hint}"
    if "://" not in container and not Path(container).exists():
        return f"container '{container}': no such image file: {hint}"
    return None
