"""A study's `scaling_model:` section: the probes that feed the DDP scaling model and the model's own
settings, checked once (liquidbench.results.scaling_model says what the model is).

The probes are workflow jobs (workflow/rules/probes.smk): per data set x model of the study's DDP
runs, one step probe on the one-process baseline entry of each scaling group (step time against the
per-process batch, ``batches``: by default the powers of two up to the runs' batch size, and the
batch size itself), and per DDP hardware entry one all-reduce probe (all-reduce time against
message size, ``sizes``) launched as that entry's training runs are. ``warmup`` repetitions are not
timed, ``repeats`` are (at least 6: the 95 % order-statistic interval of a median needs them,
liquidbench.train.probes). The model predicts widths 1 to ``widths``; ``exposed`` is what a step
pays for its all-reduce as a multiple of the isolated one (1: the all-reduce alone, none hidden
behind the backward pass; below 1: partly hidden; above 1: ranks waiting for each other;
"measured": from the runs' communication probe; liquidbench.results.scaling_model); ``interconnect`` ({alpha, beta, form}) replaces the
fitted all-reduce with a known interconnect's.

Plain Python: the workflow reads it when it starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import inf

from ..train.settings import Hardware, check_fields, setting

_INT, _NUM = (int,), (int, float)

MIN_REPEATS = 6  # liquidbench.train.probes.MIN_REPEATS (tests/test_scaling_settings.py checks they agree)
DEFAULT_SIZES = tuple(4096 * 2 ** k for k in range(9))  # 4 kB .. 1 MB: around the models' gradients (20-80 kB)
FORMS = ("ring", "tree")


def _ints(values, key: str, what: str) -> tuple[int, ...]:
    """A non-empty, strictly increasing list of integers >= 1; a ValueError naming the key otherwise."""
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"scaling_model.{key}: expected a non-empty list of {what}, got {values!r}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"scaling_model.{key}: each value must be an integer >= 1 ({what}), got {v!r}")
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"scaling_model.{key}: expected strictly increasing values, got {list(values)}")
    return tuple(values)


@dataclass(frozen=True, kw_only=True)
class ScalingModel:
    """`scaling_model:` checked; ``batches`` None: the default grid of each probe (``grid``)."""

    batches: tuple[int, ...] | None = None
    sizes: tuple[int, ...] = DEFAULT_SIZES
    warmup: int = setting(3, _INT, lambda v: v >= 0, "an integer >= 0")
    repeats: int = setting(20, _INT, lambda v: v >= MIN_REPEATS, f"an integer >= {MIN_REPEATS}")
    widths: int = setting(64, _INT, lambda v: v >= 1, "an integer >= 1 (the widest width predicted)")
    exposed: float | str = 1.0
    interconnect: dict | None = field(default=None, hash=False)
    seed: int = setting(0, _INT, lambda v: v >= 0, "an integer >= 0")

    def __post_init__(self):
        check_fields("scaling_model", self)
        if not (self.exposed == "measured" or (isinstance(self.exposed, (int, float))
                                               and not isinstance(self.exposed, bool) and 0 <= self.exposed < inf)):
            raise ValueError(f"scaling_model.exposed: expected a number >= 0 (a multiple of the isolated all-reduce) "
                             f"or measured, got {self.exposed!r}")

    @classmethod
    def from_section(cls, section: dict) -> ScalingModel:
        """The section checked; unknown keys, bad grids and a bad interconnect are errors naming the key."""
        if not isinstance(section, dict):
            raise ValueError(f"scaling_model: expected a mapping, got {section!r}")
        known = {"batches", "sizes", "warmup", "repeats", "widths", "exposed", "interconnect", "seed"}
        unknown = set(section) - known
        if unknown:
            raise ValueError(f"scaling_model: unknown key(s) {sorted(unknown)}, expected {', '.join(sorted(known))}")
        values = dict(section)
        if values.get("batches") is not None:
            values["batches"] = _ints(values["batches"], "batches", "per-process batch sizes")
        if "sizes" in values:
            values["sizes"] = _ints(values["sizes"], "sizes", "message sizes in bytes")
            odd = [s for s in values["sizes"] if s % 4]
            if odd:
                raise ValueError(f"scaling_model.sizes: each size must be a multiple of 4 bytes (float32), got {odd}")
        if values.get("interconnect") is not None:
            values["interconnect"] = _interconnect(values["interconnect"])
        return cls(**values)

    def grid(self, batch_size: int, where: str) -> tuple[int, ...]:
        """The step probe's per-process batch sizes for runs of ``batch_size``: ``batches`` (none above
        the runs' batch: a ValueError naming ``where``), or the powers of two below it and itself."""
        if self.batches is None:
            return tuple(sorted({2 ** k for k in range(batch_size.bit_length()) if 2 ** k < batch_size}
                                | {batch_size}))
        if self.batches[-1] > batch_size:
            raise ValueError(f"scaling_model.batches: {self.batches[-1]} is above the batch size {batch_size} of "
                             f"{where}; a probe times per-process batches up to the runs' own")
        return self.batches


