"""No value is read back to the host inside a training epoch, for every model type and implementation.

On a GPU, reading a tensor's value on the host (``.item()``, ``bool(t)``, ``nonzero``, ...) makes the
host wait for every kernel queued before it, so each step would wait for the GPU. This is checked
on the CPU, operator by operator: the steady-state epochs of a real training run (the first epoch,
which builds the optimiser's state, is warm-up) run under a ``TorchDispatchMode`` that records the
operators that read values (the C++ side) and a ``TorchFunctionMode`` that records the Python
methods that do (``item``, ``tolist``, ``__bool__``, ...) and the functions that make a tensor from
host data (``torch.tensor``, ...: on a GPU a blocking copy to the device in every step).

Allowed: reads of Adam's step counters, which torch keeps on the CPU even in a CUDA run (not
``capturable`` or ``fused``), so reading them never waits for the GPU.
"""

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from liquidbench.data.sine import prepare
from liquidbench.models import cfc_kernel, ltc_kernel
from liquidbench.train import loop

# operators whose result depends on a value that must first reach the host
HOST_READ_OPS = {"_local_scalar_dense", "is_nonzero", "nonzero", "equal", "item", "masked_select", "unique",
                 "_unique", "_unique2", "unique_consecutive", "unique_dim", "allclose", "repeat_interleave"}
HOST_READ_METHODS = {"item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__", "__complex__"}
FROM_HOST_FUNCTIONS = {"tensor", "as_tensor", "from_numpy", "asarray"}

LTC = {"type": "ltc", "units": 6, "ode_unfolds": 2}
CFC = {"type": "cfc", "units": 6, "backbone_units": 8}
CASES = {
    "ltc-fast-compiled": ({**LTC, "impl": "fast"}, True),
    "ltc-fast-torch": ({**LTC, "impl": "fast"}, False),
    "ltc-fast-mixed-torch": ({**LTC, "impl": "fast", "mixed_memory": True}, False),
    "ltc-ncps": ({**LTC, "impl": "ncps"}, True),
    "cfc-fast-compiled": ({**CFC, "impl": "fast"}, True),
    "cfc-fast-torch": ({**CFC, "impl": "fast"}, False),
    "cfc-fast-pure-mixed-torch": ({**CFC, "impl": "fast", "mode": "pure", "mixed_memory": True}, False),
    "cfc-fast-autoncp": ({"type": "cfc", "units": 8, "wiring": "autoncp", "motor_neurons": 2, "impl": "fast"}, True),
    "cfc-ncps": ({**CFC, "impl": "ncps"}, True),
    "lstm": ({"type": "lstm", "hidden_size": 6}, True),
    "gru": ({"type": "gru", "hidden_size": 6}, True),
}


class HostReads(TorchDispatchMode):
    """Records operators that read a tensor's value to the host, except on ``allowed`` storages."""

    def __init__(self, allowed: set[int]):
        super().__init__()
        self.allowed, self.seen = allowed, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._overloadpacket.__name__
        if name in HOST_READ_OPS:
            first = args[0] if args else None
            if not (isinstance(first, torch.Tensor) and first.data_ptr() in self.allowed):
                self.seen.append(str(func))
        return func(*args, **(kwargs or {}))


class HostReadMethods(TorchFunctionMode):
    """Records the Python tensor methods that read values to the host (except on ``allowed``
    storages) and the functions that make tensors from host data."""

    def __init__(self, allowed: set[int]):
        super().__init__()
        self.allowed, self.seen = allowed, []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in HOST_READ_METHODS and args and isinstance(args[0], torch.Tensor):
            if args[0].data_ptr() not in self.allowed:
                self.seen.append(f"Tensor.{name}")
        elif name in FROM_HOST_FUNCTIONS and getattr(func, "__module__", "") == "torch":
            self.seen.append(f"torch.{name}")
        return func(*args, **(kwargs or {}))


@pytest.fixture(scope="module")
def sine_dirs(tmp_path_factory):
    dirs = {}
    for irregular in (False, True):
        d = tmp_path_factory.mktemp(f"sine_irregular_{irregular}")
        prepare({"n_sequences": 40, "seq_len": 6, "seed": 0, "irregular": irregular}, d)
        dirs[irregular] = d
    return dirs


