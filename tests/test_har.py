"""UCI HAR from a small archive in the original layout: both protocols, and bad archives."""

import numpy as np
import pytest

from har_archive import ROOT, SIGNALS, build_har_archive, har_files
from liquidbench.data import har, load_split, read_meta


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return build_har_archive(tmp_path_factory.mktemp("har") / "UCI HAR Dataset.zip", n_train=40, n_test=24)


def rows(text):
    return np.array([[float(v) for v in line.split()] for line in text.splitlines()])


def test_features561_protocol(archive, tmp_path):
    files = har_files(n_train=40, n_test=24)
    meta = har.prepare({"protocol": "features561"}, tmp_path / "out", raw=archive)
    assert meta["task"] == "classification_per_step" and meta["metric"] == "accuracy"
    assert meta["n_features"] == 561 and meta["n_outputs"] == 6 and meta["seq_len"] == 16
    n_train = len(range(0, 40 - 16, 1))  # 24 sequences, as range(0, n - seq_len) in the reference
    n_val = int(0.1 * n_train)
    assert meta["shapes"]["val"]["x"] == [n_val, 16, 561]
    assert meta["shapes"]["train"]["x"] == [n_train - n_val, 16, 561]
    assert meta["shapes"]["test"]["x"] == [len(range(0, 24 - 16, 8)), 16, 561]
    assert meta["shapes"]["train"]["y"] == [n_train - n_val, 16]
    x_train = rows(files[f"{ROOT}/train/X_train.txt"])
    y_train = rows(files[f"{ROOT}/train/y_train.txt"])[:, 0].astype(int) - 1
    perm = np.random.RandomState(893429).permutation(n_train)
    val, train = load_split(tmp_path / "out", "val"), load_split(tmp_path / "out", "train")
    np.testing.assert_allclose(val["x"][0], x_train[perm[0]:perm[0] + 16], rtol=1e-6)
    np.testing.assert_array_equal(train["y"][0], y_train[perm[n_val]:perm[n_val] + 16])
    for split in ("train", "val", "test"):
        y = load_split(tmp_path / "out", split)["y"]
        assert y.dtype == np.int64 and y.min() >= 0 and y.max() <= 5


def test_inertial_protocol_splits_validation_by_subject(archive, tmp_path):
    files = har_files(n_train=40, n_test=24)
    meta = har.prepare({"protocol": "inertial", "val_fraction": 0.4, "seed": 3}, tmp_path / "out", raw=archive)
    assert meta["task"] == "classification_per_sequence" and meta["n_outputs"] == 6
    assert meta["n_features"] == 9 and meta["seq_len"] == 128 and meta["channels"] == SIGNALS
    subjects = rows(files[f"{ROOT}/train/subject_train.txt"])[:, 0].astype(int)
    people = meta["subjects"]
    assert set(people["train"]).isdisjoint(people["val"])
    assert set(people["train"]) | set(people["val"]) == set(subjects) == {1, 3, 5, 6, 7}
    assert len(people["val"]) == 2 and people["test"] == [2, 4]
    is_val = np.isin(subjects, people["val"])
    train, val, test = (load_split(tmp_path / "out", s) for s in ("train", "val", "test"))
    assert len(val["y"]) == is_val.sum() and len(train["y"]) == (~is_val).sum() and len(test["y"]) == 24
    assert train["y"].shape == (len(train["x"]),) and train["y"].min() >= 0 and train["y"].max() <= 5
    # standardised with training statistics only: the training split has mean 0 and std 1 per channel
    flat = train["x"].reshape(-1, 9)
    np.testing.assert_allclose(flat.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(flat.std(0), 1, atol=1e-4)
    raw = rows(files[f"{ROOT}/train/Inertial Signals/body_gyro_y_train.txt"])[~is_val]
    channel = SIGNALS.index("body_gyro_y")
    expected = (raw - meta["channel_mean"][channel]) / meta["channel_std"][channel]
    np.testing.assert_allclose(train["x"][:, :, channel], expected, atol=1e-5)
    assert meta["channel_mean"][channel] == pytest.approx(raw.mean(), rel=1e-9)


def _bad_archive(tmp_path, edit):
    return build_har_archive(tmp_path / "UCI HAR Dataset.zip", edit=edit, n_train=40, n_test=24)


def _refused(tmp_path, raw, match, protocol="features561"):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=match):
        har.prepare({"protocol": protocol}, out, raw=raw)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no extraction left


def test_nan_in_x_train_is_named(tmp_path):
    def edit(files):
        lines = files[f"{ROOT}/train/X_train.txt"].splitlines()
        values = lines[6].split()
        values[10] = "NaN"
        lines[6] = " " + " ".join(values)
        files[f"{ROOT}/train/X_train.txt"] = "\n".join(lines) + "\n"

    _refused(tmp_path, _bad_archive(tmp_path, edit), r"X_train.txt row 7 column 11 holds 'NaN', expected a finite number")


def test_non_numeric_value_is_named(tmp_path):
    def edit(files):
        name = f"{ROOT}/test/Inertial Signals/total_acc_z_test.txt"
        files[name] = files[name].replace(files[name].split()[3], "x1.0e+000", 1)

    _refused(tmp_path, _bad_archive(tmp_path, edit), r"total_acc_z_test.txt row 1 column 4 holds 'x1.0e\+000'",
             protocol="inertial")


