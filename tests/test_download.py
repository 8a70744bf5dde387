"""Verified downloads: mirror lookup, checksums, retries over real https, offline errors, safe zips."""

import gzip
import hashlib
import http.server
import re
import shutil
import ssl
import subprocess
import sys
import threading
import zipfile

import pytest
import yaml

from conftest import REPO, SHARED, tool_env
from har_archive import SMOKE_ARGS, build_har_archive, sha256
from liquidbench.data.archive import ArchiveError, safe_extract
from liquidbench.data.download import ChecksumError, DownloadError, download

TRAFFIC = SHARED / "data/metro_interstate_traffic/Metro_Interstate_Traffic_Volume.csv.gz"
TRAFFIC_CSV_SHA = "3ec6b8844c4e5e20904855c81079a30e4342da20b7010e78606a244e539f29f6"
TRAFFIC_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/00492/Metro_Interstate_Traffic_Volume.csv.gz"
OFFLINE_URL = "https://127.0.0.1:9/Metro_Interstate_Traffic_Volume.csv.gz"  # nothing listens on port 9


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_mirror_copy_verified_by_decompressed_content(tmp_path):
    out = tmp_path / "raw" / "traffic.csv.gz"
    got = download(TRAFFIC_URL, out, TRAFFIC_CSV_SHA, "decompressed", mirrors=[SHARED / "data"])
    assert got["source"] == str(TRAFFIC)  # found one level below the mirror directory
    assert out.read_bytes() == TRAFFIC.read_bytes()
    assert hashlib.sha256(gzip.decompress(out.read_bytes())).hexdigest() == TRAFFIC_CSV_SHA


def test_recompressed_copy_still_verifies(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / TRAFFIC.name).write_bytes(gzip.compress(gzip.decompress(TRAFFIC.read_bytes()), compresslevel=1))
    got = download(TRAFFIC_URL, tmp_path / "out.gz", TRAFFIC_CSV_SHA, "decompressed", mirrors=[tmp_path / "none", mirror])
    assert got["source"] == str(mirror / TRAFFIC.name) and got["sha256"] == TRAFFIC_CSV_SHA


def test_checksum_mismatch_names_file_and_hashes_and_leaves_nothing(tmp_path):
    mirror = tmp_path / "mirror"
    archive = build_har_archive(mirror / "UCI HAR Dataset.zip", n_train=20, n_test=20)
    actual = sha256(archive)
    wrong = "0" * 64
    out = tmp_path / "raw" / "UCI HAR Dataset.zip"
    url = "https://archive.ics.uci.edu/ml/machine-learning-databases/00240/UCI%20HAR%20Dataset.zip"
    with pytest.raises(ChecksumError) as err:
        download(url, out, wrong, mirrors=[mirror])
    msg = str(err.value)
    assert "'UCI HAR Dataset.zip'" in msg and f"expected sha256 {wrong}" in msg and f"got {actual}" in msg
    assert leftovers(out.parent) == []
    # the same archive with its true hash pinned is accepted
    assert download(url, out, actual, mirrors=[mirror])["sha256"] == actual


def test_offline_without_the_file_in_the_mirror_explains_data_mirror(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "something_else.csv.gz").write_bytes(b"x")
    out = tmp_path / "raw" / "t.csv.gz"
    with pytest.raises(DownloadError) as err:
        download(OFFLINE_URL, out, TRAFFIC_CSV_SHA, "decompressed", mirrors=[mirror], retries=2, backoff_s=0.01)
    msg = str(err.value)
    assert "after 3 attempts" in msg and "Connection refused" in msg
    assert f"no mirror holds 'Metro_Interstate_Traffic_Volume.csv.gz' (mirrors searched: {mirror})" in msg
    assert "data_mirror" in msg
    assert leftovers(out.parent) == []


