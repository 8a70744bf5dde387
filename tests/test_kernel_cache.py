"""The compiled kernels' cache (liquidbench.models.compiled): one kernel per CPU type on every
architecture, found without a compiler, rebuilt when broken, and built without -march=native where
the CPU cannot be identified. A one-function C file stands in for the LTC and CfC sources."""

from __future__ import annotations

import logging
import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from conftest import missing_part
from liquidbench.models import compiled

TINY = "int tiny_add(int a, int b) { return a + b; }\n"

X86_FLAGS = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr "
             "sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc art arch_perfmon pebs bts rep_good "
             "nopl xtopology nonstop_tsc cpuid aperfmperf tsc_known_freq pni pclmulqdq dtes64 monitor ds_cpl vmx "
             "smx est tm2 ssse3 sdbg fma cx16 xtpr pdcm pcid dca sse4_1 sse4_2 x2apic movbe popcnt "
             "tsc_deadline_timer aes xsave avx f16c rdrand lahf_lm abm 3dnowprefetch cpuid_fault epb cat_l3 "
             "cat_l2 cdp_l3 invpcid_single intel_ppin cdp_l2 ssbd mba ibrs ibpb stibp ibrs_enhanced tpr_shadow "
             "flexpriority ept vpid ept_ad fsgsbase tsc_adjust bmi1 hle avx2 smep bmi2 erms invpcid rtm cqm "
             "rdt_a sha_ni xsaveopt xsavec xgetbv1 xsaves cqm_llc cqm_occup_llc cqm_mbm_total cqm_mbm_local "
             "split_lock_detect avx_vnni dtherm ida arat pln pts hwp hwp_act_window hwp_epp hwp_pkg_req vnmi "
             "umip pku ospke waitpkg gfni vaes vpclmulqdq tme rdpid bus_lock_detect cldemote movdiri movdir64b "
             "enqcmd fsrm md_clear serialize tsxldtrk pconfig arch_lbr ibt amx_bf16 avx512_fp16 amx_tile "
             "amx_int8 flush_l1d arch_capabilities")
ARM_FEATURES = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma "
                "lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg "
                "dcpodp flagm2 frint svei8mm svebf16 i8mm bf16 dgh rng")
S390_FEATURES = "esan3 zarch stfle msa ldisp eimm dfp edat etf3eh highgprs te vx vxd vxe gs vxe2 vxp sort dflt sie"


def x86_node(flags: str = X86_FLAGS, model: str = "Intel(R) Xeon(R) Platinum 8480+", cores: int = 2,
             mhz: float = 2000.0) -> str:
    return "".join(f"processor\t: {i}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n"
                   f"model name\t: {model}\ncpu MHz\t\t: {mhz + i:.3f}\nflags\t\t: {flags}\n\n" for i in range(cores))


def arm_node(features: str = ARM_FEATURES, part: str = "0xd40", cores: int = 2, bogomips: float = 2100.0) -> str:
    return "".join(f"processor\t: {i}\nBogoMIPS\t: {bogomips:.2f}\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
                   f"CPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: {part}\nCPU revision\t: 1\n\n"
                   for i in range(cores))


def power_node(cpu: str = "POWER9 (architected), altivec supported", cores: int = 2, platform_: str = "pSeries",
               clock: float = 2750.0) -> str:
    blocks = "".join(f"processor\t: {i}\ncpu\t\t: {cpu}\nclock\t\t: {clock:.6f}MHz\n"
                     f"revision\t: 2.2 (pvr 004e 1202)\n\n" for i in range(cores))
    return blocks + (f"timebase\t: 512000000\nplatform\t: {platform_}\nmodel\t\t: IBM,9009-22A\n"
                     f"machine\t\t: CHRP IBM,9009-22A\nMMU\t\t: Radix\n")


def s390_node(machine: str = "8561", features: str = S390_FEATURES, cores: int = 2, bogomips: float = 3241.0) -> str:
    head = (f"vendor_id       : IBM/S390\n# processors    : {cores}\nbogomips per cpu: {bogomips:.2f}\n"
            f"features\t: {features}\nfacilities      : 0 1 2 3 4 6 7 8 9 10 12 14 15 16 17 18 19 20 21 22\n")
    return head + "".join(f"\ncpu number      : {i}\nmachine         : {machine}\n" for i in range(cores))


