"""A fast LTC with the interface, parameters, initialisation and results of ncps's ``LTC``.

:class:`LTC` is ncps's class with its own ``forward`` (also ``liquidbench.fast.LTC``), so that
its constructor and state dict are ncps's, key for key, and a model built from the same seed
starts from the same weights. The computation is this module's own:

* the sensory synapses depend only on the inputs, so they are computed for every step at once,
  outside the recurrent loop: on the CPU in one call of the compiled C each way
  (:class:`_LtcSensory`), elsewhere with ordinary autograd;
* without mixed memory and on the compiled C path, the whole sequence runs in one
  ``autograd.Function`` (:class:`_LtcSequence`), one C call each way;
* otherwise each step's ``ode_unfolds`` semi-implicit Euler unfolds run in one ``autograd.Function``
  (:class:`_LtcStep`) whose backward is derived by hand: one kernel call each way where
  :func:`.paths.choose` finds one (compiled C on the CPU, :mod:`.ltc_kernel`; Triton on CUDA,
  :mod:`.ltc_triton`), else torch, with the per-synapse sigmoid over ``(units, batch, units)``
  laid out post-synaptic neuron first, so that the weighted sums over pre-synaptic neurons
  (numerator and denominator together) are one batched matrix product, and so are their
  gradients.

The unfold's equation, the per-step constants ``n_const``, ``d_const``, ``cm_t`` and the backward's
derivation: docs/fast-cells.md#ltc-equations-and-backward. Operation counts of a training step
(flops, transcendentals; forward, backward, weight gradients): :mod:`.cost`.
"""

from __future__ import annotations

import torch
from ncps import torch as ncps_torch
from torch import nn
from torch.nn import functional as F

from . import interface, ltc_kernel, ltc_triton, paths

_sigmoid_backward = torch.ops.aten.sigmoid_backward

# When the compiled LTC step keeps its synapse activations for the backward (steps x unfolds x batch
# x units^2 floats a sequence) instead of computing them again: for fewer than STORE_BELOW_UNITS
# units, up to STORE_LIMIT_BYTES a sequence. With the kernel's 16-wide vectors (AVX-512) computing
# them again was faster at every shape of 16 units and more (one thread, interleaved, ms a step,
# again / stored: 64x32x7x32 13.7 / 15.2, 24x8x128x64 4.5 / 6.0, 128x16x16x128 117 / 450, 64x32x7x16
# 5.59 / 5.52) and storing at 8 units (64x64x2x8 4.5 / 3.7, 16x64x4x8 1.34 / 1.23): a row of 8
# fills half a vector; docs/measurements-history.md, issue 34. What each path keeps:
# docs/fast-cells.md#storing-or-recomputing-activations.
STORE_BELOW_UNITS = 16
STORE_LIMIT_BYTES = 64 * 2**20


