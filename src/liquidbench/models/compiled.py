"""Optional C kernels of the fast models: built once per machine type, loaded with ctypes.

A :class:`Kernel` is one C source file beside this module (``<name>.c``, no Python or torch
headers; packaged with the wheel as package data) compiled with the system's C compiler (``cc``, or
``$CC``) into ``~/.cache/liquidbench`` (``$XDG_CACHE_HOME``) the first time a process asks for it.
The cache key holds what decides which instructions the kernel may use: the source, the flags,
``platform.machine()`` and the CPU's identifying lines of /proc/cpuinfo (x86: model name and flags;
arm: Features and CPU implementer, architecture, variant and part; POWER: cpu, platform and model;
s390: features, facilities and machine). So a node of another type, sharing the home folder, builds
its own, and a node without a compiler loads the kernel a node of its type built. Where the CPU
cannot be identified, the kernel is built for the compiler's default target instead of the CPU's
(no ``-march=native``) and keyed as such. The key leaves out the compiler, so that it can be
computed where there is none; the compiler that built a kernel is recorded beside it
(``<name>_<key>.json``) and in ``Kernel.build``. A cached file that cannot be loaded is rebuilt once.
Where no kernel can be loaded (no compiler and nothing cached, a failed build), the tensors are not
contiguous float32 on the CPU, or ``LIQUIDBENCH_<NAME>=0`` is set, the fast model uses its torch
implementation instead (the same results within float32 rounding). The one compilation's time is
recorded in ``Kernel.build`` (``seconds``) as warm-up, never as training time.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import platform
import shutil
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import torch

log = logging.getLogger(__name__)

# The /proc/cpuinfo fields that decide which instructions the native target option lets the
# compiler emit, per architecture family, matched on the name before the colon (any case); the
# first must be present for the CPU to count as identified. x86: the cpuid flags and the model;
# arm: the Features line (sve, sve2, ...) and the core's identity, both read by -march=native; POWER:
# the processor generation, what -mcpu=native resolves to, and the platform; s390: the facility
# lists and the machine type. Per-core values (MHz, bogomips, revision, serial numbers) are left
# out: they differ between nodes of one type, and a node without a compiler must find its type's
# kernel.
_IDENTIFYING = {
    "x86": ("flags", "model name"),
    "arm": ("features", "cpu implementer", "cpu architecture", "cpu variant", "cpu part"),
    "power": ("cpu", "platform", "model"),
    "s390": ("features", "facilities", "machine"),
}

# Flags where the CPU is not identified: the compiler's default target for the architecture, which
# every node of that architecture runs (slower than the CPU's own, never an illegal instruction).
# -ffast-math assumes no infinity or NaN ever occurs: a kernel must keep every intermediate finite
# (a division by an overflowed expf gave NaN, not 0: the sigmoids cap their exponent).
PORTABLE_FLAGS = ["-O3", "-ffast-math", "-fPIC", "-shared"]

_portable_logged = False  # the fallback to PORTABLE_FLAGS is logged once a process


def _family(machine: str) -> str | None:
    """The architecture family of ``platform.machine()``'s answer, or None for one this module
    cannot identify CPUs of (e.g. riscv64): those get PORTABLE_FLAGS."""
    m = machine.lower()
    if m in ("x86_64", "amd64", "i386", "i686"):
        return "x86"
    if m.startswith(("aarch64", "arm")):
        return "arm"
    if m.startswith(("ppc", "powerpc")):
        return "power"
    if m.startswith("s390"):
        return "s390"
    return None


def native_flags(machine: str) -> list[str]:
    """The flags that build for this CPU's own instruction set. POWER's gcc has no -march: its
    option is -mcpu=native. On x86-64, 256-bit vectors even where the compiler's tuning for the CPU
    prefers 128 (-march=native on AMD Zen 1 VMs): measured 20 % less time in the LTC step and its
    backward on such a machine; the option is x86-only (elsewhere it would fail the build)."""
    family = _family(machine)
    target = ["-mcpu=native"] if family == "power" else ["-march=native"]
    if family == "x86":
        target.append("-mprefer-vector-width=256")
    return [PORTABLE_FLAGS[0], *target, *PORTABLE_FLAGS[1:]]


FLAGS = native_flags(platform.machine())  # this machine's, used where its CPU is identified


def cpu_identity(cpuinfo: str, machine: str) -> str:
    """The lines of ``cpuinfo`` (the text of /proc/cpuinfo) that tell which instructions the native
    target option allows on this CPU, each distinct line once in first-seen order (a 128-thread
    POWER node repeats its cpu line 128 times, and its platform follows them); "" where the CPU is
    not identified (an architecture not in _IDENTIFYING, or its feature line missing)."""
    fields = _IDENTIFYING.get(_family(machine) or "", ())
    kept: dict[str, None] = {}
    for line in cpuinfo.splitlines():
        name, colon, _ = line.partition(":")
        if colon and name.strip().lower() in fields:
            kept.setdefault(" ".join(line.split()), None)
    if not any(line.split(":", 1)[0].strip().lower() == fields[0] for line in kept):
        return ""
    return "\n".join(kept)


def _read_cpuinfo() -> str:
    """/proc/cpuinfo's text, or "" where it cannot be read (macOS, some sandboxes)."""
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def _machine() -> str:
    return platform.machine()


