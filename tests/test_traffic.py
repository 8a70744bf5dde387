"""Metro Interstate Traffic on the real file from ../shared/data: both protocols' counts, and the
pre-fix (prefix_2020) arrangement against the reference code's arithmetic on a hand-built series."""

import gzip

import numpy as np
import pytest

from conftest import SHARED
from liquidbench.data import load_split, read_meta, traffic

RAW = SHARED / "data/metro_interstate_traffic/Metro_Interstate_Traffic_Volume.csv.gz"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("traffic") / "traffic"
    traffic.prepare({}, out, raw=RAW)
    return out


def test_real_file_gives_the_papers_sequence_counts(prepared):
    meta = read_meta(prepared)
    assert meta["n_rows"] == 48204
    assert meta["n_sequences"] == 12043
    counts = {s: len(load_split(prepared, s)["x"]) for s in ("train", "val", "test")}
    assert counts == {"train": 9033, "val": 1204, "test": 1806}
    assert meta["task"] == "regression_per_step" and meta["metric"] == "mse"
    assert meta["n_features"] == 7 and meta["n_outputs"] == 1 and meta["seq_len"] == 32
    assert meta["features"] == ["holiday", "temp", "rain_1h", "snow_1h", "clouds_all", "weekday", "hour_sin"]
    for split in ("train", "val", "test"):
        arrays = load_split(prepared, split)
        assert arrays["x"].shape[1:] == (32, 7) and arrays["y"].shape[1:] == (32, 1)
        assert np.isfinite(arrays["x"]).all() and np.isfinite(arrays["y"]).all()


def test_current_protocol_shares_no_window_between_splits(prepared):
    """Every window of the series (its 32 rows of features and target) lies in exactly one split."""
    x, y = traffic.load_series(RAW)
    starts = range(0, len(x) - 32, 4)
    all_windows = {x[s:s + 32].tobytes() + y[s:s + 32].tobytes() for s in starts}
    assert len(all_windows) == len(starts) == 12043  # no two windows are equal, so content identifies them
    seen = {}
    for split in ("train", "val", "test"):
        arrays = load_split(prepared, split)
        seen[split] = {arrays["x"][i].tobytes() + arrays["y"][i, :, 0].tobytes() for i in range(len(arrays["x"]))}
        assert len(seen[split]) == len(arrays["x"])
    assert not (seen["train"] & seen["val"]) and not (seen["train"] & seen["test"]) and not (seen["val"] & seen["test"])
    assert seen["train"] | seen["val"] | seen["test"] == all_windows


@pytest.fixture(scope="module")
def prepared_prefix(tmp_path_factory):
    out = tmp_path_factory.mktemp("traffic_prefix") / "traffic"
    traffic.prepare({"protocol": "prefix_2020"}, out, raw=RAW)
    return out


def test_prefix_2020_protocol_on_the_real_file(prepared_prefix):
    """Before a0bede1: 32 sequences of 12,043 steps (one per position in a window); int(0.1 * 32) = 3
    validate, int(0.15 * 32) = 4 test, 25 train."""
    meta = read_meta(prepared_prefix)
    assert meta["protocol"] == "prefix_2020" and meta["n_windows"] == 12043 and meta["n_sequences"] == 32
    shapes = {s: meta["shapes"][s]["x"] for s in ("train", "val", "test")}
    assert shapes == {"train": [25, 12043, 7], "val": [3, 12043, 7], "test": [4, 12043, 7]}
    assert meta["shapes"]["val"]["y"] == [3, 12043, 1]
    x, y = traffic.load_series(RAW)
    perm = np.random.RandomState(23489).permutation(32)
    val, train = load_split(prepared_prefix, "val"), load_split(prepared_prefix, "train")
    # validation sequence 0 is position perm[0] of every window: rows perm[0], perm[0] + 4, ...
    np.testing.assert_array_equal(val["x"][0], x[perm[0]:perm[0] + 4 * 12043:4])
    np.testing.assert_array_equal(train["y"][-1, :, 0], y[perm[-1]:perm[-1] + 4 * 12043:4])


def test_prefix_2020_matches_the_reference_arithmetic_on_a_hand_built_series():
    """The pre-fix code: windows s = 0, 2, 4, 6 (range(0, 12 - 4, 2)) of 4 rows; np.stack(..., axis=1)
    twice makes array[k, j] = x[2k + j] with the sequence axis j of length seq_len = 4, which the
    permutation of 4 splits; each sequence runs over the windows k (time-major in the old code)."""
    x = np.stack([np.arange(12.0), 100.0 + np.arange(12.0)], -1).astype(np.float32)  # row i: (i, 100 + i)
    y = (1000.0 + np.arange(12.0)).astype(np.float32)
    perm = np.random.RandomState(6).permutation(4)
    assert perm.tolist() == [0, 3, 1, 2]  # val: j = 0; test: j = 3; train: j = 1, 2
    p = {**traffic.DEFAULTS, "protocol": "prefix_2020", "seq_len": 4, "stride": 2, "seed": 6,
         "val_fraction": 0.25, "test_fraction": 0.25}
    splits, n = traffic.arrange(x, y, p)
    assert n == 4
    np.testing.assert_array_equal(splits["val"]["x"], [[[0, 100], [2, 102], [4, 104], [6, 106]]])
    np.testing.assert_array_equal(splits["test"]["x"], [[[3, 103], [5, 105], [7, 107], [9, 109]]])
    np.testing.assert_array_equal(splits["train"]["x"], [[[1, 101], [3, 103], [5, 105], [7, 107]],
                                                         [[2, 102], [4, 104], [6, 106], [8, 108]]])
    np.testing.assert_array_equal(splits["train"]["y"][..., 0], [[1001, 1003, 1005, 1007], [1002, 1004, 1006, 1008]])
    np.testing.assert_array_equal(splits["val"]["y"][..., 0], [[1000, 1002, 1004, 1006]])
    # the current protocol on the same series: whole windows 0..3 permuted
    current, n = traffic.arrange(x, y, {**p, "protocol": "current"})
    assert n == 4
    np.testing.assert_array_equal(current["val"]["x"][..., 0], [[0, 1, 2, 3]])    # window 0 (s = 0)
    np.testing.assert_array_equal(current["test"]["x"][..., 0], [[6, 7, 8, 9]])   # window 3 (s = 6)
    np.testing.assert_array_equal(current["train"]["x"][..., 0], [[2, 3, 4, 5], [4, 5, 6, 7]])