class _LtcStep(torch.autograd.Function):
    """One LTC step (all unfolds). Tensors: ``v0, n_const, d_const, cm_t`` are ``(B, U)`` (``cm_t``
    may broadcast), ``sig_t, mu_t, we_t, w_t`` are ``(J, I)``: sigma, mu, ``w erev`` and ``w``
    transposed (post-synaptic neuron first).

    Forward keeps each unfold's state and denominator (``(B, U)`` each). The torch version's backward
    recomputes each unfold's synapse activations ``s`` just before it needs them, so that the
    ``(J, B, I)`` tensors it works on stay in cache rather than being stored for the whole sequence;
    the compiled step stores them where ``store`` says so (the caller decides from the sequence's
    total) and recomputes them otherwise."""

    @staticmethod
    def forward(ctx, v0, n_const, d_const, cm_t, sig_t, mu_t, we_t, w_t, unfolds: int, store: bool):
        keep = any(ctx.needs_input_grad)
        ctx.cm_shape = cm_t.shape
        tensors = (v0, n_const, d_const, sig_t, mu_t, we_t, w_t)
        # the step's kernel (compiled C on the CPU, Triton on CUDA) or None for the torch version below
        contiguous = all(t.is_contiguous() for t in tensors)
        path = paths.choose("ltc", *tensors, unsupported=None if contiguous else "non-contiguous tensors")
        ctx.kernel = {paths.COMPILED: ltc_kernel, paths.TRITON: ltc_triton}.get(path)
        if ctx.kernel is not None:
            cm_t = cm_t.expand_as(v0).contiguous()
            neg_sm = (sig_t * mu_t).neg_()
            vs, dens, ss = ctx.kernel.forward(v0, n_const, d_const + cm_t, cm_t, sig_t, neg_sm, we_t, w_t, unfolds,
                                              store and keep)
            if keep:
                ctx.save_for_backward(cm_t, sig_t, mu_t, we_t, w_t)
                ctx.inner = (vs, dens, ss, neg_sm)
            return vs[-1]
        m = torch.stack((we_t, w_t), dim=2)  # (J, I, 2)
        neg_sm = (sig_t * mu_t).neg_().unsqueeze(1)  # (J, 1, I)
        sig3 = sig_t.unsqueeze(1)
        d_total = d_const + cm_t
        v = v0
        vs, dens = [v0], []
        for _ in range(unfolds):
            s = torch.addcmul(neg_sm, sig3, v.unsqueeze(0)).sigmoid_()  # (J, B, I)
            nd = torch.bmm(s, m)  # (J, B, 2)
            num = torch.addcmul(n_const, cm_t, v).add_(nd[:, :, 0].t())
            den = d_total + nd[:, :, 1].t()
            v = num.div_(den)
            vs.append(v)
            dens.append(den)
        if keep:
            ctx.save_for_backward(cm_t, sig_t, mu_t, we_t, w_t)
            ctx.inner = (vs, dens)
        return v

    @staticmethod
    def backward(ctx, grad):
        """The vector-Jacobian products of the unfolds (dnum, dden, dz; sums over the batch and the
        unfolds): docs/fast-cells.md#ltc-unfolds, the same for the kernels (compiled C, Triton).
        The torch version carries sig dz instead of dz (one multiply less per unfold) and divides by
        sigma once at the end; a synapse whose sigma is exactly zero is scaled by 1 instead and masked
        out of dL/dv, so that no value is read to the host to choose a path (a device sync on a GPU)."""
        cm_t, sig_t, mu_t, we_t, w_t = ctx.saved_tensors
        inner = ctx.inner
        del ctx.inner
        if ctx.kernel is not None:
            vs, dens, ss, neg_sm = inner
            g, g_n, g_d, g_cm, g_sig, g_mu, g_we, g_w = ctx.kernel.backward(grad, vs, dens, ss, cm_t, sig_t, neg_sm,
                                                                           mu_t, we_t, w_t)
            if ctx.needs_input_grad[3] and g_cm.shape != ctx.cm_shape:
                g_cm = g_cm.sum_to_size(ctx.cm_shape)
            return g, g_n, g_d, g_cm, g_sig, g_mu, g_we, g_w, None, None
        vs, dens = inner
        m = torch.stack((we_t, w_t), dim=2)
        sig3 = sig_t.unsqueeze(1)
        neg_sm = (sig_t * mu_t).neg_().unsqueeze(1)
        # dz/dv = sigma is folded into the matrix that maps (dN, dD) to ds, so that the gradient
        # reaches z already times sigma and dL/dz = that / sigma. A synapse whose sigma is exactly
        # zero is scaled by 1 instead and masked out of dL/dv; where sigma is nowhere zero (always in
        # practice) the masks are all ones and the results are bit for bit those of scaling by sigma.
        nz = (sig_t != 0).to(sig_t.dtype)  # (J, I)
        sig_safe = torch.where(sig_t != 0, sig_t, torch.ones_like(sig_t))
        m_sig = m.transpose(1, 2) * sig_safe.unsqueeze(1)  # (J, 2, I)
        nz3 = nz.unsqueeze(1)
        g = grad
        g_n = torch.zeros_like(grad)
        g_d = torch.zeros_like(grad)
        g_cm = torch.zeros_like(grad)
        g_m = torch.zeros_like(m)
        acc = torch.zeros_like(sig_t)  # sum of sigma dL/dz over batch and unfolds
        acc_v = torch.zeros(sig3.shape[0], *grad.shape, dtype=grad.dtype, device=grad.device)  # ... times v
        for k in range(len(dens) - 1, -1, -1):
            v_in, v_out, den = vs[k], vs[k + 1], dens[k]
            s = torch.addcmul(neg_sm, sig3, v_in.unsqueeze(0)).sigmoid_()
            dnum = g / den
            dden = -dnum * v_out
            g_n += dnum
            g_d += dden
            g_cm += torch.addcmul(dden, dnum, v_in)
            dnd = torch.stack((dnum.t(), dden.t()), dim=2)  # (J, B, 2)
            g_m.baddbmm_(s.transpose(1, 2), dnd)
            dz = _sigmoid_backward(torch.bmm(dnd, m_sig), s)  # (J, B, I): dL/dz times sigma (or 1)
            acc += dz.sum(1)
            acc_v.addcmul_(dz, v_in.unsqueeze(0))
            g = (dz * nz3).sum(0).addcmul_(cm_t, dnum)
        # z = sigma (v - mu): dL/dsigma = sum dL/dz (v - mu), dL/dmu = -sigma sum dL/dz
        g_sig = (acc_v.sum(1) - mu_t * acc) / sig_safe
        g_mu = -acc * nz
        if cm_t.shape != grad.shape:
            g_cm = g_cm.sum_to_size(cm_t.shape)
        return g, g_n, g_d, g_cm, g_sig, g_mu, g_m[..., 0], g_m[..., 1], None, None