def build_target() -> tuple[list[str], str]:
    """The flags to build with on this node and the CPU identity the cache key holds. Where the CPU
    is not identified, PORTABLE_FLAGS and an empty identity: a -march=native kernel keyed by nothing
    that tells node types apart would be loaded by a node of another type sharing the cache folder
    (an illegal instruction there)."""
    machine = _machine()
    identity = cpu_identity(_read_cpuinfo(), machine)
    if identity:
        return native_flags(machine), identity
    global _portable_logged
    if not _portable_logged:
        _portable_logged = True
        log.warning("the CPU of this %s node is not identified (/proc/cpuinfo unreadable or without the "
                    "lines this module knows for the architecture): the C kernels are built for the "
                    "compiler's default target, without -march=native (slower, but safe to share "
                    "between nodes)", machine or "unknown")
    return list(PORTABLE_FLAGS), ""


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "liquidbench"


def _compiler_identity(compiler: str) -> str:
    """The compiler and the first line of its ``--version`` (e.g. "cc (Debian 12.2.0-14) 12.2.0"),
    recorded beside each kernel: the key leaves the compiler out, so this says which one built it."""
    try:
        out = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    lines = out.strip().splitlines()
    return f"{compiler}: {lines[0] if lines else 'version unknown'}"


def _recorded_compiler(path: Path) -> str | None:
    """The compiler recorded beside a cached kernel, or None where no record was left."""
    try:
        return json.loads(path.with_suffix(".json").read_text()).get("compiler")
    except (OSError, ValueError, AttributeError):
        return None


def _cut_short(data: bytes) -> str | None:
    """Why an ELF file is shorter than its own headers say, or None where it is whole (or not ELF:
    dlopen rejects that cleanly). A truncated shared library must be caught before dlopen: it maps
    the file, and the process dies of SIGBUS on touching the missing part."""
    if data[:4] != b"\x7fELF":
        return None
    wide, order = data[4:5] == b"\x02", "<" if data[5:6] == b"\x01" else ">"
    # (header size, e_phoff/e_shoff format and offset, e_phentsize offset, p_offset and p_filesz offsets)
    size, word, at, sizes_at, off_at, filesz_at = (64, "Q", 0x20, 0x36, 8, 32) if wide else (52, "I", 0x1C, 0x2A, 4, 16)
    if len(data) < size:
        return f"{len(data)} bytes, less than an ELF header"
    phoff, shoff = struct.unpack_from(order + word * 2, data, at)
    phentsize, phnum, shentsize, shnum = struct.unpack_from(order + "4H", data, sizes_at)
    if phoff + phentsize * phnum > len(data) or shoff + shentsize * shnum > len(data):
        return f"{len(data)} bytes, cut short: its header tables reach beyond the end"
    for i in range(phnum):
        entry = phoff + i * phentsize
        p_type = struct.unpack_from(order + "I", data, entry)[0]
        (offset,), (filesz,) = (struct.unpack_from(order + word, data, entry + o) for o in (off_at, filesz_at))
        if p_type == 1 and offset + filesz > len(data):  # PT_LOAD
            return f"{len(data)} bytes, cut short: a loaded segment reaches beyond the end"
    return None


