"""Data-parallel training on torch.distributed: what the trainer and ``edgepose train`` need for DDP.

``torchrun --nproc_per_node N -m edgepose.cli train ...`` starts N processes with ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` set (multi-node: torchrun's
``--nnodes``/``--node_rank``/``--rdzv_*`` flags set the same variables). :func:`init_from_env` opens the
process group from them: NCCL for CUDA (one GPU per process, ``cuda:LOCAL_RANK``), gloo on CPU.

The batch semantics are global: ``--batch-size B`` is split into ``B / N`` samples per process, and
every optimizer step consumes the same ``B`` samples, in the same order, as a one-process run with
batch ``B`` (:func:`rank_indices`). Gradients are averaged by DDP, BatchNorm statistics are taken over
the global batch (SyncBatchNorm on CUDA; :class:`GlooSyncBatchNorm` on CPU, where torch's own only
runs on GPUs), so the loss curve is the one-process curve up to float summation order.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current() -> DistInfo:
    """This process's place in the initialised process group (one process when there is none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def requested_world_size() -> int:
    """WORLD_SIZE as torchrun (or a manual launch) set it; 1 when launched plainly."""
    try:
        return max(int(os.environ.get("WORLD_SIZE", "1")), 1)
    except ValueError:
        return 1


def init_from_env(device: str = "auto") -> DistInfo:
    """Open the process group from torchrun's environment when WORLD_SIZE > 1 (a no-op otherwise).

    ``device`` cuda/auto-with-a-GPU: NCCL and ``torch.cuda.set_device(LOCAL_RANK)``; cpu: gloo. The
    collective timeout is ``EDGEPOSE_DIST_TIMEOUT_MIN`` minutes (default 60: rank 0 validates alone
    at each epoch end while the others wait).
    """
    if requested_world_size() <= 1:
        return DistInfo()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    if dist.is_initialized():
        return current()
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise RuntimeError(f"WORLD_SIZE is set but {', '.join(missing)} is not: launch with torchrun")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        if not torch.cuda.is_available():
            raise RuntimeError(
                "device 'cuda' was asked for but torch sees no CUDA GPU; use --device cpu or auto"
            )
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK {local_rank} but this node has {torch.cuda.device_count()} GPU(s); "
                "use --nproc_per_node <= the GPU count"
            )
        torch.cuda.set_device(local_rank)
    timeout = datetime.timedelta(minutes=float(os.environ.get("EDGEPOSE_DIST_TIMEOUT_MIN", "60")))
    dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=timeout)
    return current()


def shutdown(settle_s: float = 30.0) -> None:
    """Close the process group once every rank has reached here.

    A rank that tears gloo down while a peer is still inside a collective (an interrupted run: ranks
    leave at different moments) can abort the peer's process with "terminate called without an
    active exception"; a monitored barrier, bounded by ``settle_s`` and tolerant of a dead peer, lines
    the ranks up first. NCCL has no monitored barrier and needs none (its destroy does not abort).
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    if dist.get_backend() == "gloo" and dist.get_world_size() > 1:
        try:
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=settle_s), wait_all_ranks=True)
        except RuntimeError:
            pass  # a peer died or hung: nothing left to wait for, close our side anyway
    dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def mean_across_ranks(values: torch.Tensor) -> torch.Tensor:
    """The elementwise mean of ``values`` over the ranks (itself with one process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    out = values.clone()
    dist.all_reduce(out)
    return out / dist.get_world_size()


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` with one process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def rank_indices(
    order: torch.Tensor, batch_size: int, rank: int, world_size: int, start_batch: int = 0
) -> list[int]:
    """This rank's share of an epoch's sample order: global batch ``i`` is ``order[i*B:(i+1)*B]``
    (as with one process) and rank ``r`` takes its ``r``-th contiguous ``B / world_size`` slice;
    batches before ``start_batch`` (already trained on before a resume) are left out."""
    if batch_size % world_size:
        raise ValueError(
            f"the global batch {batch_size} does not split evenly over {world_size} processes; "
            f"pass a --batch-size that is a multiple of {world_size}"
        )
    local = batch_size // world_size
    steps = len(order) // batch_size
    shares = order[: steps * batch_size].view(steps, world_size, local)[start_batch:, rank]
    return shares.reshape(-1).tolist()


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose gradient is the sum over ranks of the gradients (each rank's loss
    depends on every rank's contribution)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone()
        dist.all_reduce(out)
        return out


class GlooSyncBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics are over all ranks' samples, on any device (gloo on CPU).

    ``torch.nn.SyncBatchNorm`` refuses CPU tensors; this one sums (count, sum, sum of squares) with
    an autograd-aware all-reduce, so the forward and the backward are those of one BatchNorm over the
    global batch. In eval mode, or with one process, it is plain BatchNorm. Same state-dict keys.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        if not (
            self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        ):
            return super().forward(input)
        all_reduce = _AllReduceSum.apply
        if self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        x = input.float()
        dims = [0, *range(2, x.dim())]
        c = x.shape[1]
        count = x.new_tensor([float(x.numel() // c)])
        sums = all_reduce(torch.cat([count, x.sum(dims)]))
        n = sums[0]
        mean = sums[1:] / n
        # two passes (the centred squares summed after the mean is known): BatchNorm's accuracy
        var = all_reduce((x - mean.view([1, c] + [1] * (x.dim() - 2))).square().sum(dims)) / n  # biased
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                unbiased = var * (n / (n - 1).clamp(min=1))
                self.running_mean.mul_(1 - momentum).add_(
                    mean.detach().to(self.running_mean.dtype), alpha=momentum
                )
                self.running_var.mul_(1 - momentum).add_(
                    unbiased.detach().to(self.running_var.dtype), alpha=momentum
                )
        return y.to(input.dtype)


def has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, _BatchNorm) for m in module.modules())


def _swap_batchnorm(module: nn.Module, make) -> nn.Module:
    """Replace every BatchNorm (1d/2d/3d/Sync) below ``module`` by ``make(bn)``, keeping its
    parameters and buffers (the very tensors, so an optimizer built before still holds them)."""
    out = module
    if isinstance(module, _BatchNorm):
        out = make(module)
        if out is not module:
            if module.affine:
                out.weight, out.bias = module.weight, module.bias
            out.running_mean, out.running_var = module.running_mean, module.running_var
            out.num_batches_tracked = module.num_batches_tracked
            out.training = module.training
    for name, child in module.named_children():
        new = _swap_batchnorm(child, make)
        if new is not child:
            out.add_module(name, new)
    return out


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm over the global batch: torch's SyncBatchNorm on CUDA, :class:`GlooSyncBatchNorm` elsewhere."""
    cls = nn.SyncBatchNorm if device.type == "cuda" else GlooSyncBatchNorm

    def make(bn: _BatchNorm) -> nn.Module:
        if isinstance(bn, (nn.SyncBatchNorm, GlooSyncBatchNorm)):
            return bn
        new = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
        new._edgepose_original_class = type(bn)  # what revert_sync_batchnorm puts back
        return new

    return _swap_batchnorm(module, make)


def revert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Undo :func:`convert_sync_batchnorm` (the model works again outside a process group)."""

    def make(bn: _BatchNorm) -> nn.Module:
        original = getattr(bn, "_edgepose_original_class", None)
        if original is None:
            return bn
        return original(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)

    return _swap_batchnorm(module, make)
