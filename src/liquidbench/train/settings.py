"""Training and hardware settings of a run: the one home of their defaults and of their checks.

Each setting is one field of a frozen dataclass: its default and what it must be stand together.
``Training.from_params`` and ``Hardware.from_entry`` build them once from a config's mappings
(``liquidbench train`` takes those as JSON from any source: the workflow, ``--config``, a person);
a bad value is an error naming the key and what was expected. Everything after reads them by
attribute. The workflow builds the hardware entries here too (liquidbench.workflow), so that Slurm
requests, launchers and training all see the same values. The config schema (workflow/schemas) lists
the same keys without defaults; tests/test_schema.py checks that they agree.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields

OPTIMIZER_IMPLS = ("default", "foreach", "fused")

# what a value may be: a number is an int or a float, never a bool or a string
_INT, _NUM, _BOOL = (int,), (int, float), (bool,)


def setting(default, types: tuple, ok, what: str):
    """A dataclass field with its default and its check: (types, test, what it must be)."""
    return field(default=default, metadata={"check": (types, ok, what)})


def check_fields(where: str, obj) -> None:
    """Every field of ``obj`` that has a check passes it; else an error naming the key."""
    for f in fields(obj):
        if "check" not in f.metadata:
            continue
        types, ok, what = f.metadata["check"]
        value = getattr(obj, f.name)
        typed = isinstance(value, types) and (bool in types or not isinstance(value, bool))
        if not typed or not ok(value):
            hint = (" (a quoted number is a string: write it without quotes)"
                    if isinstance(value, str) and float in types else "")
            raise ValueError(f"{where}: {f.name} must be {what}, got {value!r}{hint}")


def defaults_of(cls) -> dict:
    """A settings class's defaults as a mapping (fields without a default left out)."""
    return {f.name: f.default for f in fields(cls) if f.default is not MISSING}


