"""Telemetry: the real host sampler on CPU, and NVML arithmetic on recorded GPU readings."""

import csv
import json
import math
import os
import socket
import time

import psutil

import pytest

from liquidbench.data.sine import prepare
from liquidbench.telemetry import COLUMNS, Sampler, summarize, write_csv
from liquidbench.telemetry.sampler import GPU_COLUMNS
from liquidbench.telemetry.nvml import convert, energy_j, gpu_summary
from liquidbench.train.loop import RunSpec, train

# Readings as NVML returns them (A100-like): %, bytes, mW, mJ counter, MHz, C.
RAW = [
    {"util_gpu": 80, "mem_used_bytes": 2048 * 2**20, "power_mw": 200_000, "energy_mj": 5_000_000, "sm_clock_mhz": 1410, "temp_c": 60},
    {"util_gpu": 90, "mem_used_bytes": 3072 * 2**20, "power_mw": 250_000, "energy_mj": 5_045_000, "sm_clock_mhz": 1395, "temp_c": 63},
    {"util_gpu": 100, "mem_used_bytes": 2560 * 2**20, "power_mw": 300_000, "energy_mj": 5_100_000, "sm_clock_mhz": 1380, "temp_c": 65},
]


def gpu_rows(raw, t0=0.0, dt=0.2, rank=0, segment=0):
    return [{"t_unix": t0 + i * dt, "segment": segment, "rank": rank, "gpu_index": rank, "cpu_pct": 50.0,
             "rss_mb": 100.0, **convert(r)} for i, r in enumerate(raw)]


def test_convert_turns_nvml_units_into_csv_units():
    row = convert(RAW[1])
    assert row == {"gpu_util_pct": 90, "gpu_mem_used_mb": 3072, "gpu_power_w": 250, "gpu_energy_mj": 5_045_000,
                   "gpu_sm_clock_mhz": 1395, "gpu_temp_c": 63}
    assert convert({"util_gpu": 5})["gpu_power_w"] is None  # unsupported fields stay None


def test_energy_from_counter_and_from_power():
    rows = gpu_rows(RAW)
    assert energy_j(rows) == (pytest.approx(100.0), "counter")  # (5_100_000 - 5_000_000) mJ
    for r in rows:
        r["gpu_energy_mj"] = None
    # trapezoid over 0.2 s steps: 0.2 * (200+250)/2 + 0.2 * (250+300)/2 = 45 + 55
    assert energy_j(rows) == (pytest.approx(100.0), "power_integral")
    assert energy_j(rows[:1]) == (None, None)


def test_gpu_summary_over_ranks_and_segments():
    series = {(0, 0): gpu_rows(RAW), (0, 1): gpu_rows(RAW[:2], rank=1), (1, 0): gpu_rows(RAW[1:], t0=10, segment=1)}
    s = gpu_summary(series, epochs=4)
    utils = [80, 90, 100, 80, 90, 90, 100]
    assert s["util_mean_pct"] == pytest.approx(sum(utils) / len(utils)) and s["util_max_pct"] == 100
    assert s["mem_used_peak_mb"] == 3072 and s["temp_max_c"] == 65
    # energy: rank 0 segment 0 100 J + rank 1 45 J + rank 0 segment 1 55 J
    assert s["energy_j"] == pytest.approx(200.0) and s["energy_per_epoch_j"] == pytest.approx(50.0)
    # power: rank 0 mean over its 5 samples + rank 1 mean over its 2
    assert s["power_mean_w"] == pytest.approx((200 + 250 + 300 + 250 + 300) / 5 + (200 + 250) / 2)
    assert s["sm_clock_mean_mhz"] == pytest.approx((1410 + 1395 + 1380 + 1410 + 1395 + 1395 + 1380) / 7)
    assert s["n_gpus"] == 2 and s["energy_source"] == "counter"


def test_summarize_cuda_and_cpu_blocks():
    rows = gpu_rows(RAW) + gpu_rows(RAW, rank=1)
    t = summarize(rows, interval_s=0.2, epochs=2, device="cuda", torch_max_memory_allocated_mb=512.0)
    assert t["gpu"]["energy_j"] == pytest.approx(200.0) and t["gpu"]["torch_max_memory_allocated_mb"] == 512.0
    assert t["gpu_reason"] is None and t["n_samples"] == 6
    # host: two ranks summed per aligned sample
    assert t["host"] == {"cpu_util_mean_pct": 100.0, "cpu_util_max_pct": 100.0, "rss_peak_mb": 200.0, "ranks": 2}
    no_nvml = summarize([{**r, "gpu_index": None} for r in rows], interval_s=0.2, epochs=2, device="cuda",
                        gpu_reason="NVML cannot start: driver not loaded", torch_max_memory_allocated_mb=1.0)
    assert no_nvml["gpu"]["energy_j"] is None and no_nvml["gpu_reason"].startswith("NVML cannot start")
    cpu = summarize(rows, interval_s=0.2, epochs=2, device="cpu")
    assert cpu["gpu"] is None and "no GPU" in cpu["gpu_reason"]


