"""GPU readings through NVML (nvidia-ml-py), and the arithmetic on them.

``open_gpu`` finds the NVML handle of a torch CUDA device by its UUID (so that CUDA_VISIBLE_DEVICES
renumbering does not matter, and a MIG device is read as itself) and returns a reader, or None and
the reason: never the device of the same index, which may be another GPU. A field NVML does not
report for the device stays empty (on a MIG device utilisation, power and energy may be among
them: they belong to the whole GPU, which other instances share). ``convert`` turns NVML's
raw units into the units of telemetry.csv; ``energy_j`` and ``gpu_summary`` are pure functions of
recorded rows, so they are tested without a GPU.
"""

from __future__ import annotations

import math

# NVML units: utilisation %, memory bytes, power mW, total energy mJ (since the driver loaded),
# SM clock MHz, temperature degrees C.
MIB = 1024 * 1024


def convert(raw: dict) -> dict:
    """Raw NVML values -> telemetry columns (MiB, W, mJ kept as counter, MHz, C); None stays None."""
    def scale(key, factor):
        value = raw.get(key)
        return None if value is None else value / factor

    return {
        "gpu_util_pct": scale("util_gpu", 1),
        "gpu_mem_used_mb": scale("mem_used_bytes", MIB),
        "gpu_power_w": scale("power_mw", 1000),
        "gpu_energy_mj": raw.get("energy_mj"),
        "gpu_sm_clock_mhz": scale("sm_clock_mhz", 1),
        "gpu_temp_c": scale("temp_c", 1),
    }


def _num(v) -> float | None:
    if v is None or v == "":
        return None
    v = float(v)
    return None if math.isnan(v) else v


def energy_j(rows: list[dict]) -> tuple[float | None, str | None]:
    """Energy of one GPU over one contiguous series of samples (sorted by time).

    From the total-energy counter when every sample has it (last - first, mJ -> J); otherwise by
    integrating power over time with the trapezoidal rule. Returns (joules, source).
    """
    if len(rows) < 2:
        return None, None
    counters = [_num(r.get("gpu_energy_mj")) for r in rows]
    if all(c is not None for c in counters):
        return (counters[-1] - counters[0]) / 1000.0, "counter"
    pts = [(_num(r["t_unix"]), _num(r.get("gpu_power_w"))) for r in rows]
    pts = [(t, p) for t, p in pts if t is not None and p is not None]
    if len(pts) < 2:
        return None, None
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in zip(pts, pts[1:])), "power_integral"


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _max(values):
    values = [v for v in values if v is not None]
    return max(values) if values else None


def gpu_summary(series: dict, epochs: int) -> dict:
    """Summary of GPU samples. ``series`` maps (segment, rank) -> that rank's GPU rows in time order.

    Utilisation and SM clock are means over every sample of every GPU, memory and temperature
    maxima over GPUs; power is the sum over GPUs of each GPU's mean power (the draw of the whole
    configuration); energy is the sum over GPUs and process segments of each series' energy.
    """
    rows = [r for s in series.values() for r in s]
    per_gpu_power: dict = {}
    for (segment, rank), s in series.items():
        per_gpu_power.setdefault(rank, []).extend(_num(r.get("gpu_power_w")) for r in s)
    energies = [energy_j(s) for s in series.values()]
    known = [e for e, _ in energies if e is not None]
    sources = sorted({src for _, src in energies if src})
    total = sum(known) if known and len(known) == len(energies) else None
    powers = [_mean(p) for p in per_gpu_power.values()]
    return {
        "util_mean_pct": _mean(_num(r.get("gpu_util_pct")) for r in rows),
        "util_max_pct": _max(_num(r.get("gpu_util_pct")) for r in rows),
        "mem_used_peak_mb": _max(_num(r.get("gpu_mem_used_mb")) for r in rows),
        "power_mean_w": sum(powers) if powers and all(p is not None for p in powers) else None,
        "energy_j": total,
        "energy_per_epoch_j": total / epochs if total is not None and epochs else None,
        "energy_source": "+".join(sources) or None,
        "sm_clock_mean_mhz": _mean(_num(r.get("gpu_sm_clock_mhz")) for r in rows),
        "temp_max_c": _max(_num(r.get("gpu_temp_c")) for r in rows),
        "n_gpus": len(per_gpu_power),
    }