def watched_training(monkeypatch, data_dir, out_dir, model_spec, hardware_spec=None):
    """Train 3 epochs; epochs 2 and 3 run under both modes. Returns (operators, methods) seen and
    the number of steps watched."""
    seen_ops, seen_methods, watched = [], [], []
    real = loop.run_epoch

    def run_epoch(learner, data, batches, state, controls, place):
        if not state.history:  # epoch 1: warm-up (the optimiser's state is created in its first step)
            return real(learner, data, batches, state, controls, place)
        allowed = {s["step"].data_ptr() for s in learner.opt.state.values() if "step" in s}
        assert allowed, "the optimiser has no step counters after the warm-up epoch"
        before = state.steps_done
        with HostReadMethods(allowed) as methods, HostReads(allowed) as ops:
            result = real(learner, data, batches, state, controls, place)
        seen_ops.extend(ops.seen)
        seen_methods.extend(methods.seen)
        watched.append(state.steps_done - before)
        return result

    monkeypatch.setattr(loop, "run_epoch", run_epoch)
    hardware_spec = hardware_spec or {"device": "cpu", "threads": 1}
    spec = loop.RunSpec(dataset="sine", model=model_spec["type"], hardware=hardware_spec["device"], seed=0,
                        data_dir=data_dir, out_dir=out_dir, model_spec=model_spec,
                        train_params={"epochs": 3, "batch_size": 8}, hardware_spec=hardware_spec)
    metrics = loop.train(spec)
    return seen_ops, seen_methods, sum(watched), metrics


@pytest.mark.parametrize("irregular", [False, True], ids=["regular", "irregular"])
@pytest.mark.parametrize("case", list(CASES))
def test_no_host_read_inside_an_epoch(case, irregular, sine_dirs, tmp_path, monkeypatch):
    model_spec, compiled = CASES[case]
    if not compiled:  # the torch versions of the fast models: what runs on a GPU
        for kernel in (ltc_kernel, cfc_kernel):
            monkeypatch.setattr(kernel, "usable", lambda *tensors, **why: False)
    ops, methods, steps, metrics = watched_training(monkeypatch, sine_dirs[irregular], tmp_path, model_spec)
    assert steps == 2 * 4  # 28 training sequences in batches of 8, epochs 2 and 3
    assert ops == [] and methods == [], f"host reads inside an epoch: {sorted(set(ops + methods))}"
    assert metrics["status"] == "ok" and metrics["epochs_run"] == 3


def test_one_process_ddp_reads_nothing_inside_an_epoch(sine_dirs, tmp_path, monkeypatch):
    """The DDP-wrapped model (gloo, one process, as ddp-1gpu runs it under NCCL)."""
    hw = {"device": "cpu", "threads": 1, "backend": "gloo"}
    ops, methods, steps, metrics = watched_training(monkeypatch, sine_dirs[False], tmp_path, {**CFC, "impl": "fast"}, hw)
    assert steps == 8 and metrics["ddp"] is True
    assert ops == [] and methods == [], f"host reads inside an epoch: {sorted(set(ops + methods))}"


def test_the_hooks_see_a_host_read(sine_dirs, tmp_path, monkeypatch):
    """The check is not blind: a loss read with ``.item()`` in the step (what the loop must not do)
    is seen by both hooks."""
    real_loss = loop.loss_fn

    def loss_read_on_the_host(task, out, y):
        loss = real_loss(task, out, y)
        loss.item()
        return loss

    monkeypatch.setattr(loop, "loss_fn", loss_read_on_the_host)
    ops, methods, _, _ = watched_training(monkeypatch, sine_dirs[False], tmp_path, {"type": "gru", "hidden_size": 6})
    assert "aten._local_scalar_dense.default" in ops and "Tensor.item" in methods


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (runs on GPU machines, e.g. in make gpu-check)")
def test_no_host_read_inside_a_cuda_epoch(sine_dirs, tmp_path, monkeypatch):
    """On a GPU a host read is a real synchronisation; the fast models take their torch versions."""
    for case in ("ltc-fast-compiled", "cfc-fast-compiled", "cfc-ncps", "lstm"):
        model_spec, _ = CASES[case]
        ops, methods, steps, metrics = watched_training(monkeypatch, sine_dirs[True], tmp_path / case, model_spec,
                                                        {"device": "cuda", "threads": 1})
        assert steps == 8 and metrics["device"] == "cuda", case
        assert ops == [] and methods == [], f"{case}: host reads inside an epoch: {sorted(set(ops + methods))}"
