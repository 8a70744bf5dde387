"""`make install`, the Dockerfile and the Apptainer definition use one list of exact versions."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from liquidbench import __version__

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPO / "constraints.txt"
DOCKERFILE = REPO / "containers" / "Dockerfile"
APPTAINER_DEF = REPO / "containers" / "liquidbench.def"

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][A-Za-z0-9.+!-]*)$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path = CONSTRAINTS) -> dict[str, str]:
    """constraints.txt as {canonical name: version}; every line is a comment or one exact pin."""
    pins: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = PIN.match(line)
        assert m, f"{path.name}:{number}: expected 'name==version', got {raw!r}"
        name = canonical(m.group(1))
        assert name not in pins, f"{path.name}:{number}: {m.group(1)} is pinned twice"
        pins[name] = m.group(2)
    return pins


def dockerfile_instructions(text: str) -> list[str]:
    """Instructions with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#")))
    return [line.strip() for line in joined.splitlines() if line.strip()]


def pip_installs(command: str) -> list[str]:
    """Every `pip install ...` (or `python -m pip install`) in a shell command, up to its `;`/`&&`."""
    return [m.group(0) for m in re.finditer(r"\bpip3?(\.\d+)? install\b[^;&|]*", command)]


def test_constraints_pin_every_dependency_exactly():
    pins = read_pins()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["test"]
    for requirement in requirements:
        name = canonical(re.match(r"[A-Za-z0-9._-]+", requirement).group(0))
        assert name in pins, f"pyproject dependency {requirement!r} has no exact pin in constraints.txt"
    assert pins["torch"] == "2.13.0"


def test_make_install_uses_constraints():
    makefile = (REPO / "Makefile").read_text()
    installs = [l for l in makefile.splitlines() if re.search(r"pip install .*-e ", l)]
    assert installs, "Makefile: no 'pip install -e' line in the install recipe"
    for line in installs:
        assert re.search(r"(-c|--constraint)[ =]constraints\.txt\b", line), f"Makefile installs without constraints.txt: {line.strip()}"


def test_dockerfile_installs_with_the_same_constraints():
    """The image installs pyproject's dependencies, then the project, both through
    containers/pip-install.sh with the repository's constraints.txt (what pip gets is
    tests/test_image_variants.py's); the dependencies' layer comes before the sources."""
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    copies = [i for i in instructions if i.startswith("COPY ") and "constraints.txt" in i.split()]
    assert copies, "Dockerfile does not copy constraints.txt from the repository root"
    assert copies[0].split()[1:-1] == ["constraints.txt", "pyproject.toml", "containers/pip-install.sh"]
    assert copies[0].split()[-1] == "/opt/liquidbench/"
    runs = [i for i in instructions if i.startswith("RUN ")]
    assert not [p for i in runs for p in pip_installs(i)], "pip runs outside containers/pip-install.sh"
    steps = [(n, m.group(1)) for n, i in enumerate(instructions)
             for m in re.finditer(r"sh /opt/liquidbench/pip-install\.sh (\w+) /opt/liquidbench(?:;|$)", i)]
    assert [step for _, step in steps] == ["deps", "project"], steps
    sources = instructions.index("COPY src /opt/liquidbench/src")
    assert steps[0][0] < sources < steps[1][0]
    script = (REPO / "containers" / "pip-install.sh").read_text()
    installs = [install.split("\n")[0].strip() for install in pip_installs(script)]
    assert len(installs) == 2
    for install in installs:
        assert re.search(r'--constraint "\$project/constraints.txt"', install), install
        # No second list of versions and no index in the command (TORCH_INDEX, where given, is an extra index)
        assert "==" not in install and "index-url" not in install, install
    assert installs[0].split()[-2:] == ["--requirement", '"$requirements"']  # pyproject's dependencies
    assert installs[1].split()[-1] == '"$project"' and "--no-deps" in installs[1]


def test_dockerfile_base_and_labels():
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    base = next(i for i in instructions if i.startswith("ARG BASE="))
    assert re.search(r"python:3\.11[-.\w]*slim", base), base
    assert instructions[instructions.index(base) + 1] == "FROM ${BASE}"
    labels = " ".join(i for i in instructions if i.startswith("LABEL "))
    assert 'org.opencontainers.image.version="${VERSION}"' in labels
    assert 'org.opencontainers.image.revision="${GIT_COMMIT}"' in labels
    assert any(re.match(r"ENV .*LIQUIDBENCH_GIT_COMMIT=\$\{GIT_COMMIT\}", i) for i in instructions)
    users = [i.split()[1] for i in instructions if i.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "the image must run as a non-root user"


def test_apptainer_definition_comes_from_the_same_image():
    text = APPTAINER_DEF.read_text()
    header = dict(re.findall(r"^(Bootstrap|From):\s*(.+?)\s*$", text, re.M))
    assert header["Bootstrap"] == "docker"
    default = re.search(r"^%arguments\s*\n\s*IMAGE=(\S+)", text, re.M)
    assert header["From"] == "{{ IMAGE }}" and default, "From: must be the published image ({{ IMAGE }})"
    assert default.group(1).endswith(f"/liquidbench:{__version__}"), (
        f"liquidbench.def builds from {default.group(1)}, expected the image of version {__version__}"
    )
    # Nothing of its own is installed: no %post, no pip, no versions.
    assert "%post" not in text
    assert not pip_installs(text) and "==" not in text


@pytest.mark.parametrize(
    "bad",
    ["torch>=2.13", "torch==2.13.0\ntorch==2.13.0", "numpy"],
)
def test_read_pins_rejects_loose_or_repeated_lines(tmp_path, bad):
    path = tmp_path / "constraints.txt"
    path.write_text(bad + "\n")
    with pytest.raises(AssertionError, match="constraints.txt"):
        read_pins(path)