# per architecture: a node, a node of another type (the instructions -march=native may use differ), and
# a node of the first type with other per-core values and many more cores
CPU_TYPES = {
    "x86_64": (x86_node(), x86_node(flags=X86_FLAGS.replace(" avx2 ", " avx2 avx512f avx512bw ")),
               x86_node(cores=64, mhz=3100.0)),
    "aarch64": (arm_node(), arm_node(features=ARM_FEATURES.replace(" sve ", " sve sve2 ")),
                arm_node(cores=96, bogomips=2000.0)),
    "ppc64le": (power_node(), power_node(cpu="POWER10 (architected), altivec supported"),
                power_node(cores=128, clock=3800.0)),
    "s390x": (s390_node(), s390_node(machine="3931", features=S390_FEATURES + " nnpa"),
              s390_node(cores=16, bogomips=3300.0)),
}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty kernel cache of this test's own ($XDG_CACHE_HOME)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "liquidbench"


def tiny_kernel(folder, functions=None) -> compiled.Kernel:
    """A kernel of one trivial function, its source in ``folder``."""
    source = folder / "tiny_kernel.c"
    source.write_text(TINY)
    return compiled.Kernel("tiny_kernel", "tiny", functions or {"tiny_add": (2, 0)}, source_path=source)


def on_cpu(monkeypatch, cpuinfo: str, machine: str) -> None:
    """This process sees ``cpuinfo`` as /proc/cpuinfo on a ``machine`` node."""
    monkeypatch.setattr(compiled, "_read_cpuinfo", lambda: cpuinfo)
    monkeypatch.setattr(compiled, "_machine", lambda: machine)


def require_c_compiler() -> None:
    """Building needs a C compiler: skip where there is none (fail under CI, which installs one)."""
    if not (os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")):
        missing_part("the compiled-kernel cache tests",
                     "no C compiler on this machine: install gcc (apt-get install gcc)")


def no_compiler(monkeypatch, tmp_path) -> None:
    """No cc or gcc on PATH and no $CC, as on a compute node without build tools."""
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("CC", raising=False)


def compile_commands(monkeypatch) -> list[list[str]]:
    """The compiler commands (those writing an output file) run from now on, in order."""
    seen, run = [], subprocess.run

    def recording(cmd, *args, **kwargs):
        if "-o" in cmd:
            seen.append(list(cmd))
        return run(cmd, *args, **kwargs)

    monkeypatch.setattr(compiled.subprocess, "run", recording)
    return seen


@pytest.mark.parametrize("machine", CPU_TYPES)
def test_each_cpu_type_gets_a_kernel_of_its_own(machine, tmp_path, cache, monkeypatch):
    """Nodes of two CPU types sharing a home folder: each its own kernel (an SVE2 kernel on a node
    without SVE2 is an illegal instruction), on every architecture, not on x86 alone. Per-core values
    (MHz, BogoMIPS, core count) leave the key alone: a node without a compiler finds the kernel a
    node of its type with another core count built."""
    kernel = tiny_kernel(tmp_path)
    one, other, same_type = CPU_TYPES[machine]
    on_cpu(monkeypatch, one, machine)
    path_one = kernel.cache_path()
    on_cpu(monkeypatch, other, machine)
    assert kernel.cache_path() != path_one
    on_cpu(monkeypatch, same_type, machine)
    assert kernel.cache_path() == path_one
    assert compiled.build_target()[0] == compiled.native_flags(machine)


def test_power_builds_with_its_own_native_option():
    """POWER's gcc has no -march: -mcpu=native there; the x86-only vector-width option stays on x86."""
    power = compiled.native_flags("ppc64le")
    assert "-mcpu=native" in power and "-march=native" not in power
    assert compiled.native_flags("x86_64")[:3] == ["-O3", "-march=native", "-mprefer-vector-width=256"]
    assert not any("vector-width" in f for f in compiled.native_flags("aarch64"))


@pytest.mark.parametrize("cpuinfo, machine", [("", platform.machine()), ("isa\t\t: rv64imafdcv\n", "riscv64")],
                         ids=["no-cpuinfo", "unknown-architecture"])
def test_unidentified_cpu_builds_without_march_native(cpuinfo, machine, tmp_path, cache, monkeypatch, caplog):
    """Where the CPU cannot be identified, -march=native is not trusted: the kernel is built for the
    compiler's default target, under a key of its own, and the process says so once."""
    require_c_compiler()
    commands = compile_commands(monkeypatch)
    on_cpu(monkeypatch, cpuinfo, machine)
    monkeypatch.setattr(compiled, "_portable_logged", False, raising=False)
    kernel = tiny_kernel(tmp_path)
    with caplog.at_level(logging.WARNING, logger=compiled.__name__):
        lib = kernel.library()
        assert lib is not None, kernel.build
        assert len(commands) == 1 and not any(f.endswith("=native") for f in commands[0]), commands
        assert lib.tiny_add(2, 3) == 5
        assert kernel.build["flags"] == compiled.PORTABLE_FLAGS
        tiny_kernel(tmp_path).library()  # a second kernel: loaded from the cache, not logged again
    assert sum("not identified" in r.getMessage() for r in caplog.records) == 1, caplog.records
    assert kernel.cache_path((compiled.native_flags(machine), "")) != Path(kernel.build["path"])  # keyed as such


def test_cached_kernel_loads_without_a_compiler(tmp_path, cache, monkeypatch):
    """A node without a compiler, sharing the cache folder with one of its type that built the
    kernel: it loads that kernel and records which compiler built it."""
    require_c_compiler()
    built = tiny_kernel(tmp_path)
    assert built.library() is not None, built.build
    shared = tmp_path / "shared-home"  # a fresh path: not the library this process already holds
    shutil.copytree(cache, shared / "liquidbench")
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared))
    no_compiler(monkeypatch, tmp_path)
    commands = compile_commands(monkeypatch)
    kernel = tiny_kernel(tmp_path)
    lib = kernel.library()
    assert lib is not None and kernel.build["error"] is None, kernel.build
    assert lib.tiny_add(40, 2) == 42 and not commands
    assert kernel.build["path"].startswith(str(shared))
    assert kernel.build["compiler"] == built.build["compiler"] and kernel.build["compiler"]