class _LtcSequence(torch.autograd.Function):
    """A whole sequence of LTC steps without mixed memory in one call of the compiled C each way
    (:func:`.ltc_kernel.seq_forward`, :func:`.ltc_kernel.seq_backward`): the same unfolds and
    derivation as :class:`_LtcStep` (docs/fast-cells.md#ltc-equations-and-backward), with no Python
    work per step.
    ``v0`` (B, U); ``n_const``, ``d_const`` (T, B, U); ``cm_t`` (T, B, U) or (U,) (steps of 1, the same
    for all); ``sig_t, mu_t, we_t, w_t`` (J, I) as :class:`_LtcStep`. Returns every step's state
    (T, B, U)."""

    @staticmethod
    def forward(ctx, v0, n_const, d_const, cm_t, sig_t, mu_t, we_t, w_t, unfolds: int, store: bool):
        ctx.cm_shape = cm_t.shape
        cm_all = cm_t.expand_as(n_const).contiguous()
        neg_sm = (sig_t * mu_t).neg_()
        vs, dens, ss = ltc_kernel.seq_forward(v0.contiguous(), n_const.contiguous(), (d_const + cm_all), cm_all,
                                              sig_t, neg_sm, we_t, w_t, unfolds, store)
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(cm_all, sig_t, mu_t, we_t, w_t, neg_sm, vs, dens, *(ss or ()))
        return vs[:, -1]

    @staticmethod
    def backward(ctx, grad):
        cm_all, sig_t, mu_t, we_t, w_t, neg_sm, vs, dens, *ss = ctx.saved_tensors
        g, g_n, g_d, g_cm, g_sig, g_mu, g_we, g_w = ltc_kernel.seq_backward(
            grad, vs, dens, ss or None, cm_all, sig_t, neg_sm, mu_t, we_t, w_t)
        if ctx.needs_input_grad[3] and g_cm.shape != ctx.cm_shape:
            g_cm = g_cm.sum_to_size(ctx.cm_shape)
        return g, g_n, g_d, g_cm, g_sig, g_mu, g_we, g_w, None, None


