"""Metro Interstate Traffic on the real file from ../shared/data: the LTC-paper protocol's counts."""

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
