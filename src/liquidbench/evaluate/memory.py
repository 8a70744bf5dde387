"""What a model costs in memory besides its run's RSS: parameters, and the activation memory a
training step keeps for the backward pass, measured with saved-tensor hooks.

One forward pass in training mode on a batch of the training split records every tensor autograd
saves for the backward; tensors are counted once per storage, and the storages of the parameters
(weights saved by matmuls) and of the batch itself (inputs, targets, elapsed times) are left out: what
remains is what the model computed and keeps. Divided by batch x sequence length it is the activation memory per
sequence step. Memory an implementation keeps outside autograd's saved tensors (a compiled kernel's
own buffers) is not seen.
"""

from __future__ import annotations

import torch

from ..train.tasks import loss_fn


def activation_bytes(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None,
                     task: str) -> int:
    """Bytes of the distinct storages autograd saves for one forward of (x, y, t), less those of the
    parameters and of the batch."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    params |= {v.untyped_storage().data_ptr() for v in (x, y, t) if v is not None}
    seen: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in params:
            seen[ptr] = max(seen.get(ptr, 0), storage.nbytes())
        return tensor

    was_training = model.training
    model.train()
    try:
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t_: t_):
            loss = loss_fn(task, model(x, t), y)
        del loss
    finally:
        model.train(was_training)
    return int(sum(seen.values()))


def measure(model, ctx) -> dict:
    batch = min(ctx.train_batch, len(ctx.train_x))
    x, y = ctx.train_x[:batch], ctx.train_y[:batch]
    t = None if ctx.train_t is None else ctx.train_t[:batch]
    total = activation_bytes(model, x, y, t, ctx.task)
    return {"n_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "activation_bytes": total, "activation_batch": batch, "activation_seq_len": int(x.shape[1]),
            "activation_bytes_per_step": total / (batch * x.shape[1])}