def _tiny_library(tmp_path) -> bytes:
    """The bytes of the tiny kernel built outside the cache (never loaded by this process)."""
    source = tmp_path / "outside.c"
    source.write_text(TINY)
    out = tmp_path / "outside.so"
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    subprocess.run([compiler, "-O1", "-fPIC", "-shared", "-o", str(out), str(source)], check=True, capture_output=True)
    return out.read_bytes()


@pytest.mark.parametrize("damage", ["empty", "truncated", "not-a-library"])
def test_broken_cached_kernel_is_rebuilt(damage, tmp_path, cache, monkeypatch):
    """A cached kernel that cannot be loaded (0 bytes, cut short by a copy, something else) is
    replaced by a fresh build, once, and that one loads."""
    require_c_compiler()
    kernel = tiny_kernel(tmp_path)
    path = kernel.cache_path()
    path.parent.mkdir(parents=True)
    good = _tiny_library(tmp_path)
    path.write_bytes({"empty": b"", "truncated": good[: len(good) // 3], "not-a-library": b"int x;\n" * 10}[damage])
    commands = compile_commands(monkeypatch)
    lib = kernel.library()
    assert lib is not None, kernel.build
    assert lib.tiny_add(2, 2) == 4 and len(commands) == 1
    assert path.stat().st_size > 1000 and kernel.build["path"] == str(path)
    assert sorted(p.name for p in cache.iterdir()) == sorted([path.name, path.with_suffix(".json").name])


def test_broken_cached_kernel_without_a_compiler_says_what_to_do(tmp_path, cache, monkeypatch):
    """A broken cached kernel on a node without a compiler: the torch path, and the reason names the
    file and what to install."""
    kernel = tiny_kernel(tmp_path)
    path = kernel.cache_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    no_compiler(monkeypatch, tmp_path)
    assert kernel.library() is None
    error = kernel.build["error"]
    assert "cannot be loaded" in error and str(path) in error and "apt-get install gcc" in error, error
    assert not kernel.usable(torch.zeros(2)) and kernel.status() == f"torch: {error}"


def test_cached_kernel_without_a_function_falls_back(tmp_path, cache, monkeypatch):
    """A cached library lacking a function the kernel declares: the torch path with the reason, not
    an AttributeError in the middle of a model's construction."""
    require_c_compiler()
    assert tiny_kernel(tmp_path).library() is not None
    kernel = tiny_kernel(tmp_path, {"tiny_add": (2, 0), "tiny_missing": (0, 1)})
    assert kernel.library() is None
    assert "tiny_missing" in kernel.build["error"] and "delete it" in kernel.build["error"], kernel.build


def test_every_cut_of_a_library_is_caught_before_loading(tmp_path):
    """dlopen maps a truncated library and the process dies of SIGBUS on the missing part, so each
    shorter copy of a whole library must be refused before it is loaded."""
    require_c_compiler()
    good = _tiny_library(tmp_path)
    assert compiled._cut_short(good) is None
    assert all(compiled._cut_short(good[:n]) for n in range(4, len(good)))