def test_unknown_protocol_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"protocol 'transposed' is unknown, expected one of \['current', 'prefix_2020'\]"):
        traffic.prepare({"protocol": "transposed"}, tmp_path / "out", raw=RAW)
    assert not (tmp_path / "out").exists()


def test_series_features_and_standardised_target():
    x, y = traffic.load_series(RAW)
    assert x.shape == (48204, 7) and y.shape == (48204,)
    assert abs(float(y.mean())) < 1e-4 and float(y.std()) == pytest.approx(1.0, abs=1e-4)
    with gzip.open(RAW, "rt") as fh:
        rows = [line.rstrip("\n").split(",") for line in fh][1:]
    holiday_none = np.array([r[0] == "None" for r in rows])
    np.testing.assert_array_equal(x[:, 0], holiday_none.astype(np.float32))
    assert x[:, 0].sum() == 48143  # 61 hours are holidays
    temp = np.array([float(r[1]) for r in rows])
    np.testing.assert_allclose(x[:, 1], temp - temp.mean(), atol=1e-3)
    np.testing.assert_allclose(x[:, 2], [float(r[2]) for r in rows], atol=1e-6)  # rain_1h
    np.testing.assert_allclose(x[:, 4], [float(r[4]) for r in rows])  # clouds_all
    # first row: 2012-10-02 09:00:00, a Tuesday
    assert x[0, 5] == 1.0 and x[0, 6] == pytest.approx(np.sin(9 * np.pi / 24), abs=1e-6)
    assert set(np.unique(x[:, 5])) == set(range(7))
    assert 0.0 <= x[:, 6].min() and x[:, 6].max() <= 1.0


def test_windows_follow_the_reference_permutation(prepared):
    """Sequence i of the validation split is window perm[i] of the series (RandomState(23489))."""
    x, y = traffic.load_series(RAW)
    perm = np.random.RandomState(23489).permutation(12043)
    val = load_split(prepared, "val")
    for i in (0, 1, 1203):
        start = 4 * perm[i]
        np.testing.assert_array_equal(val["x"][i], x[start:start + 32])
        np.testing.assert_array_equal(val["y"][i, :, 0], y[start:start + 32])
    train = load_split(prepared, "train")
    start = 4 * perm[1204 + 1806]
    np.testing.assert_array_equal(train["x"][0], x[start:start + 32])


def _write_csv(path, text):
    with gzip.open(path, "wt") as fh:
        fh.write(text)
    return path


HEADER = "holiday,temp,rain_1h,snow_1h,clouds_all,weather_main,weather_description,date_time,traffic_volume\n"


def _rows(n):
    return "".join(f"None,{280 + i % 7}.5,0.0,0.0,{i % 90},Clouds,c,2012-10-{2 + i // 24:02d} {i % 24:02d}:00:00,{1000 + 37 * i % 5000}\n"
                   for i in range(n))


def test_missing_target_column_is_named_and_writes_nothing(tmp_path):
    raw = _write_csv(tmp_path / "t.csv.gz", HEADER.replace(",traffic_volume", "") + "".join(
        line.rsplit(",", 1)[0] + "\n" for line in _rows(60).splitlines()))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"missing column\(s\) \['traffic_volume'\]"):
        traffic.prepare({}, out, raw=raw)
    assert not out.exists()


def test_non_numeric_and_nan_values_are_named(tmp_path):
    lines = _rows(60).splitlines()
    lines[5] = lines[5].replace(",0.0,0.0,", ",heavy,0.0,", 1)
    raw = _write_csv(tmp_path / "a.csv.gz", HEADER + "\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"column 'rain_1h' row 7 holds 'heavy', expected a finite number"):
        traffic.prepare({}, tmp_path / "out", raw=raw)
    lines = _rows(60).splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",nan"
    raw = _write_csv(tmp_path / "b.csv.gz", HEADER + "\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"column 'traffic_volume' row 5 holds 'nan'"):
        traffic.prepare({}, tmp_path / "out", raw=raw)
    assert not (tmp_path / "out").exists()


def test_small_series_uses_the_same_protocol(tmp_path):
    raw = _write_csv(tmp_path / "s.csv.gz", HEADER + _rows(200))
    meta = traffic.prepare({"seq_len": 8, "stride": 2}, tmp_path / "out", raw=raw)
    n = len(range(0, 200 - 8, 2))
    assert meta["n_sequences"] == n == 96
    assert {s: v["x"][0] for s, v in meta["shapes"].items()} == {"val": 9, "test": 14, "train": 96 - 9 - 14}
