"""Build containers/Dockerfile with podman on a local Debian base and run the smoke study inside
the image; its tables must match those of the suite's run of the same study outside (same rows,
same metrics).

Slow (minutes): deselect locally with `-m "not container"`. Under CI a missing part fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from liquidbench import __version__
from liquidbench.study import study_runs

pytestmark = [pytest.mark.container, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from conftest import missing_part  # noqa: E402
from test_pins import canonical, read_pins  # noqa: E402

TAG = "localhost/liquidbench:test"
RUN_IN_IMAGE = REPO / "tests" / "containers" / "run_in_image.sh"
FIGURES = REPO / "build" / "container-test.json"
KEYS = ["dataset", "model", "hardware", "seed"]
OUTCOME = ["status", "metric_name", "test_metric", "final_train_loss", "best_val_metric", "best_epoch", "epochs_run", "n_params"]
# The smoke study's first seed with its sources in the copy's own mirror (the real traffic file and
# UCI HAR copy, the test-built HAR archive): inside the image there is no ../shared.
SEEDS = [0]
SMOKE = (f"snakemake --cores 2 --configfile .test/config/config.yaml --config data_mirror=[data/smoke-mirror] "
         f"'study={{seeds: {SEEDS}}}'")


def stage_mirror(workdir: Path, owner: tuple[int, int] | None = None) -> None:
    """The smoke study's source files in workdir/data/smoke-mirror, the whole data/ owned by owner."""
    from conftest import SHARED
    from har_archive import SMOKE_ARGS, SMOKE_FILE, build_har_archive

    mirror = workdir / "data" / "smoke-mirror"
    build_har_archive(mirror / SMOKE_FILE, **SMOKE_ARGS)
    for real in ("metro_interstate_traffic/Metro_Interstate_Traffic_Volume.csv.gz",
                 "uci_har/UCI_HAR_Dataset_inertial.zip"):
        shutil.copyfile(SHARED / "data" / real, mirror / Path(real).name)
    if owner is not None:
        for path in [workdir / "data", *(workdir / "data").rglob("*")]:
            os.chown(path, *owner)


def require_tools():
    missing = [tool for tool in ("podman", "debootstrap", "unshare", "chroot") if not shutil.which(tool)]
    problem = f"missing {', '.join(missing)} (apt-get install podman debootstrap)" if missing else None
    if os.geteuid() != 0:
        problem = "needs root (debootstrap, chroot)"
    if problem:
        missing_part("container test", problem)


def record(**figures):
    data = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    data.update(figures)
    FIGURES.parent.mkdir(exist_ok=True)
    FIGURES.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps(figures))


def run(cmd: list[str], timeout: int, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
    return proc


@dataclass(frozen=True)
class Build:
    proc: subprocess.Popen  # containers/build.sh, its stdout (the tag) a pipe
    log: Path  # its stderr
    start: float  # time.perf_counter() at its start


@pytest.fixture(scope="session", autouse=True)
def image_build(tmp_path_factory):
    """The image's build, started in the background when this module's first test sets up. The
    build mostly waits on downloads and the disk (debootstrap, apt, pip, writing the layers), and
    that test's other fixture, the suite's smoke run (conftest's smoke_run), needs the CPUs
    meanwhile: session-scoped like it, this fixture sets up first."""
    require_tools()
    log = tmp_path_factory.mktemp("image-build") / "build.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(REPO / "containers" / "build.sh"), "--debian-base", "--variant", "cpu", "--tag", TAG],
                                cwd=REPO, stdout=subprocess.PIPE, stderr=out, text=True, start_new_session=True)
    yield Build(proc, log, time.perf_counter())
    if proc.poll() is None:  # the session ended before a test needed the image: stop podman too
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def image(image_build) -> str:
    proc, log = image_build.proc, image_build.log
    try:
        out, _ = proc.communicate(timeout=1500)
    except subprocess.TimeoutExpired:
        pytest.fail(f"containers/build.sh ran past 1500 s:\n{log.read_text()[-4000:]}")
    assert proc.returncode == 0, f"containers/build.sh failed ({proc.returncode}):\n{log.read_text()[-8000:]}"
    assert out.strip().splitlines()[-1] == TAG
    size = int(run(["podman", "image", "inspect", "--format", "{{.Size}}", TAG], timeout=60).stdout)
    # the build's wall time, beside the smoke run
    record(image_build_s=round(time.perf_counter() - image_build.start, 1), image_size_mb=round(size / 1e6))
    return TAG