@dataclass(frozen=True, kw_only=True)
class Training:
    """`training:` of a config (and a data set's or a model's own `training:`)."""

    epochs: int = setting(10, _INT, lambda v: v >= 1, "an integer >= 1")
    batch_size: int = setting(64, _INT, lambda v: v >= 1, "an integer >= 1")
    eval_batch_size: int = setting(512, _INT, lambda v: v >= 1, "an integer >= 1")
    lr: float = setting(0.005, _NUM, lambda v: v > 0, "a number > 0")
    lr_decay: float = setting(1.0, _NUM, lambda v: 0 < v <= 1, "a number in (0, 1]")
    grad_clip: float = setting(1.0, _NUM, lambda v: v >= 0, "a number >= 0 (0 disables clipping)")
    weight_decay: float = setting(0.0, _NUM, lambda v: v >= 0, "a number >= 0")
    drop_last: bool = setting(False, _BOOL, lambda v: True, "true or false")
    # how Adam and clipping run over the parameters (liquidbench.train.optim); fused: one kernel for
    # all parameters, every model alike (about 1 ms off a CPU step at the study's sizes, issue 23)
    optimizer_impl: str = setting("fused", (str,), lambda v: v in OPTIMIZER_IMPLS, f"one of {list(OPTIMIZER_IMPLS)}")
    # a run diverges when its validation loss is not finite, or above this multiple of the untrained
    # model's validation loss (measured before the first epoch): an optimiser that makes the model
    # ten times worse than where it started has left the problem (lr 1e4 gave MSE 1e7 to 3.5e27)
    divergence_factor: float = setting(10.0, _NUM, lambda v: v > 1, "a number > 1")

    def __post_init__(self):
        check_fields("training", self)

    @classmethod
    def from_params(cls, params: dict | None) -> Training:
        """``params`` over the defaults; an unknown key or a bad value is an error naming it."""
        params = params or {}
        unknown = set(params) - set(TRAINING_DEFAULTS)
        if unknown:
            raise ValueError(f"training: unknown parameter(s) {sorted(unknown)}, expected {sorted(TRAINING_DEFAULTS)}")
        return cls(**params)

    def as_dict(self) -> dict:
        """Every setting, in field order (metrics.json's ``train_params``)."""
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class Resources:
    """A hardware entry's `resources:` (per node; liquidbench.slurm turns them into a Slurm request).
    The config schema requires `mem_mb` and `runtime`; a run started by hand may leave them out."""

    cpus_per_task: int = setting(1, _INT, lambda v: v >= 1, "an integer >= 1")
    gpus: int = setting(0, _INT, lambda v: v >= 0, "an integer >= 0")
    mem_mb: int | None = None
    runtime: int | None = None

    def as_dict(self) -> dict:
        """The entry as the config gives it, defaults filled in (a key not given and without a
        default stays out)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True, kw_only=True)
class Hardware:
    """A `hardware:` entry (the config must name its `device`)."""

    name: str = field(default="", compare=False)  # the entry's name, for messages
    device: str = "cpu"
    nodes: int = setting(1, _INT, lambda v: v >= 1, "an integer >= 1")
    nproc_per_node: int = setting(1, _INT, lambda v: v >= 1, "an integer >= 1")
    threads: int = setting(1, _INT, lambda v: v >= 1, "an integer >= 1")
    backend: str | None = None
    scaling: str | None = None
    timeout_s: int = setting(300, _INT, lambda v: v >= 1, "an integer >= 1")
    telemetry_interval_s: float = setting(0.2, _NUM, lambda v: v > 0, "a number > 0")
    # allow TF32 on CUDA (cuBLAS and cuDNN alike); off: every model in full float32
    tf32: bool = setting(False, _BOOL, lambda v: True, "true or false")
    # torch's deterministic algorithms (and CUBLAS_WORKSPACE_CONFIG)
    deterministic: bool = setting(False, _BOOL, lambda v: True, "true or false")
    resources: Resources | None = None  # the scheduler's business

    def __post_init__(self):
        check_fields(f"hardware '{self.name}'", self)

    @classmethod
    def from_entry(cls, name: str, entry: dict) -> Hardware:
        """A hardware entry over the defaults (its ``resources`` too, when it has them); an unknown
        key or a bad value is an error naming the entry."""
        unknown = set(entry) - set(HARDWARE_DEFAULTS) - {"resources"}
        if unknown:
            raise ValueError(f"hardware '{name}': unknown key(s) {sorted(unknown)}")
        resources = entry.get("resources")
        if resources is not None:
            extra = set(resources) - {f.name for f in fields(Resources)}
            if extra:
                raise ValueError(f"hardware '{name}': resources: unknown key(s) {sorted(extra)}")
            resources = Resources(**resources)
            check_fields(f"hardware '{name}': resources", resources)
        return cls(name=name, **{**entry, "resources": resources})

    @property
    def world(self) -> int:
        """Processes in all (DDP ranks)."""
        return self.nodes * self.nproc_per_node

    @property
    def batch_factor(self) -> int:
        """The global batch over the batch_size setting: weak scaling keeps batch_size per process
        (the world's processes step together on world x batch_size sequences), strong scaling splits
        one batch_size over them (liquidbench.train.loop.per_process_batch)."""
        return 1 if self.scaling == "strong" else self.world

    def as_dict(self) -> dict:
        """The entry with its defaults, as the config's mapping (the name left out; resources only
        where the entry has them)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("name", "resources")}
        if self.resources is not None:
            out["resources"] = self.resources.as_dict()
        return out


# hardware settings that do not change what a run computes (its checkpoint still resumes, its
# finished result still stands when they change): the collective timeout, the telemetry's sampling
# interval and the scheduler's resources
NOT_IN_RESULT = ("timeout_s", "telemetry_interval_s", "resources")

# training settings that joined after runs and checkpoints existed, with the value those ran with:
# torch's ``default`` Adam, and the divergence bound's default (it only ends a run that would have
# gone on). A checkpoint still resumes (liquidbench.train.loop.run_fingerprint), and a run that did
# not record one compares as having had it (liquidbench.results.reference).
LATER_DEFAULTS = {"optimizer_impl": "default", "divergence_factor": 10.0}

TRAINING_DEFAULTS = defaults_of(Training)
HARDWARE_DEFAULTS = {k: v for k, v in defaults_of(Hardware).items() if k not in ("name", "resources")}
RESOURCES_DEFAULTS = {k: v for k, v in defaults_of(Resources).items() if v is not None}

