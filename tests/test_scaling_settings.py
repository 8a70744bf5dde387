"""The `scaling_model` section (liquidbench.results.scaling_settings): its checks, the step
probes' default grid and which probes a study's DDP runs call for."""

import pytest
import yaml

from conftest import REPO
from liquidbench.results.scaling_settings import MIN_REPEATS, ScalingModel, probe_plan
from liquidbench.study import study_runs
from liquidbench.train import probes
from liquidbench.train.settings import Hardware


def test_defaults_and_the_default_grid():
    sm = ScalingModel.from_section({})
    assert (sm.warmup, sm.repeats, sm.widths, sm.exposed, sm.interconnect) == (3, 20, 64, 1.0, None)
    assert sm.sizes[0] == 4096 and sm.sizes[-1] == 1048576
    assert sm.grid(64, "x") == (1, 2, 4, 8, 16, 32, 64) and sm.grid(48, "x") == (1, 2, 4, 8, 16, 32, 48)
    assert sm.grid(1, "x") == (1,)
    assert ScalingModel.from_section({"batches": [2, 8]}).grid(8, "x") == (2, 8)
    assert MIN_REPEATS == probes.MIN_REPEATS  # the interval's minimum, one value in both places


@pytest.mark.parametrize("section,message", [
    ({"batches": []}, "scaling_model.batches: expected a non-empty list"),
    ({"batches": [0, 2]}, "scaling_model.batches: each value must be an integer >= 1"),
    ({"batches": [4, 2]}, "scaling_model.batches: expected strictly increasing values"),
    ({"sizes": [4096, 6000, 8190]}, "scaling_model.sizes: each size must be a multiple of 4 bytes"),
    ({"repeats": 5}, "scaling_model: repeats must be an integer >= 6"),
    ({"widths": 0}, "scaling_model: widths must be an integer >= 1"),
    ({"exposed": -0.5}, r"scaling_model.exposed: expected a number >= 0 .* or measured"),
    ({"exposed": "all"}, r"scaling_model.exposed: expected a number >= 0 .* or measured"),
    ({"interconnect": {"alpha": 1e-6}}, "scaling_model.interconnect: expected {alpha"),
    ({"interconnect": {"alpha": -1.0, "beta": 1e-9}}, "scaling_model.interconnect.alpha: expected a number >= 0"),
    ({"interconnect": {"alpha": 1e-6, "beta": 1e-9, "form": "star"}}, "scaling_model.interconnect.form"),
    ({"grid": [1]}, r"scaling_model: unknown key\(s\) \['grid'\]"),
])
def test_a_bad_section_is_refused_naming_its_key(section, message):
    with pytest.raises(ValueError, match=message):
        ScalingModel.from_section(section)


def test_a_grid_above_the_runs_batch_is_refused_naming_them():
    with pytest.raises(ValueError, match="64 is above the batch size 32 of data set 'sine', model 'cfc'"):
        ScalingModel.from_section({"batches": [1, 64]}).grid(32, "data set 'sine', model 'cfc'")


def test_the_probes_a_study_calls_for():
    """The full study: step probes per data set x model on each device with DDP runs (run as that
    device's first one-process baseline), an all-reduce probe per DDP entry of two or more processes."""
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    hardware = {n: Hardware.from_entry(n, config["hardware"][n]) for n in config["study"]["hardware"]}
    entries, step, allreduce = probe_plan(study_runs(config["study"]), hardware, config["results"]["scaling_baselines"])
    assert entries == {"cuda": "ddp-1gpu", "cpu": "cpu"}
    ddp_sets = {d for d in config["study"]["datasets"] if d != "sine_forecast"}  # its DDP runs are excluded
    assert set(step) == {(d, m, dev) for d in ddp_sets for m in config["study"]["models"] for dev in ("cpu", "cuda")}
    assert set(allreduce) == {h for h, hw in hardware.items() if hw.world >= 2}