def _interconnect(entry) -> dict:
    if not isinstance(entry, dict) or set(entry) - {"alpha", "beta", "form"} or not {"alpha", "beta"} <= set(entry):
        raise ValueError(f"scaling_model.interconnect: expected {{alpha: seconds, beta: seconds per byte, form: "
                         f"ring or tree}}, got {entry!r}")
    for key in ("alpha", "beta"):
        v = entry[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
            raise ValueError(f"scaling_model.interconnect.{key}: expected a number >= 0, got {v!r}")
    form = entry.get("form", "ring")
    if form not in FORMS:
        raise ValueError(f"scaling_model.interconnect.form: expected one of {', '.join(FORMS)}, got {form!r}")
    return {"alpha": float(entry["alpha"]), "beta": float(entry["beta"]), "form": form}


def width(entry: Hardware) -> int:
    """n = nodes x nproc_per_node, the DDP world size."""
    return entry.world


def groups(hardware: dict[str, Hardware], baselines: dict | None = None) -> list[dict]:
    """The study's scaling groups: device, scaling mode, baseline entry and member entries by width
    (liquidbench.results.scaling says what a group and its baseline are; the scaling table and the
    probe plan both group by it).

    ``hardware`` maps entry names (in study order) to their entries; entries that cannot be placed
    in a group with a baseline are reported with ``baseline`` None, never dropped.
    """
    baselines = baselines or {}
    out = {}
    for name, hw in hardware.items():
        mode = hw.scaling
        if mode not in ("weak", "strong"):
            continue
        key = (hw.device, mode)
        out.setdefault(key, {"device": key[0], "scaling": mode, "members": []})["members"].append(name)
    result = []
    for (device, mode), g in out.items():
        ones = [n for n in g["members"] if width(hardware[n]) == 1]
        if not ones:
            ones = [n for n, hw in hardware.items()
                    if width(hw) == 1 and hw.device == device and hw.scaling is None]
        default = ones[0] if ones else None
        members = sorted(g["members"], key=lambda n: width(hardware[n]))
        result.append({
            "device": device, "scaling": mode,
            "baseline": {m: baselines.get(m, default) for m in members},
            "members": members,
        })
    return result


def probe_plan(runs, hardware: dict, baselines: dict | None = None) -> tuple[dict, list[tuple[str, str, str]], list[str]]:
    """The probes a study's DDP runs call for: ``entries`` (device -> the one-process entry step
    probes on that device run as: the first baseline of a scaling group on it, :func:`groups`),
    step probes as (data set, model, device), one per data set x model with DDP runs on that device,
    and all-reduce probes as the DDP entries of two or more processes that have runs. ``runs`` are (data set, model, hardware, seed), ``hardware`` the study's entries (name ->
    liquidbench.train.settings.Hardware, in study order)."""
    baseline_of = {member: group["baseline"][member] for group in groups(hardware, baselines)
                   for member in group["members"]}
    entries, step, allreduce = {}, {}, {}
    for dataset, model, name, _ in runs:
        base = baseline_of.get(name)
        if base is None or hardware[name].world < 2:
            continue  # no group with a baseline (the scaling table says so), or nothing to all-reduce
        device = hardware[name].device
        entries.setdefault(device, base)
        step[(dataset, model, device)] = None
        allreduce[name] = None
    return entries, list(step), list(allreduce)