def _open_library(path: Path) -> ctypes.CDLL:
    """ctypes.CDLL of a kernel file, refused (OSError) where the file is cut short."""
    short = _cut_short(path.read_bytes())
    if short:
        raise OSError(short)
    return ctypes.CDLL(str(path))


def _describe(exc: BaseException) -> str:
    """An error with a failed compiler's own output, for ``Kernel.build["error"]``."""
    return f"{exc} {getattr(exc, 'stderr', '') or ''}".strip()


def ptr(t: torch.Tensor | None) -> int | None:
    """A tensor's data pointer for a C call (None for NULL; ctypes passes the int as the function's
    ``c_void_p`` argument). The caller keeps the tensor alive."""
    return None if t is None else t.data_ptr()


class Kernel:
    """One compiled C source, ``<name>.c`` beside this module unless ``source_path`` says otherwise.
    ``functions`` maps each exported function to its argument counts ``(ints, pointers)`` (ints
    first); :meth:`library` builds or loads it once per process."""

    def __init__(self, name: str, what: str, functions: dict[str, tuple[int, int]],
                 source_path: str | os.PathLike | None = None):
        self.name, self.what, self.functions = name, what, functions
        self.source_path = Path(source_path) if source_path else Path(__file__).with_name(f"{name}.c")
        self.source = self.source_path.read_text()
        self.env_var = f"LIQUIDBENCH_{name.upper()}"
        self.build: dict = {"seconds": None, "path": None, "error": None, "flags": None, "compiler": None}
        self._lib = None
        self._tried = False
        self.paths: dict[str, None] = {}  # the paths calls took since reset(), in first-use order

    def cache_path(self, target: tuple[list[str], str] | None = None) -> Path:
        """Where the kernel for ``target`` (flags and CPU identity; this node's by default) lives:
        ``<cache>/<name>_<key>.so``. The key leaves the compiler out, so that a node without one
        finds the kernel a node of its type built; a compiler of another version on a node of the
        same type makes no difference to which instructions are legal, only to their speed (delete
        the cache folder to rebuild after changing compilers)."""
        flags, identity = target or build_target()
        text = "\0".join([self.source, " ".join(flags), _machine(), identity])
        return _cache_dir() / f"{self.name}_{hashlib.sha256(text.encode()).hexdigest()[:16]}.so"

    def _compile(self, target: Path, flags: list[str]) -> str:
        """Build into a temporary file in the cache folder, then rename it onto ``target`` (atomic:
        concurrent builds, on one node or on several sharing the folder, leave one complete file, and
        a broken file is replaced without a moment when the name is missing). Returns the compiler's
        identity, also written beside the kernel (``<name>_<key>.json``)."""
        compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
        if not compiler:
            raise RuntimeError(f"no C compiler (cc, gcc or $CC) found, and no kernel for this CPU in {target.parent}: "
                               "install one (apt-get install gcc), or run once on a node of this type that has one")
        target.parent.mkdir(parents=True, exist_ok=True)
        compiler_id = _compiler_identity(compiler)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            src = Path(tmp) / f"{self.name}.c"
            src.write_text(self.source)
            out = Path(tmp) / target.name
            subprocess.run([compiler, *flags, "-o", str(out), str(src), "-lm"], check=True, capture_output=True,
                           text=True)
            record = Path(tmp) / "build.json"
            record.write_text(json.dumps({"compiler": compiler_id, "flags": flags}) + "\n")
            os.replace(record, target.with_suffix(".json"))
            os.replace(out, target)
        return compiler_id

    def _load(self) -> tuple[ctypes.CDLL, Path]:
        """The kernel for this node's CPU, from the cache, built first where it is missing or cannot
        be loaded (0 bytes, truncated, not a library: rebuilt once, replacing it). The cache comes
        before any compiler is looked for: a node without one loads what a node of its type built."""
        flags, identity = build_target()
        path = self.cache_path((flags, identity))
        self.build["flags"] = flags
        broken = None
        if path.exists():
            try:
                lib = _open_library(path)
            except OSError as exc:
                broken = f"the cached kernel {path} cannot be loaded ({exc})"
                log.warning("%s: rebuilding it", broken)
            else:
                self.build["compiler"] = _recorded_compiler(path)
                return lib, path
        try:
            self.build["compiler"] = self._compile(path, flags)
        except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
            if broken:
                raise RuntimeError(f"{broken}, and rebuilding it failed: {_describe(exc)}") from exc
            raise
        return _open_library(path), path

    def library(self):
        """The loaded library, or None (no compiler and nothing cached, a failed build, or disabled)."""
        if self._tried:
            return self._lib
        self._tried = True
        if os.environ.get(self.env_var, "1") == "0":
            self.build["error"] = f"disabled by {self.env_var}=0"
            return None
        t0 = time.perf_counter()
        try:
            lib, path = self._load()
            missing = [fn for fn in self.functions if not hasattr(lib, fn)]
            if missing:  # not this source's build: the file name holds the source's hash
                raise RuntimeError(f"{path} lacks {', '.join(missing)}: delete it, and the next run rebuilds it")
        except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
            self.build["error"] = _describe(exc)
            log.warning("%s kernel unavailable, using the torch implementation: %s", self.what, self.build["error"])
            return None
        for fn, (ints, pointers) in self.functions.items():
            getattr(lib, fn).argtypes = [ctypes.c_int] * ints + [ctypes.c_void_p] * pointers
        self.build.update(seconds=time.perf_counter() - t0, path=str(path))
        log.info("%s kernel ready in %.2f s (build or load, once per process): %s", self.what, self.build["seconds"],
                 path)
        self._lib = lib
        return lib

    def status(self) -> str:
        """What this process's fast model ran on since :meth:`reset`, for metrics.json's env: the path
        its calls took -- "compiled" or "torch: <why>" (on a GPU "torch: tensors on cuda ..."; both,
        joined by "; ", when calls took different paths) --, or "not used" when none ran. The two
        paths agree within float32 rounding, not bit for bit, so a comparison of two runs to the bit
        needs the same path on both sides."""
        return "; ".join(self.paths) or "not used"

    def reset(self) -> None:
        """Forget the paths taken (at the start of a run, so that its status is its own)."""
        self.paths = {}

    def usable(self, *tensors: torch.Tensor, unsupported: str | None = None) -> bool:
        """Whether the compiled kernel takes these tensors (contiguity is the caller's business);
        ``unsupported`` is the caller's own reason not to use it. The path is recorded for status()."""
        if unsupported is None and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors) \
                and self.library() is not None:
            if "compiled" not in self.paths:  # the common case: one pass over the tensors, as before
                self.paths["compiled"] = None
            return True
        if unsupported:
            path = f"torch: {unsupported}"
        elif any(t.device.type != "cpu" for t in tensors):
            devices = sorted({t.device.type for t in tensors} - {"cpu"})
            path = f"torch: tensors on {'/'.join(devices)} (the compiled kernel runs on the CPU)"
        elif any(t.dtype != torch.float32 for t in tensors):
            path = "torch: not float32 (the compiled kernel takes float32)"
        else:  # no library: no compiler, a failed build, or disabled
            path = f"torch: {self.build.get('error') or 'unavailable'}"
        self.paths.setdefault(path)
        return False