def test_host_sampler_records_this_process(tmp_path):
    # Wait for a number of samples (with a generous deadline) rather than counting the samples of a
    # fixed window, which depends on how busy the machine is.
    interval, wanted = 0.02, 5
    cpu0 = time.process_time()
    with Sampler(interval_s=interval, rank=3, segment=2) as s:
        deadline = time.monotonic() + 120
        x = 0
        while len(s.rows) < wanted:  # keep this process busy meanwhile
            assert time.monotonic() < deadline, f"{len(s.rows)} samples in 120 s at a {interval} s interval"
            x += 1
        stop_called = time.time()
    cpu_used = time.process_time() - cpu0
    rows = s.rows
    # the thread's samples and one more when the sampler stops, closing the window
    assert len(rows) >= wanted + 1 and rows[-1]["t_unix"] >= stop_called
    assert {(r["rank"], r["segment"], r["pid"], r["host"]) for r in rows} == {(3, 2, os.getpid(), socket.gethostname())}
    assert all(r[c] is None for r in rows for c in GPU_COLUMNS) and all(r["gpu_index"] is None for r in rows)
    rss = psutil.Process().memory_info().rss / 2**20
    assert all(0.5 * rss < r["rss_mb"] < 2 * rss for r in rows)
    ts = [r["t_unix"] for r in rows]
    # the thread waits a full interval between samples (the stop sample may come sooner)
    assert all(b - a > 0.9 * interval for a, b in zip(ts[:-2], ts[1:-1])) and ts[-1] >= ts[-2]
    # cpu_pct is % of one core since the previous sample: times the sample gaps it adds up to the
    # CPU time this process used after the first sample (less than all it used here, but not 0)
    recorded = sum(r["cpu_pct"] / 100 * (b["t_unix"] - a["t_unix"]) for a, b, r in zip(rows, rows[1:], rows[1:]))
    assert 0 < recorded <= cpu_used * 1.05 + 0.02
    assert all(r["cpu_pct"] >= 0 for r in rows)
    write_csv(tmp_path / "telemetry.csv", rows)
    with open(tmp_path / "telemetry.csv") as fh:
        back = list(csv.DictReader(fh))
    assert list(back[0]) == COLUMNS and len(back) == len(rows) and back[0]["gpu_util_pct"] == ""
    assert [float(r["t_unix"]) for r in back] == ts and [float(r["rss_mb"]) for r in back] == [r["rss_mb"] for r in rows]
    with pytest.raises(ValueError, match="interval"):
        Sampler(interval_s=0)


def test_cpu_training_run_writes_telemetry(tmp_path):
    data = tmp_path / "sine"
    prepare({"n_sequences": 60, "seq_len": 16, "seed": 0}, data)
    spec = RunSpec(dataset="sine", model="ltc", hardware="cpu", seed=0, data_dir=data, out_dir=tmp_path / "run",
                   model_spec={"type": "ltc", "units": 8, "ode_unfolds": 3},
                   train_params={"epochs": 3, "batch_size": 8, "lr": 0.01},
                   hardware_spec={"device": "cpu", "threads": 1, "telemetry_interval_s": 0.05,
                                  "resources": {"mem_mb": 1000, "runtime": 5}})
    m = train(spec)
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    t = on_disk["telemetry"]
    # the number of samples depends on how fast the machine trains; the sampler's last one closes the window
    assert t["interval_s"] == 0.05 and t["n_samples"] >= 1
    assert t["host"]["rss_peak_mb"] > 10 and t["host"]["cpu_util_mean_pct"] > 0 and t["host"]["ranks"] == 1
    assert t["gpu"] is None and t["gpu_reason"] == "device is cpu: no GPU in use"
    lines = (tmp_path / "run" / "telemetry.csv").read_text().splitlines()
    assert len(lines) == t["n_samples"] + 1
    assert m["comm_fraction"] is None and m["world_size"] == 1
    assert 0 < m["step_time_median_s"] <= m["step_time_p95_s"]
    # 42 training sequences, batch 8: 6 steps per epoch, the median lies within an epoch's time / steps
    assert m["steps_per_epoch"] == 6
    assert m["step_time_median_s"] * 6 <= max(m["epoch_times_s"][1:]) * 1.5
    assert not math.isnan(m["test_metric"])