class _LtcSensory(torch.autograd.Function):
    """The sensory synapses of every batch row and step in one call of the compiled C each way
    (:func:`.ltc_kernel.sensory_forward`; the backward: docs/fast-cells.md#ltc-sensory-synapses):
    ``xs`` (B, T, S) the mapped inputs; ``sig``, ``mu``, ``we`` (w erev), ``w`` (S, U) in ncps's
    layout. Returns the sums (B, T, U) ``sum_s we s`` and ``sum_s w s`` with
    ``s = sigmoid(sig (x - mu))``; nothing of size (B, T, S, U) is kept (the backward computes the
    activations again)."""

    @staticmethod
    def forward(ctx, xs, sig, mu, we, w):
        bsz, steps, n_in = xs.shape
        x2 = xs.reshape(bsz * steps, n_in).contiguous()
        sig, mu, we, w = (t.contiguous() for t in (sig, mu, we, w))
        neg_sm = (sig * mu).neg_()
        nc, dc = ltc_kernel.sensory_forward(x2, sig, neg_sm, we, w)
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(x2, sig, mu, neg_sm, we, w)
        return nc.view(bsz, steps, -1), dc.view(bsz, steps, -1)

    @staticmethod
    def backward(ctx, g_nc, g_dc):
        x2, sig, mu, neg_sm, we, w = ctx.saved_tensors
        units = sig.shape[1]
        g_x, g_sig, g_mu, g_we, g_w = ltc_kernel.sensory_backward(
            x2, sig, neg_sm, mu, we, w, g_nc.reshape(-1, units), g_dc.reshape(-1, units), ctx.needs_input_grad[0])
        return None if g_x is None else g_x.view(g_nc.shape[0], g_nc.shape[1], -1), g_sig, g_mu, g_we, g_w