class NvmlGpu:
    """Reads one GPU's counters; every field that the GPU does not support reads as None."""

    def __init__(self, pynvml, handle, index: int):
        self._nv, self._h, self.index = pynvml, handle, index

    def _get(self, fn, *args):
        try:
            return fn(self._h, *args)
        except self._nv.NVMLError:
            return None

    def read(self) -> dict:
        nv = self._nv
        util = self._get(nv.nvmlDeviceGetUtilizationRates)
        mem = self._get(nv.nvmlDeviceGetMemoryInfo)
        return convert({
            "util_gpu": None if util is None else util.gpu,
            "mem_used_bytes": None if mem is None else mem.used,
            "power_mw": self._get(nv.nvmlDeviceGetPowerUsage),
            "energy_mj": self._get(nv.nvmlDeviceGetTotalEnergyConsumption),
            "sm_clock_mhz": self._get(nv.nvmlDeviceGetClockInfo, nv.NVML_CLOCK_SM),
            "temp_c": self._get(nv.nvmlDeviceGetTemperature, nv.NVML_TEMPERATURE_GPU),
        })


def torch_uuid(torch_index: int) -> str:
    """The UUID CUDA gives torch's device ``torch_index`` (hex digits and dashes, no prefix)."""
    import torch

    return str(torch.cuda.get_device_properties(torch_index).uuid)


def _bare(uuid) -> str:
    """A UUID without NVML's "GPU-" or "MIG-" prefix, lower case (NVML may return bytes)."""
    text = uuid.decode() if isinstance(uuid, bytes) else str(uuid)
    for prefix in ("GPU-", "MIG-"):
        if text.upper().startswith(prefix):
            text = text[len(prefix):]
    return text.lower()


def _nvml_devices(nv):
    """Every NVML device handle with its UUID: the GPUs, and the MIG devices of each GPU in MIG mode."""
    for i in range(nv.nvmlDeviceGetCount()):
        gpu = nv.nvmlDeviceGetHandleByIndex(i)
        yield gpu, nv.nvmlDeviceGetUUID(gpu)
        try:
            count = nv.nvmlDeviceGetMaxMigDeviceCount(gpu)
        except nv.NVMLError:  # no MIG support on this GPU or driver
            continue
        for k in range(count):
            try:
                mig = nv.nvmlDeviceGetMigDeviceHandleByIndex(gpu, k)
            except nv.NVMLError:  # no MIG device in this slot
                continue
            yield mig, nv.nvmlDeviceGetUUID(mig)


def find_handle(nv, uuid: str):
    """The NVML handle of the device with this UUID (a GPU, or a MIG device), or None.

    NVML names GPUs "GPU-<uuid>" and MIG devices "MIG-<uuid>"; CUDA gives torch the bare UUID of
    what it sees (a MIG device under MIG, whatever CUDA_VISIBLE_DEVICES renumbers). Both names are
    tried, then every device NVML lists is compared, so that a driver's other spelling still matches.
    Never another device: no fallback to the device of the same index."""
    bare = _bare(uuid)
    for prefix in ("GPU-", "MIG-"):
        try:
            return nv.nvmlDeviceGetHandleByUUID(prefix + bare)
        except nv.NVMLError:
            pass
    for handle, its_uuid in _nvml_devices(nv):
        if _bare(its_uuid) == bare:
            return handle
    return None


def open_gpu(torch_index: int, uuid: str | None = None, nvml=None) -> tuple[NvmlGpu | None, str | None]:
    """The NVML reader of torch's CUDA device ``torch_index``, matched by UUID (MIG included), or
    (None, reason). ``uuid`` defaults to CUDA's for that device and ``nvml`` to the pynvml module
    (tests pass recorded ones)."""
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError as exc:
            return None, f"nvidia-ml-py is not installed ({exc})"
    try:
        nvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return None, f"NVML cannot start: {exc}"
    try:
        uuid = torch_uuid(torch_index) if uuid is None else uuid
        handle = find_handle(nvml, uuid)
    except Exception as exc:
        return None, f"NVML cannot list its devices to find CUDA device {torch_index}: {exc}"
    if handle is None:
        return None, (f"no NVML device has the UUID of CUDA device {torch_index} ({uuid}); not reading "
                      "another device's counters")
    return NvmlGpu(nvml, handle, torch_index), None
