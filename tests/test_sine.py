import json

import numpy as np
import pytest

from liquidbench.data import load_split, read_meta
from liquidbench.data.sine import DEFAULTS, SineParams, generate, prepare


def test_shapes_and_target_relation():
    d = generate({"n_sequences": 10, "seq_len": 20, "seed": 3})
    assert d["x"].shape == (10, 20, 2) and d["y"].shape == (10, 20, 1)
    assert "t" not in d
    # x = [sin a, cos a], y = sin 2a = 2 sin a cos a, without noise
    np.testing.assert_allclose(d["y"][..., 0], 2 * d["x"][..., 0] * d["x"][..., 1], atol=1e-5)
    np.testing.assert_allclose(d["x"][..., 0] ** 2 + d["x"][..., 1] ** 2, 1.0, atol=1e-5)


def test_deterministic_per_seed_and_seeds_differ():
    a = generate({"n_sequences": 8, "seq_len": 16, "seed": 1, "noise_std": 0.1})
    b = generate({"n_sequences": 8, "seq_len": 16, "seed": 1, "noise_std": 0.1})
    c = generate({"n_sequences": 8, "seq_len": 16, "seed": 2, "noise_std": 0.1})
    np.testing.assert_array_equal(a["x"], b["x"])
    np.testing.assert_array_equal(a["y"], b["y"])
    assert not np.allclose(a["x"], c["x"])


def test_irregular_sampling_gives_positive_varying_gaps():
    d = generate({"n_sequences": 16, "seq_len": 32, "seed": 0, "irregular": True, "dt": 0.1})
    assert d["t"].shape == (16, 32)
    assert (d["t"] > 0).all()
    assert d["t"].std() > 0.01  # really irregular, not a constant step
    np.testing.assert_allclose(d["t"].mean(), 0.1, rtol=0.2)


def test_regular_sampling_matches_closed_form():
    d = generate({"n_sequences": 4, "seq_len": 5, "seed": 0, "dt": 0.5})
    # the angle advances by omega * dt per step, so consecutive phases differ by a constant
    angle = np.arctan2(d["x"][..., 0], d["x"][..., 1])
    step = np.angle(np.exp(1j * np.diff(angle, axis=1)))
    np.testing.assert_allclose(step, step[:, :1].repeat(4, axis=1), atol=1e-5)


def test_prepare_writes_splits_and_meta(tmp_path):
    meta = prepare({"n_sequences": 20, "seq_len": 8, "seed": 0, "irregular": True}, tmp_path)
    on_disk = read_meta(tmp_path)
    assert on_disk == json.loads(json.dumps(meta))
    assert meta["task"] == "regression_per_step" and meta["metric"] == "mse"
    assert meta["n_features"] == 2 and meta["n_outputs"] == 1 and meta["irregular"] is True
    sizes = {s: len(load_split(tmp_path, s)["x"]) for s in ("train", "val", "test")}
    assert sizes == {"train": 14, "val": 3, "test": 3}
    assert set(meta["sha256"]["train"]) == {"x", "y", "t"}
    assert meta["generator"]["seed"] == 0


def test_unknown_parameter_is_named():
    with pytest.raises(ValueError, match="n_seqs"):
        generate({"n_seqs": 5})


def test_forecasting_target_is_the_next_clean_input_of_the_same_inputs():
    params = {"n_sequences": 6, "seq_len": 10, "seed": 4, "noise_std": 0.1}
    angle_task = generate(params)
    forecast = generate({**params, "target": "next"})
    # the inputs are those of the double-angle task, bit for bit; only the target differs
    np.testing.assert_array_equal(forecast["x"], angle_task["x"])
    assert forecast["y"].shape == (6, 10, 2)
    clean = generate({**params, "noise_std": 0.0, "target": "next"})
    # y_t is the clean input of step t + 1 (the last one a step beyond the sequence)
    np.testing.assert_allclose(forecast["y"][:, :-1], clean["x"][:, 1:], atol=1e-6)
    np.testing.assert_allclose(forecast["y"], clean["y"])
    np.testing.assert_allclose(forecast["y"][..., 0] ** 2 + forecast["y"][..., 1] ** 2, 1.0, atol=1e-5)


def test_target_is_recorded_and_checked(tmp_path):
    meta = prepare({"n_sequences": 20, "seq_len": 8, "seed": 0, "target": "next"}, tmp_path)
    assert meta["params"]["target"] == "next" and meta["n_outputs"] == 2
    assert read_meta(tmp_path)["params"]["target"] == "next"
    assert prepare({"n_sequences": 20, "seq_len": 8}, tmp_path / "default")["params"]["target"] == "double_angle"
    with pytest.raises(ValueError, match=r"target 'ahead' is unknown, expected one of \['double_angle', 'next'\]"):
        generate({"target": "ahead"})
    with pytest.raises(ValueError, match="target 'next' needs regular sampling"):
        generate({"target": "next", "irregular": True})


def test_data_prepared_before_the_target_existed_are_double_angle_data(tmp_path):
    from liquidbench.cli import check_prepared

    params = {"n_sequences": 20, "seq_len": 8, "seed": 0}
    prepare(params, tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    del meta["params"]["target"]  # as meta.json recorded the parameters before `target`
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    check_prepared(tmp_path, "sine", {"kind": "sine", "params": params}, "study.yaml")
    with pytest.raises(ValueError, match="target: 'next' in study.yaml, '\\(not recorded\\)'"):
        check_prepared(tmp_path, "sine", {"kind": "sine", "params": {**params, "target": "next"}}, "study.yaml")


def test_params_are_the_defaults_under_the_given_ones_and_derived_ones_are_checked():
    """meta.json records the parameters in the defaults' order; a derived set (dataclasses.replace,
    as the evaluation sets make them) is checked as a given one is."""
    import dataclasses

    p = SineParams.from_params({"seed": 5, "n_sequences": 20})
    assert dataclasses.asdict(p) == {**DEFAULTS, "seed": 5, "n_sequences": 20}
    assert list(dataclasses.asdict(p)) == list(DEFAULTS)
    assert SineParams.from_params(p) is p
    with pytest.raises(ValueError, match="expected 0 < freq_min <= freq_max"):
        dataclasses.replace(p, freq_min=3.0)
