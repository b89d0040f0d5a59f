"""A trained model applied to beats: the device, class predictions and logits in batches, the evaluations of the ODE
dynamics it took, and where the numbers were measured.

Pure torch on tensors: training (:mod:`ecglib.training`), ``ecglib evaluate`` and labelling records
(:mod:`ecglib.ec57.annotate`) all predict through :func:`predict`.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .allocator import keep_freed_memory
from .errors import InputError, TrainingError
from .models import Classifier


def pick_device(name: str = "auto") -> torch.device:
    """'auto' takes cuda, then mps, then cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"--device {name}: unknown device; choose auto, cpu, cuda, cuda:N or mps") from None
    # Checked here, where training starts: torch would otherwise fail deep inside the first .to(device).
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(f"--device {name}: no CUDA device on this machine (torch {torch.__version__}); "
                             "use --device cpu or auto")
        if device.index is not None and device.index >= count:
            raise InputError(f"--device {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    elif device.type == "mps" and not (getattr(torch.backends, "mps", None) is not None
                                       and torch.backends.mps.is_available()):
        raise InputError(f"--device {name}: no Apple MPS device on this machine; use --device cpu or auto")
    elif device.type != "cpu":
        raise InputError(f"--device {name}: unsupported device; choose auto, cpu, cuda, cuda:N or mps")
    return device


def solver_advice(exc: BaseException) -> TrainingError | None:
    text = str(exc)
    if "underflow in dt" in text or "max_num_steps" in text:
        return TrainingError(f"the ODE solver's step size underflowed ({text.strip()[:80]}): the dynamics became "
                             "too stiff; loosen the tolerance (--rtol/--atol), lower the learning rate (--lr), "
                             "or use a fixed-grid solver (--solver rk4)")
    return None


def gather_rows(r: torch.Tensor | None, idx: Any, device: torch.device) -> torch.Tensor | None:
    return None if r is None else r[idx].to(device, non_blocking=True)


# ------------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 512,
            device: torch.device | None = None, progress: bool = False, rhythm: torch.Tensor | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Class predictions (n,) and logits (n, 5) for beats x (n, C, 187) and, for a model with a rhythm input,
    their rhythm features (n, k); ``progress``: a bar of beats done."""
    from tqdm.auto import tqdm

    keep_freed_memory()
    device = device or next(model.parameters()).device
    model.eval()
    out = []
    bar = tqdm(total=len(x), desc="evaluating", unit="beat", unit_scale=True, disable=not progress, leave=False,
               dynamic_ncols=True)
    try:
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device)
            logits = model(xb) if rhythm is None else model(xb, gather_rows(rhythm, slice(i, i + batch_size), device))
            out.append(logits.float().cpu())
            bar.update(len(xb))
    except AssertionError as exc:
        raise (solver_advice(exc) or exc) from None
    finally:
        bar.close()
    logits = torch.cat(out) if out else torch.empty(0, 5)
    return logits.argmax(1).numpy(), logits.numpy()


def predict_nfe(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 512, device: torch.device | None = None,
                progress: bool = False, rhythm: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`predict` and the mean forward evaluations of the ODE dynamics per batch (0 for a ResNet)."""
    if isinstance(model, Classifier):
        model.reset_nfe()
    pred, logits = predict(model, x, batch_size, device, progress=progress, rhythm=rhythm)
    calls = model.nfe()[0] if isinstance(model, Classifier) else 0
    return pred, logits, nfe_per_batch(calls, len(x), batch_size)


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512,
             rhythm: torch.Tensor | None = None) -> dict[str, float]:
    """Loss, accuracy and forward NFE per batch of the model on (x, y) (and the beats' rhythm features)."""
    pred, logits, nfe = predict_nfe(model, x, batch_size, rhythm=rhythm)
    loss = float(F.cross_entropy(torch.from_numpy(logits), y)) if len(y) else float("nan")
    return {"loss": loss, "accuracy": float(np.mean(pred == y.numpy())) if len(y) else float("nan"), "nfe": nfe}


def nfe_per_batch(forward_calls: int, n_beats: int, batch_size: int) -> float:
    """Mean evaluations of the ODE dynamics per batch when ``n_beats`` beats went through in batches."""
    return forward_calls / max(1, math.ceil(n_beats / batch_size))


def machine_description(device: torch.device | None = None) -> str:
    """A short description of where numbers were measured: CPU model and cores, or the GPU's name."""
    import platform

    device = device or torch.device("cpu")
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA), torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