class RecordedNvml:
    """A pynvml module object answering from recorded responses: ``devices`` maps an NVML UUID to its
    readings, in NVML's index order; ``migs`` maps a GPU's UUID to its MIG devices' UUIDs.
    ``by_uuid_knows_mig``: whether nvmlDeviceGetHandleByUUID accepts "MIG-" names (older drivers do not)."""

    class NVMLError(Exception):
        pass

    class NVMLError_NotFound(NVMLError):
        pass

    class NVMLError_NotSupported(NVMLError):
        pass

    NVML_CLOCK_SM, NVML_TEMPERATURE_GPU = 1, 0

    def __init__(self, devices: dict, migs: dict | None = None, by_uuid_knows_mig=True):
        self.devices, self.migs, self.knows_mig = devices, migs or {}, by_uuid_knows_mig
        self.gpus = [u for u in devices if u.startswith("GPU-")]

    def nvmlInit(self):
        pass

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i):
        return self.gpus[i]

    def nvmlDeviceGetHandleByUUID(self, uuid):
        if uuid not in self.devices or (uuid.startswith("MIG-") and not self.knows_mig):
            raise self.NVMLError_NotFound("Not Found")
        return uuid

    def nvmlDeviceGetUUID(self, handle):
        return handle.encode()  # nvidia-ml-py returns bytes from some versions

    def nvmlDeviceGetMaxMigDeviceCount(self, handle):
        if handle not in self.migs:
            raise self.NVMLError_NotSupported("Not Supported")
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle, k):
        if k >= len(self.migs[handle]):
            raise self.NVMLError_NotFound("Not Found")
        return self.migs[handle][k]

    def _reading(self, handle, key):
        value = self.devices[handle].get(key)
        if value is None:
            raise self.NVMLError_NotSupported("Not Supported")
        return value

    def nvmlDeviceGetUtilizationRates(self, h):
        return type("Util", (), {"gpu": self._reading(h, "util_gpu")})()

    def nvmlDeviceGetMemoryInfo(self, h):
        return type("Mem", (), {"used": self._reading(h, "mem_used_bytes")})()

    def nvmlDeviceGetPowerUsage(self, h):
        return self._reading(h, "power_mw")

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        return self._reading(h, "energy_mj")

    def nvmlDeviceGetClockInfo(self, h, clock):
        return self._reading(h, "sm_clock_mhz")

    def nvmlDeviceGetTemperature(self, h, sensor):
        return self._reading(h, "temp_c")


# A two-GPU node as NVML reports it; GPU 1 is in MIG mode with two instances, which report memory only.
GPU0, GPU1 = "GPU-6c9a1e2f-1b3d-4c5e-8f70-0a1b2c3d4e5f", "GPU-d41d8cd9-8f00-4b20-9e98-00998ecf8427"
MIG_A, MIG_B = "MIG-8a7b6c5d-4e3f-5a21-9b0c-1d2e3f4a5b6c", "MIG-0f1e2d3c-4b5a-5968-8776-a5b4c3d2e1f0"
NODE = {GPU0: RAW[0], GPU1: RAW[2], MIG_A: {"mem_used_bytes": 512 * 2**20}, MIG_B: {"mem_used_bytes": 1024 * 2**20}}


def test_nvml_reads_the_device_cuda_calls_index_0_after_remapping():
    """CUDA_VISIBLE_DEVICES=1: torch's device 0 is NVML's device 1, found by its UUID (CUDA gives
    torch the bare UUID), never NVML's device 0."""
    from liquidbench.telemetry.nvml import open_gpu

    gpu, reason = open_gpu(0, uuid=GPU1[4:], nvml=RecordedNvml(NODE))
    assert reason is None
    assert gpu.read() == convert(RAW[2])


@pytest.mark.parametrize("knows_mig", [True, False], ids=["by-uuid", "listed"])
def test_nvml_reads_a_mig_device_as_itself(knows_mig):
    """Under MIG, CUDA's device is a MIG instance: it is found by its "MIG-" UUID (or, where the
    driver's lookup does not take MIG names, among the MIG devices NVML lists); the fields NVML does
    not report for it stay empty instead of being read from the whole GPU."""
    from liquidbench.telemetry.nvml import open_gpu

    gpu, reason = open_gpu(0, uuid=MIG_B[4:], nvml=RecordedNvml(NODE, {GPU1: [MIG_A, MIG_B]}, knows_mig))
    assert reason is None
    assert gpu.read() == {"gpu_util_pct": None, "gpu_mem_used_mb": 1024, "gpu_power_w": None, "gpu_energy_mj": None,
                          "gpu_sm_clock_mhz": None, "gpu_temp_c": None}


def test_nvml_without_the_device_reads_nothing_and_says_why():
    from liquidbench.telemetry.nvml import open_gpu

    unknown = "0badc0de-0000-4000-8000-000000000000"
    gpu, reason = open_gpu(0, uuid=unknown, nvml=RecordedNvml(NODE, {GPU1: [MIG_A, MIG_B]}))
    assert gpu is None
    assert reason == f"no NVML device has the UUID of CUDA device 0 ({unknown}); not reading another device's counters"

    class NoDriver(RecordedNvml):
        def nvmlInit(self):
            raise self.NVMLError("Driver Not Loaded")

    assert open_gpu(0, uuid=GPU0, nvml=NoDriver(NODE)) == (None, "NVML cannot start: Driver Not Loaded")
