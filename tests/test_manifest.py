"""Sources pinned member by member (config/sources/*.sha256): the real UCI HAR copy in ../shared,
original-name, re-packed and extracted copies, and bad copies that must fail cleanly."""

import hashlib
import re
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO, SHARED, tool_env
from har_archive import ROOT, har_files, sha256sums, write_folder, write_zip
from liquidbench.data import har, load_split
from liquidbench.data.download import ChecksumError, download
from liquidbench.data.manifest import ManifestError, copy_members, read_manifest

MANIFEST = REPO / "config" / "sources" / "uci_har.sha256"
SHARED_ZIP = SHARED / "data" / "uci_har" / "UCI_HAR_Dataset_inertial.zip"
URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/00240/UCI%20HAR%20Dataset.zip"
OFFLINE_URL = "https://127.0.0.1:9/UCI%20HAR%20Dataset.zip"  # nothing listens on port 9
# the real members small enough to re-pack in a test (no inertial signals)
SMALL = ["README.txt", "activity_labels.txt", "features.txt", "features_info.txt", "train/y_train.txt",
         "train/subject_train.txt", "test/y_test.txt", "test/subject_test.txt"]


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def real_members(names):
    with zipfile.ZipFile(SHARED_ZIP) as zf:
        return {f"{ROOT}/{name}": zf.read(f"{ROOT}/{name}") for name in names}


def fetch(mirror, out, manifest=MANIFEST, **kw):
    return download(OFFLINE_URL, out, None, mirrors=[mirror], manifest=manifest, retries=0, **kw)


@pytest.fixture(scope="module")
def real_copy(tmp_path_factory):
    """The shared copy of UCI HAR, fetched as the workflow does: verified into `UCI HAR Dataset/`."""
    out = tmp_path_factory.mktemp("raw") / ROOT
    report = download(URL, out, None, mirrors=[SHARED / "data"], manifest=MANIFEST,
                      other_names=["UCI_HAR_Dataset_inertial.zip"])
    return out, report