@pytest.fixture(scope="module")
def in_image(image):
    """Run a shell command inside the image (its user, environment and working directory). Its file
    system is a container of the image, mounted (podman mount): written files go to the container's
    own layer, not into the image, and nothing is copied."""
    podman = ["podman", "--cgroup-manager=cgroupfs"]
    container = run([*podman, "create", image], timeout=60).stdout.strip()
    try:
        rootfs = Path(run([*podman, "mount", container], timeout=60).stdout.strip())

        def run_in_image(command: str, timeout: int = 600) -> str:
            return run([str(RUN_IN_IMAGE), image, str(rootfs), command], timeout=timeout).stdout

        run_in_image.rootfs = rootfs
        yield run_in_image
    finally:
        subprocess.run([*podman, "rm", "--force", container], capture_output=True, timeout=120)


# First: its fixture smoke_run (the suite's own) runs while the image builds (image_build).
def test_smoke_study_inside_matches_outside(in_image, smoke_run):
    """The smoke study inside the image, its first seed, against the suite's own run of the whole
    study outside (conftest's smoke_run, the same study file and sources): the same tables, and the
    same numbers for every run of that seed."""
    uid, gid = map(int, in_image("rm -rf smoke && cp -r /opt/liquidbench/workflow smoke && id -u && id -g").split())
    inside = in_image.rootfs / "home" / "liquidbench" / "smoke"
    stage_mirror(inside, owner=(uid, gid))
    start = time.perf_counter()
    in_image(f"cd smoke && {SMOKE}", timeout=900)
    inside_s = time.perf_counter() - start
    outside = smoke_run

    tables = sorted(p.name for p in (outside / "results" / "tables").iterdir())
    assert sorted(p.name for p in (inside / "results" / "tables").iterdir()) == tables

    runs_in = pd.read_csv(inside / "results" / "tables" / "runs.csv")
    runs_out = pd.read_csv(outside / "results" / "tables" / "runs.csv")
    smoke = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())["study"]
    assert sorted(map(tuple, runs_out[KEYS].values.tolist())) == sorted(study_runs(smoke))
    runs_out = runs_out[runs_out["seed"].isin(SEEDS)].reset_index(drop=True)
    assert sorted(map(tuple, runs_in[KEYS].values.tolist())) == sorted(study_runs({**smoke, "seeds": SEEDS}))
    pd.testing.assert_frame_equal(runs_in[KEYS], runs_out[KEYS])
    assert (runs_in["status"] == "ok").all()
    assert runs_in["env.torch"].str.startswith("2.13.0").all()
    for kernel, model in (("ltc_kernel", "ltc_fast"), ("cfc_kernel", "cfc_fast")):
        path = {name: runs[f"env.{kernel}"].str.split(":").str[0] for name, runs in (("in", runs_in), ("out", runs_out))}
        pd.testing.assert_series_equal(path["in"], path["out"])
        assert set(path["in"][runs_in["model"] == model]) == {"compiled"}  # the image's gcc built them
    # Same binaries, CPU, one thread per job, same seeds: the same numbers, bit for bit. The fast
    # models' C kernels are built by each side's own gcc: bit for bit where it is the image's
    # (Debian bookworm's, as on this suite's CI machine), else within 1e-3 (each equals ncps within
    # 1e-5 a step, tests/test_fast_impl.py; two epochs of Adam may carry last bits further).
    same_gcc = in_image("gcc --version | head -n 1").strip() == subprocess.run(
        ["bash", "-c", "gcc --version | head -n 1"], capture_output=True, text=True).stdout.strip()
    fast_in, fast_out = (runs["model"].isin(["ltc_fast", "cfc_fast"]) for runs in (runs_in, runs_out))
    pd.testing.assert_frame_equal(runs_in.loc[~fast_in, OUTCOME], runs_out.loc[~fast_out, OUTCOME], check_exact=True)
    pd.testing.assert_frame_equal(runs_in.loc[fast_in, OUTCOME], runs_out.loc[fast_out, OUTCOME], check_exact=same_gcc,
                                  rtol=1e-3)
    labels = json.loads(run(["podman", "image", "inspect", "--format", "{{json .Labels}}", TAG], timeout=60).stdout)
    assert (runs_in["env.git_commit"] == labels["org.opencontainers.image.revision"]).all()

    losses = ["epoch", "train_loss", "val_loss", "val_metric"]
    hist_in = pd.read_csv(inside / "results" / "tables" / "history.csv")
    hist_out = pd.read_csv(outside / "results" / "tables" / "history.csv")
    hist_out = hist_out[hist_out["seed"].isin(SEEDS)].reset_index(drop=True)
    fast_in, fast_out = (hist["model"].isin(["ltc_fast", "cfc_fast"]) for hist in (hist_in, hist_out))
    pd.testing.assert_frame_equal(hist_in.loc[~fast_in, KEYS + losses], hist_out.loc[~fast_out, KEYS + losses],
                                  check_exact=True)
    pd.testing.assert_frame_equal(hist_in.loc[fast_in, KEYS + losses], hist_out.loc[fast_out, KEYS + losses],
                                  check_exact=same_gcc, rtol=1e-3)

    summary_in = pd.read_csv(inside / "results" / "tables" / "summary.csv")
    summary_out = pd.read_csv(outside / "results" / "tables" / "summary.csv")
    assert list(summary_in.columns) == list(summary_out.columns) and len(summary_in) == len(summary_out)

    record(
        smoke_inside_s=round(inside_s, 1),
        runs_compared=len(runs_out),
        max_abs_test_metric_diff=float((runs_in["test_metric"] - runs_out["test_metric"]).abs().max()),
    )