def test_cli_reports_one_line_and_exit_code(tmp_path):
    out = tmp_path / "raw" / "t.csv.gz"
    proc = subprocess.run(
        [sys.executable, "-m", "liquidbench.cli", "download", "--url", OFFLINE_URL, "--sha256", TRAFFIC_CSV_SHA,
         "--sha256-of", "decompressed", "--mirror", str(tmp_path), "--retries", "0", "--out", str(out)],
        capture_output=True, text=True, env=tool_env(),
    )
    assert proc.returncode == 1
    assert "ERROR liquidbench: download of https://127.0.0.1:9/" in proc.stderr and "Traceback" not in proc.stderr
    assert leftovers(out.parent) == []


def test_only_https_urls(tmp_path):
    with pytest.raises(ValueError, match="must use https"):
        download("http://archive.ics.uci.edu/x.zip", tmp_path / "x.zip", "0" * 64)


# --- a real https server on localhost, for retries and truncated transfers -------------------------


@pytest.fixture(scope="module")
def https_server(tmp_path_factory):
    """(base URL, state) of an https server with a self-signed certificate; ``state['fail']``
    requests answer 503, ``state['truncate']`` ones send half the body and hang up."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed for the https tests (apt-get install openssl)")
    d = tmp_path_factory.mktemp("https")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", d / "key.pem", "-out", d / "cert.pem"],
                   check=True, capture_output=True)
    body = TRAFFIC.read_bytes()
    state = {"fail": 0, "truncate": 0, "requests": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            state["requests"] += 1
            if state["fail"] > 0:
                state["fail"] -= 1
                self.send_error(503)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state["truncate"] > 0:
                state["truncate"] -= 1
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
                return
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "cert.pem", d / "key.pem")
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_port}/files/Metro_Interstate_Traffic_Volume.csv.gz", state, d / "cert.pem"
    server.shutdown()


def test_download_retries_server_errors_and_truncation(https_server, tmp_path, monkeypatch):
    url, state, cert = https_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    state.update(fail=2, truncate=1, requests=0)
    out = tmp_path / "raw" / "t.csv.gz"
    got = download(url, out, TRAFFIC_CSV_SHA, "decompressed", retries=3, backoff_s=0.01)
    assert state["requests"] == 4 and got["source"] == url
    assert out.read_bytes() == TRAFFIC.read_bytes() and leftovers(out.parent) == ["t.csv.gz"]


def test_download_gives_up_after_retries_and_leaves_nothing(https_server, tmp_path, monkeypatch):
    url, state, cert = https_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    state.update(fail=10, truncate=0, requests=0)
    out = tmp_path / "raw" / "t.csv.gz"
    with pytest.raises(DownloadError, match=r"after 3 attempts .*503.*no mirror holds"):
        download(url, out, TRAFFIC_CSV_SHA, "decompressed", retries=2, backoff_s=0.01)
    assert state["requests"] == 3 and leftovers(out.parent) == []
    state["fail"] = 0


def test_download_over_https_checks_the_hash(https_server, tmp_path, monkeypatch):
    url, state, cert = https_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    state.update(fail=0, truncate=0)
    with pytest.raises(ChecksumError, match="expected sha256 " + "a" * 64):
        download(url, tmp_path / "t.csv.gz", "a" * 64, "decompressed", retries=0)
    assert leftovers(tmp_path) == []


# --- archives ---------------------------------------------------------------------------------------


def test_safe_extract_keeps_the_original_layout(tmp_path):
    archive = build_har_archive(tmp_path / "UCI HAR Dataset.zip", n_train=20, n_test=20)
    root = safe_extract(archive, tmp_path / "x") / "UCI HAR Dataset"
    assert (root / "train" / "Inertial Signals" / "body_acc_x_train.txt").is_file()
    assert len((root / "test" / "X_test.txt").read_text().splitlines()) == 20


@pytest.mark.parametrize("member,reason", [
    ("../evil.txt", "'..' component"),
    ("UCI HAR Dataset/../../evil.txt", "'..' component"),
    ("/etc/evil.txt", "absolute path"),
    ("C:/evil.txt", "absolute path"),
])
def test_unsafe_members_are_refused(tmp_path, member, reason):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("UCI HAR Dataset/features.txt", "1 a\n")
        zf.writestr(member, "pwned\n")
    with pytest.raises(ArchiveError, match=rf"member '{member}' .*{reason}"):
        safe_extract(archive, tmp_path / "x")
    assert leftovers(tmp_path) == ["bad.zip"]
    assert not (tmp_path.parent / "evil.txt").exists()


def test_truncated_and_non_zip_archives_are_refused(tmp_path):
    full = build_har_archive(tmp_path / "full.zip", n_train=20, n_test=20).read_bytes()
    (tmp_path / "truncated.zip").write_bytes(full[: len(full) * 2 // 3])
    with pytest.raises(ArchiveError, match="truncated"):
        safe_extract(tmp_path / "truncated.zip", tmp_path / "x")
    (tmp_path / "plain.zip").write_bytes(TRAFFIC.read_bytes())
    with pytest.raises(ArchiveError, match="is not a zip archive"):
        safe_extract(tmp_path / "plain.zip", tmp_path / "x")
    # a flipped byte inside a member's data fails its CRC
    pos = full.index(b"WALKING_UPSTAIRS")
    (tmp_path / "corrupt.zip").write_bytes(full[:pos] + b"X" + full[pos + 1:])
    with pytest.raises(ArchiveError, match="fails its CRC check"):
        safe_extract(tmp_path / "corrupt.zip", tmp_path / "x")
    assert not (tmp_path / "x").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_har_prepare_refuses_a_truncated_archive_without_output(tmp_path):
    from liquidbench.data import har

    full = build_har_archive(tmp_path / "full.zip", n_train=20, n_test=20).read_bytes()
    (tmp_path / "t.zip").write_bytes(full[:-100])
    with pytest.raises(ArchiveError):
        har.prepare({"protocol": "features561"}, tmp_path / "out", raw=tmp_path / "t.zip")
    assert not (tmp_path / "out").exists()


def test_test_archives_are_deterministic_and_pinned_in_the_smoke_config(tmp_path):
    a = build_har_archive(tmp_path / "a" / "UCI HAR Dataset.zip", **SMOKE_ARGS)
    b = build_har_archive(tmp_path / "b" / "UCI HAR Dataset.zip", **SMOKE_ARGS)
    assert a.read_bytes() == b.read_bytes()
    smoke = yaml.safe_load((REPO / ".test/config/config.yaml").read_text())
    assert smoke["datasets"]["har"]["source"]["sha256"] == sha256(a)


def test_unpinned_source_is_accepted_with_a_warning_that_names_its_hash(tmp_path, caplog):
    archive = build_har_archive(tmp_path / "mirror" / "UCI HAR Dataset.zip", n_train=20, n_test=20)
    url = "https://archive.ics.uci.edu/ml/machine-learning-databases/00240/UCI%20HAR%20Dataset.zip"
    with caplog.at_level("WARNING", logger="liquidbench.data.download"):
        got = download(url, tmp_path / "raw" / "h.zip", None, mirrors=[tmp_path / "mirror"])
    assert got["sha256"] == sha256(archive)
    assert f"no sha256 is pinned, so its content is NOT verified; sha256 of its file is {sha256(archive)}" in caplog.text


# --- names that would leave their folder; mirrors that cannot be read ------------------------------

ESCAPING_URL = "https://example.org/data/..%2F..%2Fx.csv.gz"


@pytest.mark.parametrize("entry, key", [
    ({"url": ESCAPING_URL, "sha256": None}, "config key 'datasets.traffic.source.url' (its last path component, decoded)"),
    ({"url": "https://example.org/data/", "sha256": None},
     "config key 'datasets.traffic.source.url' (its last path component, decoded)"),
    ({"url": "https://example.org/t.csv.gz", "file": "..", "sha256": None}, "config key 'datasets.traffic.source.file'"),
    ({"url": "https://example.org/t.csv.gz", "sha256": None, "mirror_names": ["a\0b"]},
     "config key 'datasets.traffic.source.mirror_names'"),
])
def test_a_source_name_that_leaves_its_folder_is_refused_naming_the_key(entry, key):
    from liquidbench.data.sources import Source

    with pytest.raises(ValueError) as err:
        Source.from_entry("traffic", entry)
    assert str(err.value).startswith(f"{key}: ")
    assert "is not a file name that stays in its folder" in str(err.value)


@pytest.mark.parametrize("url, name, what", [
    (ESCAPING_URL, None, "the file name of URL"),
    ("https://example.org/t.csv.gz", "../x.csv.gz", "--name"),
    ("https://example.org/t.csv.gz", "..", "--name"),
])
def test_download_refuses_a_name_that_leaves_its_folder_and_writes_nothing(tmp_path, url, name, what):
    mirror = tmp_path / "a" / "mirror"
    mirror.mkdir(parents=True)
    (tmp_path / "a" / "x.csv.gz").write_bytes(b"x")  # what ../x.csv.gz would reach from the mirror
    out = tmp_path / "raw" / "t.csv.gz"
    with pytest.raises(ValueError, match=f"^{re.escape(what)}"):
        download(url, out, None, mirrors=[mirror], name=name, retries=0)
    assert leftovers(tmp_path / "raw") == [] and sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def unreadable(monkeypatch, path, kind):
    """Make ``path`` (a mirror's file, or the mirror folder itself) unreadable: by its mode and,
    since root reads anything whatever its mode, by refusing to open or list it as the kernel
    would refuse a user without read permission."""
    import errno
    import os

    from liquidbench.data import download as module

    path.chmod(0)
    if os.geteuid() != 0:
        return
    denied = PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
    if kind == "file":
        real_open = open

        def fake_open(file, *args, **kwargs):
            if os.fspath(file) == str(path):
                raise denied
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(module, "open", fake_open, raising=False)
    else:
        real_scandir = os.scandir

        def fake_scandir(target="."):
            if os.fspath(target) == str(path):
                raise denied
            return real_scandir(target)

        monkeypatch.setattr(os, "scandir", fake_scandir)


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_an_unreadable_mirror_is_skipped_for_the_next_one(tmp_path, monkeypatch, caplog, kind):
    first, second = tmp_path / "first", tmp_path / "second"
    for mirror in (first, second):
        mirror.mkdir()
        shutil.copyfile(TRAFFIC, mirror / TRAFFIC.name)
    bad = first / TRAFFIC.name if kind == "file" else first
    unreadable(monkeypatch, bad, kind)
    try:
        with caplog.at_level("WARNING", logger="liquidbench.data.download"):
            got = download(TRAFFIC_URL, tmp_path / "raw" / "t.csv.gz", TRAFFIC_CSV_SHA, "decompressed",
                           mirrors=[first, second])
    finally:
        bad.chmod(0o755)
    assert got["source"] == str(second / TRAFFIC.name)
    assert f"data mirror: {bad} cannot be read (Permission denied); skipped, trying the next mirror" in caplog.text


def test_when_every_mirror_fails_the_error_names_each_and_why(tmp_path, monkeypatch):
    unreadable_dir, not_a_dir, empty = tmp_path / "locked", tmp_path / "file", tmp_path / "empty"
    unreadable_dir.mkdir()
    empty.mkdir()
    not_a_dir.write_bytes(b"x")
    unreadable(monkeypatch, unreadable_dir, "directory")
    mirrors = [unreadable_dir, not_a_dir, tmp_path / "none", empty]
    try:
        with pytest.raises(DownloadError) as err:
            download(OFFLINE_URL, tmp_path / "raw" / "t.csv.gz", TRAFFIC_CSV_SHA, "decompressed", mirrors=mirrors,
                     retries=0)
    finally:
        unreadable_dir.chmod(0o755)
    assert (f"(mirrors searched: {', '.join(map(str, mirrors))}; skipped: {unreadable_dir} cannot be read "
            f"(Permission denied), {not_a_dir} is not a directory, {tmp_path / 'none'} does not exist)") in str(err.value)
    assert leftovers(tmp_path / "raw") == []