def test_the_manifest_is_the_readme_list_and_pins_every_member_of_the_shared_copy(real_copy):
    readme = (SHARED / "data" / "README.md").read_text()
    listed = dict((path, digest) for digest, path in re.findall(r"^\s+([0-9a-f]{64})  (UCI HAR Dataset/.+)$", readme, re.M))
    manifest = read_manifest(MANIFEST)
    assert manifest.root == ROOT and len(manifest.members) == 26
    assert {f"{ROOT}/{rel}": digest for rel, digest in manifest.members.items()} == listed
    out, report = real_copy
    assert report["source"] == str(SHARED_ZIP)  # found one level below the mirror, under its other name
    assert len(report["verified"]) == 26 and report["missing"] == [] and report["unlisted"] == {}
    # what the workflow keeps is byte for byte what the manifest lists: sha256sum -c agrees
    check = subprocess.run(["sha256sum", "--check", "--strict", MANIFEST], cwd=out.parent, capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.count(": OK") == 26, check.stdout + check.stderr


def test_original_name_repacked_and_extracted_copies_give_the_same_folder(tmp_path, caplog):
    files = real_members(SMALL)
    # the original's name and layout, stored, with the original's __MACOSX entries beside the folder
    original = write_zip(tmp_path / "m1" / "UCI HAR Dataset.zip", {**files, "__MACOSX/UCI HAR Dataset/._README.txt": b"\0"})
    # re-packed: deflated, another name, one level below the mirror directory
    repacked = tmp_path / "m2" / "uci" / "UCI_HAR_Dataset_inertial.zip"
    repacked.parent.mkdir(parents=True)
    with zipfile.ZipFile(repacked, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in sorted(files, reverse=True):
            zf.writestr(name, files[name])
    extracted = write_folder(tmp_path / "m3", files) / ROOT
    assert original.read_bytes() != repacked.read_bytes()
    copies = {}
    for mirror, source in (("m1", original), ("m2", repacked), ("m3", extracted)):
        out = tmp_path / f"out-{mirror}" / ROOT
        with caplog.at_level("WARNING"):
            report = fetch(tmp_path / mirror, out, other_names=["UCI_HAR_Dataset_inertial.zip"])
        assert report["source"] == str(source)
        assert sorted(report["verified"]) == sorted(SMALL) and report["unlisted"] == {}
        assert len(report["missing"]) == 18 and all(m.startswith(("train/Inertial", "test/Inertial")) for m in report["missing"])
        copies[mirror] = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        assert leftovers(out.parent) == [ROOT]
    assert copies["m1"] == copies["m2"] == copies["m3"] == {name[len(ROOT) + 1:]: data for name, data in files.items()}
    assert "lacks 18 of the 26 members listed in manifest" in caplog.text
    assert "1 entries outside 'UCI HAR Dataset/' were not copied: __MACOSX/UCI HAR Dataset/._README.txt" in caplog.text


def test_a_member_with_one_byte_changed_is_named_with_both_hashes_and_nothing_is_left(tmp_path):
    files = real_members(SMALL)
    name = f"{ROOT}/train/subject_train.txt"
    good = files[name]
    files[name] = good[:500] + bytes([good[500] ^ 0x01]) + good[501:]
    expected, actual = hashlib.sha256(good).hexdigest(), hashlib.sha256(files[name]).hexdigest()
    write_zip(tmp_path / "zip" / "UCI HAR Dataset.zip", files)
    write_folder(tmp_path / "folder", files)
    # through the command line (one line, exit status 1), from an archive ...
    out = tmp_path / "raw" / ROOT
    proc = subprocess.run(
        [sys.executable, "-m", "liquidbench.cli", "download", "--url", OFFLINE_URL, "--manifest", str(MANIFEST),
         "--mirror", str(tmp_path / "zip"), "--out", str(out)],
        capture_output=True, text=True, env=tool_env(),
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert (f"checksum mismatch for member '{name}' of archive {tmp_path / 'zip' / 'UCI HAR Dataset.zip'} (mirror): "
            f"expected sha256 {expected} (manifest {MANIFEST}), got {actual}") in proc.stderr
    assert leftovers(out.parent) == []
    # ... and from an extracted folder
    with pytest.raises(ChecksumError, match=f"member '{name}' of folder .*expected sha256 {expected} .*got {actual}"):
        fetch(tmp_path / "folder", out)
    assert leftovers(out.parent) == []


def synthetic(tmp_path, drop=(), listed_extra=()):
    """A small synthetic copy (zip) lacking ``drop``, and a manifest of the complete one that
    leaves out ``listed_extra``'s complement: returns (mirror, manifest path, complete files)."""
    files = har_files(n_train=40, n_test=24)
    copy = {k: v for k, v in files.items() if k not in drop}
    write_zip(tmp_path / "mirror" / "UCI HAR Dataset.zip", copy)
    manifest = tmp_path / "uci_har.sha256"
    manifest.write_text(sha256sums({k: v for k, v in files.items() if "/X_" not in k or k in listed_extra}))
    return tmp_path / "mirror", manifest, files


def test_a_listed_member_the_archive_lacks_fails_the_protocol_that_needs_it(tmp_path, caplog):
    x_train, x_test = f"{ROOT}/train/X_train.txt", f"{ROOT}/test/X_test.txt"
    mirror, manifest, _ = synthetic(tmp_path, drop=[x_train, x_test], listed_extra=[x_train])
    raw = tmp_path / "raw" / ROOT
    with caplog.at_level("WARNING"):
        report = fetch(mirror, raw, manifest=manifest)
    assert report["missing"] == ["train/X_train.txt"]
    assert f"lacks 1 of the {len(read_manifest(manifest).members)} members listed in manifest {manifest}: '{x_train}'" in caplog.text
    out = tmp_path / "processed" / "har"
    with pytest.raises(ValueError) as err:
        har.prepare({"protocol": "features561"}, out, raw=raw)
    msg = str(err.value)
    assert f"the features561 protocol needs 'train/X_train.txt', 'test/X_test.txt', which this copy of UCI HAR ({raw}) lacks" in msg
    assert har.URL in msg and "data_mirror" in msg and "or use the inertial protocol, which this copy serves" in msg
    assert leftovers(out.parent) == []
    # the same copy serves the protocol whose members it holds
    assert har.prepare({"protocol": "inertial"}, out, raw=raw)["n_features"] == 9


def test_an_extracted_folder_missing_a_needed_file_fails_naming_it_and_leaves_nothing(tmp_path):
    files = har_files(n_train=40, n_test=24)
    gone = f"{ROOT}/test/Inertial Signals/body_gyro_z_test.txt"
    write_folder(tmp_path / "mirror", {k: v for k, v in files.items() if k != gone})
    manifest = tmp_path / "m.sha256"
    manifest.write_text(sha256sums(files))
    raw = tmp_path / "raw" / ROOT
    assert fetch(tmp_path / "mirror", raw, manifest=manifest)["missing"] == ["test/Inertial Signals/body_gyro_z_test.txt"]
    out = tmp_path / "processed" / "har_inertial"
    with pytest.raises(ValueError, match=r"the inertial protocol needs 'test/Inertial Signals/body_gyro_z_test.txt', "
                                         rf"which this copy of UCI HAR \({re.escape(str(raw))}\) lacks\. Use a complete copy "
                                         r"of the original archive .*features561 protocol, which this copy serves"):
        har.prepare({"protocol": "inertial"}, out, raw=raw)
    assert leftovers(out.parent) == []


def test_an_unlisted_member_is_accepted_with_a_warning_that_names_its_sha256(tmp_path, caplog):
    mirror, manifest, files = synthetic(tmp_path)  # the manifest leaves out X_train.txt and X_test.txt
    with caplog.at_level("WARNING", logger="liquidbench.data.manifest"):
        report = fetch(mirror, tmp_path / "raw" / ROOT, manifest=manifest)
    digest = hashlib.sha256(files[f"{ROOT}/train/X_train.txt"].encode()).hexdigest()
    assert report["unlisted"]["train/X_train.txt"] == digest and set(report["unlisted"]) == {"train/X_train.txt", "test/X_test.txt"}
    assert (f"member '{ROOT}/train/X_train.txt' is not in manifest {manifest}, so its content is NOT verified; "
            f"its sha256 is {digest}") in caplog.text
    assert (tmp_path / "raw" / ROOT / "train" / "X_train.txt").read_text() == files[f"{ROOT}/train/X_train.txt"]


def test_a_copy_without_any_listed_member_is_refused(tmp_path):
    write_zip(tmp_path / "mirror" / "UCI HAR Dataset.zip", {"Other/readme.txt": "x"})
    with pytest.raises(ManifestError, match=r"holds none of the 26 members listed in manifest .*'UCI HAR Dataset/'"):
        fetch(tmp_path / "mirror", tmp_path / "raw" / ROOT)
    assert leftovers(tmp_path / "raw") == []


@pytest.mark.parametrize("text, message", [
    ("abc  UCI HAR Dataset/a.txt\n", r"line 1: expected '<sha256, 64 hex digits>  <path>'"),
    (f"{'a' * 64}  A/x.txt\n{'b' * 64}  B/y.txt\n", r"members must share one top folder, found \['A', 'B'\]"),
    (f"{'a' * 64}  A/../x.txt\n", r"line 1: member 'A/../x.txt' must be a relative path inside one top folder"),
    (f"{'a' * 64}  A/x.txt\n{'b' * 64}  A/x.txt\n", r"line 2: member 'A/x.txt' is listed twice"),
    ("\n", r"lists no member"),
])
def test_bad_manifests_are_named(tmp_path, text, message):
    path = tmp_path / "m.sha256"
    path.write_text(text)
    with pytest.raises(ManifestError, match=message):
        read_manifest(path)


def test_a_previous_copy_is_replaced_only_by_a_verified_one(tmp_path):
    files = har_files(n_train=40, n_test=24)
    manifest = read_manifest(write_folder(tmp_path, {"m.sha256": sha256sums(files)}) / "m.sha256")
    out = tmp_path / "raw" / ROOT
    copy_members(write_zip(tmp_path / "good.zip", files), manifest, out, "good")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    bad = dict(files, **{f"{ROOT}/activity_labels.txt": "1 RUNNING\n"})
    with pytest.raises(ChecksumError):
        copy_members(write_zip(tmp_path / "bad.zip", bad), manifest, out, "bad")
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before and leftovers(out.parent) == [ROOT]
    assert (out / "activity_labels.txt").read_text() == files[f"{ROOT}/activity_labels.txt"]


def test_a_model_learns_real_har_inertial_from_the_shared_copy(real_copy, tmp_path):
    """Real data end to end: four subjects of the verified shared copy, 16-step windows, a small GRU."""
    from liquidbench.train.loop import RunSpec, train

    out, _ = real_copy
    params = {"protocol": "inertial", "subjects": [1, 2, 3, 5], "val_fraction": 0.34, "downsample": 8}
    meta = har.prepare(params, tmp_path / "data", raw=out)
    assert meta["subjects"] == {"train": [1, 3], "val": [5], "test": [2]}
    # the original's window counts: subjects 1 and 3 have 347 and 341 windows, 5 has 302, 2 has 302
    assert meta["shapes"]["train"]["x"] == [688, 16, 9] and meta["shapes"]["test"]["x"] == [302, 16, 9]
    assert meta["shapes"]["val"]["y"] == [302]
    # the raw body_acc_x of subject 1's first window, averaged over 8 readings, standardised
    first = (out / "train" / "Inertial Signals" / "body_acc_x_train.txt").read_text().splitlines()[0].split()
    expected = ([sum(map(float, first[i:i + 8])) / 8 for i in range(0, 128, 8)])
    x = load_split(tmp_path / "data", "train")["x"]
    got = x[0, :, 0] * meta["channel_std"][0] + meta["channel_mean"][0]
    assert got == pytest.approx(expected, abs=1e-6)
    cpu = {"device": "cpu", "threads": 1, "resources": {"mem_mb": 1000, "runtime": 5}}
    metrics = train(RunSpec(dataset="har_inertial", model="gru", hardware="cpu", seed=0, data_dir=tmp_path / "data",
                            out_dir=tmp_path / "run", model_spec={"type": "gru", "hidden_size": 16},
                            train_params={"epochs": 8, "batch_size": 32, "lr": 0.01}, hardware_spec=cpu))
    # six activities (chance about 1/6): a held-out subject is recognised far above chance
    assert metrics["metric_name"] == "accuracy" and metrics["test_metric"] > 0.5


def test_download_and_manifest_raise_one_checksum_error():
    """Both take it from checksum.py, below them: a caller catches it by either module's name."""
    from liquidbench.data import checksum, download, manifest

    assert download.ChecksumError is manifest.ChecksumError is checksum.ChecksumError