def test_label_count_mismatch_is_named(tmp_path):
    def edit(files):
        name = f"{ROOT}/train/y_train.txt"
        files[name] = "".join(files[name].splitlines(keepends=True)[:-3])

    _refused(tmp_path, _bad_archive(tmp_path, edit), r"y_train.txt has 37 labels, but X_train.txt has 40 rows")


def test_missing_file_is_named_with_the_protocol_and_what_to_do(tmp_path):
    _refused(tmp_path, _bad_archive(tmp_path, lambda f: f.pop(f"{ROOT}/test/subject_test.txt")),
             r"the inertial protocol needs 'test/subject_test.txt', which this copy of UCI HAR \(.*UCI HAR Dataset.zip\) "
             r"lacks\. Use a complete copy of the original archive \(https://archive.ics.uci.edu/.*\): put 'UCI HAR "
             r"Dataset.zip' into a data_mirror directory", protocol="inertial")


def test_label_rows_differing_from_the_signals_are_named(tmp_path):
    def edit(files):
        name = f"{ROOT}/test/y_test.txt"
        files[name] += "1\n2\n"

    _refused(tmp_path, _bad_archive(tmp_path, edit), r"y_test.txt has 26 labels, but body_acc_x_test.txt has 24 rows",
             protocol="inertial")


@pytest.mark.parametrize("subject", ["31", "0"])
def test_a_subject_id_outside_1_to_30_is_named(tmp_path, subject):
    def edit(files):
        name = f"{ROOT}/train/subject_train.txt"
        lines = files[name].splitlines(keepends=True)
        lines[6] = f"{subject}\n"
        files[name] = "".join(lines)

    _refused(tmp_path, _bad_archive(tmp_path, edit),
             rf"subject_train.txt row 7 holds subject id {subject}, expected 1..30", protocol="inertial")


def test_inertial_subjects_and_downsample(archive, tmp_path):
    files = har_files(n_train=40, n_test=24)
    params = {"protocol": "inertial", "subjects": [1, 3, 5, 4], "val_fraction": 0.34, "downsample": 4}
    meta = har.prepare(params, tmp_path / "out", raw=archive)
    assert meta["params"]["subjects"] == [1, 3, 5, 4] and meta["params"]["downsample"] == 4
    assert meta["seq_len"] == 32 and meta["subjects"]["test"] == [4]
    assert sorted(meta["subjects"]["train"] + meta["subjects"]["val"]) == [1, 3, 5] and len(meta["subjects"]["val"]) == 1
    subjects = rows(files[f"{ROOT}/test/subject_test.txt"])[:, 0].astype(int)
    test = load_split(tmp_path / "out", "test")
    assert len(test["y"]) == (subjects == 4).sum()
    # each step is the mean of 4 consecutive readings, standardised with the training statistics
    raw = rows(files[f"{ROOT}/test/Inertial Signals/total_acc_y_test.txt"])[subjects == 4]
    channel = SIGNALS.index("total_acc_y")
    pooled = raw.reshape(len(raw), 32, 4).mean(axis=2)
    expected = (pooled - meta["channel_mean"][channel]) / meta["channel_std"][channel]
    np.testing.assert_allclose(test["x"][:, :, channel], expected, atol=1e-5)


@pytest.mark.parametrize("params, message", [
    ({"subjects": [1, 3, 5]}, r"params.subjects \[1, 3, 5\] selects no window of the test file \(its subjects: \[2, 4\]\)"),
    ({"subjects": [2, 31]}, r"params.subjects must be distinct ids in 1..30, got \[2, 31\]"),
    ({"downsample": 3}, r"params.downsample 3 does not divide the 128 steps of a window"),
])
def test_bad_inertial_params_are_named(archive, tmp_path, params, message):
    with pytest.raises(ValueError, match=message):
        har.prepare({"protocol": "inertial", **params}, tmp_path / "out", raw=archive)
    assert not (tmp_path / "out").exists()


def test_an_extracted_folder_and_its_archive_give_the_same_data(archive, tmp_path):
    from har_archive import write_folder

    folder = write_folder(tmp_path / "x", har_files(n_train=40, n_test=24)) / ROOT
    a = har.prepare({"protocol": "inertial"}, tmp_path / "a", raw=archive)
    b = har.prepare({"protocol": "inertial"}, tmp_path / "b", raw=folder)
    assert a["sha256"] == b["sha256"]


def test_unknown_protocol_or_parameter(archive, tmp_path):
    with pytest.raises(ValueError, match=r"protocol 'raw' is unknown"):
        har.prepare({"protocol": "raw"}, tmp_path / "out", raw=archive)
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['seq_len'\]"):
        har.prepare({"protocol": "inertial", "seq_len": 3}, tmp_path / "out", raw=archive)
    assert not (tmp_path / "out").exists()


def test_meta_is_readable(archive, tmp_path):
    har.prepare({"protocol": "features561"}, tmp_path / "out", raw=archive)
    assert read_meta(tmp_path / "out")["classes"][0] == "WALKING"