def test_image_metadata_and_entry_point(image, in_image):
    labels = json.loads(run(["podman", "image", "inspect", "--format", "{{json .Labels}}", image], timeout=60).stdout)
    head = run(["git", "rev-parse", "HEAD"], timeout=60, cwd=REPO).stdout.strip()
    assert labels["org.opencontainers.image.version"] == __version__
    assert re.fullmatch(rf"{head}(-dirty)?", labels["org.opencontainers.image.revision"])

    out = in_image("liquidbench --version; id -u; echo $LIQUIDBENCH_GIT_COMMIT; command -v liquidbench; python --version; "
                   "command -v gcc; cat /opt/liquidbench/BUILD")
    version, uid, commit, exe, python, gcc, *build = out.split("\n")[:8]
    # the image's record of what it was built from, made by a RUN (which a new commit always reruns)
    assert build == [f"version {__version__}", f"commit {labels['org.opencontainers.image.revision']}"]
    assert version == f"liquidbench {__version__}"
    assert int(uid) != 0, "the image runs as root"
    assert commit == labels["org.opencontainers.image.revision"]
    assert exe == "/opt/liquidbench/venv/bin/liquidbench"
    assert python.startswith("Python 3.11.")
    assert gcc == "/usr/bin/gcc"  # for the fast models' compiled kernels


KERNEL_CHECK = """
import torch
from liquidbench.models import build_model, cfc_kernel, ltc_kernel
x = torch.randn(3, 6, 2)
for spec in ({"type": "ltc", "units": 8, "ode_unfolds": 3}, {"type": "cfc", "units": 8, "backbone_units": 16}):
    torch.manual_seed(0)
    ref = build_model({**spec, "impl": "ncps"}, 2, 1, "regression_per_step")
    fast = build_model({**spec, "impl": "fast"}, 2, 1, "regression_per_step")
    fast.load_state_dict(ref.state_dict())
    torch.testing.assert_close(fast(x), ref(x), rtol=1e-5, atol=1e-5)
print(ltc_kernel.status(), cfc_kernel.status(), ltc_kernel.KERNEL.build["path"], cfc_kernel.KERNEL.build["path"])
"""


def test_image_builds_and_uses_the_compiled_kernels(in_image):
    """The image's gcc builds the fast LTC's and CfC's kernels into the user's cache at first use,
    and the fast models then use them and agree with ncps."""
    out = in_image(f"rm -rf ~/.cache/liquidbench && python - <<'EOF'\n{KERNEL_CHECK}\nEOF").split()
    assert out[:2] == ["compiled", "compiled"], out
    assert all(p.startswith("/home/liquidbench/.cache/liquidbench/") for p in out[2:4]), out


def test_image_has_exactly_the_pinned_versions(in_image):
    pins = read_pins()
    installed = json.loads(in_image("pip list --format=json"))
    versions = {canonical(d["name"]): d["version"] for d in installed}
    unpinned = sorted(set(versions) - set(pins) - {"pip", "liquidbench"})
    assert not unpinned, f"installed in the image but not pinned in constraints.txt: {unpinned}"
    wrong = {n: (v, pins[n]) for n, v in versions.items() if n in pins and v.split("+")[0] != pins[n]}
    assert not wrong, f"image versions differ from constraints.txt (installed, pinned): {wrong}"
    # Everything the package needs at run time is there; only the test extra is left out (triton too:
    # in the test extra for the interpreter tests, and in the cuda variant as torch's CUDA build's own
    # requirement; this is the cpu variant).
    test_extra = {"pytest", "iniconfig", "pluggy", "pygments",
                  "snakefmt", "black", "click", "mypy-extensions", "pathspec", "pytokens", "shfmt-py", "triton"}
    assert set(pins) - set(versions) <= test_extra
    assert versions["torch"].startswith("2.13.0")