def _lstm_step(lstm: nn.Module, pre: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
    """ncps's ``LSTMCell`` with its input map already applied (``pre``)."""
    z = pre + F.linear(h, lstm.recurrent_map.weight)
    i, ig, fg, og = z.chunk(4, 1)
    c = c * torch.sigmoid(fg + 1.0) + torch.tanh(i) * torch.sigmoid(ig)
    return torch.tanh(c) * torch.sigmoid(og), c


class FastLtcCore(nn.Module):
    """Runs a fast :class:`LTC` over a batch-first sequence (the study's ``impl: fast``); every
    step's output."""

    def __init__(self, rnn: LTC):
        super().__init__()
        if not isinstance(rnn, LTC):
            raise TypeError(f"FastLtcCore runs liquidbench's fast LTC, got {type(rnn).__name__}")
        self.rnn = rnn

    def forward(self, x: torch.Tensor, elapsed: torch.Tensor | None) -> torch.Tensor:
        return self.rnn(x, timespans=elapsed)[0]

    def run(self, x: torch.Tensor, elapsed: torch.Tensor | None, state=None):
        """(every step's output, the last state) from ``state`` (ncps's hx)."""
        return self.rnn(x, hx=state, timespans=elapsed)


class LTC(ncps_torch.LTC):
    """ncps's ``LTC`` (1.0.1: the same constructor, defaults, parameters, state dict and initial
    weights from the same seed) computed by this module's fast step (:class:`_LtcStep`, on the CPU
    the compiled C of :mod:`.ltc_kernel`); ``forward(input, hx=None, timespans=None)`` returns
    ``(output, hx)`` as ncps's does. Every ncps option is covered: wirings, mixed memory, each input
    and output mapping, ``ode_unfolds``, ``epsilon`` and ``implicit_param_constraints``. Elapsed
    times: see :mod:`.interface`."""

    def __init__(self, input_size, units, return_sequences=True, batch_first=True, mixed_memory=False,
                 input_mapping="affine", output_mapping="affine", ode_unfolds=6, epsilon=1e-8,
                 implicit_param_constraints=True):
        super().__init__(input_size, units, return_sequences=return_sequences, batch_first=batch_first,
                         mixed_memory=mixed_memory, input_mapping=input_mapping, output_mapping=output_mapping,
                         ode_unfolds=ode_unfolds, epsilon=epsilon,
                         implicit_param_constraints=implicit_param_constraints)
        # build (or load) the compiled step now, at model construction, so that its one-time
        # compilation is part of the job's set-up and never of a training epoch's time
        ltc_kernel.library()

    def forward(self, input, hx=None, timespans=None):
        x, h0, c0, elapsed, batched = interface.prepare(self, input, hx, timespans)
        states, c = self.sequence(x, elapsed, h0, c0)
        cell = self.rnn_cell
        h = states[:, -1]
        if not self.return_sequences:
            states = states[:, -1:]
        out = states[..., : cell.motor_size]
        if cell._output_mapping in ("affine", "linear"):
            out = out * cell.output_w
        if cell._output_mapping == "affine":
            out = out + cell.output_b
        return interface.finish(self, out, h, c, batched)

    def sequence(self, x: torch.Tensor, elapsed: torch.Tensor | None, h0, c0):
        """The LTC over batch-first ``x`` (B, T, F), elapsed times (B, T) or None, from state ``h0``
        (and cell ``c0``; None: zeros). Returns every step's whole state (B, T, U) and the mixed
        memory's last cell (or None)."""
        rnn = self
        cell = rnn.rnn_cell
        pos = cell.make_positive_fn
        bsz, steps, _ = x.shape
        unfolds = cell._ode_unfolds
        # sensory synapses for every step at once: (B, T, S, U) -> sums over S; on the CPU in the
        # compiled C (a part of the model, not its path: asked for on the CPU only, so that a CUDA
        # LTC's env.fast_paths names the recurrence's path alone)
        xs = cell._map_inputs(x)
        sens_w = pos(cell.sensory_w) * cell.sensory_sparsity_mask
        sens_we = sens_w * cell.sensory_erev
        sensory = (xs, cell.sensory_sigma, cell.sensory_mu, sens_we, sens_w)
        if x.device.type == "cpu" and paths.choose("ltc", *sensory, triton=False) == paths.COMPILED:
            n_const, d_const = _LtcSensory.apply(*sensory)
        else:
            sens = torch.sigmoid((xs.unsqueeze(-1) - cell.sensory_mu) * cell.sensory_sigma)
            n_const = (sens * sens_we).sum(-2)
            d_const = (sens * sens_w).sum(-2)
        gleak = pos(cell.gleak)
        # time-major and contiguous, so that each step's slice is contiguous
        n_const = (n_const + gleak * cell.vleak).transpose(0, 1).contiguous()
        d_const = (d_const + (gleak + cell._epsilon)).transpose(0, 1).contiguous()
        cm = pos(cell.cm)
        cm_all = cm * float(unfolds) if elapsed is None else cm / (elapsed.t().unsqueeze(-1) / unfolds)  # (T, B, U)
        w = pos(cell.w) * cell.sparsity_mask
        we_t = (w * cell.erev).t().contiguous()
        w_t = w.t().contiguous()
        sig_t = cell.sigma.t().contiguous()
        mu_t = cell.mu.t().contiguous()
        h = x.new_zeros(bsz, rnn.state_size) if h0 is None else h0
        # the compiled step keeps the synapse activations for the backward for few units, while the
        # sequence's total fits STORE_LIMIT_BYTES, else computes them again (STORE_BELOW_UNITS)
        store = (rnn.state_size < STORE_BELOW_UNITS
                 and steps * unfolds * bsz * rnn.state_size**2 * x.element_size() <= STORE_LIMIT_BYTES)
        if not rnn.use_mixed and paths.choose("ltc", h, n_const, d_const, cm_all, sig_t, mu_t, we_t,
                                              w_t) == paths.COMPILED:
            # the whole sequence in one call each way
            return _LtcSequence.apply(h, n_const, d_const, cm_all, sig_t, mu_t, we_t, w_t, unfolds,
                                      store).transpose(0, 1), None
        cm_ts = [cm_all.expand(bsz, -1)] * steps if elapsed is None else cm_all.unbind(0)
        c = None
        if rnn.use_mixed:
            c = x.new_zeros(bsz, rnn.state_size) if c0 is None else c0
            lstm_pre = rnn.lstm.input_map(x).unbind(1)
        n_steps, d_steps = n_const.unbind(0), d_const.unbind(0)
        states = []
        for t in range(steps):
            if rnn.use_mixed:
                h, c = _lstm_step(rnn.lstm, lstm_pre[t], h, c)
            h = _LtcStep.apply(h, n_steps[t], d_steps[t], cm_ts[t], sig_t, mu_t, we_t, w_t, unfolds, store)
            states.append(h)
        return torch.stack(states, dim=1), c
