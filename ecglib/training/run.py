"""The run that joins data, model, training and metrics: :func:`run_training` trains one model on one split of a
beats table into a run folder and writes its ``metrics.json``.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from typing import Any

import numpy as np

from ..checkpoints import load_checkpoint, read_checkpoint
from ..config import FEATURE_SETS, TrainConfig, logit_offsets
from ..data.facts import RHYTHM_INPUTS
from ..data.inputs import beat_tensors
from ..data.splits import split_records
from ..errors import InputError
from ..files import atomic_write_text
from ..inference import machine_description, pick_device, predict, predict_nfe
from ..metrics import activation_bytes, beats_per_second, classification_metrics, count_parameters, cuda_peak_bytes
from ..models import build_model
from ..runs import RunFolder
from .loop import fit, seed_everything
from .resume import beats_digest, check_best, check_resumable, check_resumable_data, check_training_state


# ------------------------------------------------------------------------------------------------------- run
def run_training(model_name: str, beats: Any, split: Any, out: str | os.PathLike,
                 config: TrainConfig | None = None, model_kwargs: dict[str, Any] | None = None,
                 resume: bool = True, progress: bool = True, data_config: dict[str, Any] | None = None,
                 fresh: bool = False, features: str = "beat", context: bool = False, template: bool = False
                 ) -> dict[str, Any]:
    """Train ``model_name`` on ``split`` of ``beats``, test the kept weights (``config.keep``), write the run folder.

    model_kwargs: for :func:`ecglib.models.build_model` (width, blocks, ode). features: "beat" (the beat's samples
    only: the original study) or "beat+rhythm" (also the beat's rhythm features, ``beats.rhythm``, standardised
    with the training split's mean and std). context: feed each beat with its predecessor and successor (3 input
    channels, data.context_beats). template: one more channel, the beat minus its record's median beat
    (data.template_difference). Returns the metrics also written to ``out/metrics.json``: test accuracy,
    macro-F1, baseline, per-class scores and gross statistics (Se, +P, FPR, kappa), confusion matrices, the records
    of each split part, and the costs (parameters, seconds per epoch, NFE, activation memory, beats per second).

    The folder is locked for the whole run (:meth:`RunFolder.lock`: a second training into it is refused);
    ``fresh`` clears what an earlier run left, else a checkpoint there is resumed only if it was trained on the
    same data (``data_config`` and the beats' digest), split, model and recipe. A failed run leaves no
    metrics.json, and no run folder if this call created it and no epoch finished.
    """
    run = RunFolder(out)
    created = not run.path.exists()
    with run.lock():
        try:
            return _run_training_locked(model_name, beats, split, run, config, model_kwargs, resume, progress,
                                        data_config, fresh, features, context, template)
        except BaseException:
            # Nothing that looks like a result: metrics.json is written last (and an earlier one was removed
            # before training), and a folder this call made goes while it holds no finished epoch. Still under
            # the lock, so that no other training is in the folder.
            if created and not run.checkpoint.exists():
                shutil.rmtree(run.path, ignore_errors=True)
            raise


def _run_training_locked(model_name: str, beats: Any, split: Any, run: RunFolder, config: TrainConfig | None,
                         model_kwargs: dict[str, Any] | None, resume: bool, progress: bool,
                         data_config: dict[str, Any] | None, fresh: bool, features: str, context: bool,
                         template: bool = False) -> dict[str, Any]:
    if features not in FEATURE_SETS:
        raise InputError(f"unknown feature set {features!r}; choose {', '.join(FEATURE_SETS)}")
    config = config or TrainConfig()
    if fresh:
        run.clear()
    seed_everything(config.seed)
    tensors = beat_tensors(beats, features, context, template=template, rhythm_inputs=RHYTHM_INPUTS)
    model_kwargs = dict(model_kwargs or {})
    if tensors.rhythm is not None:
        model_kwargs["rhythm_inputs"] = RHYTHM_INPUTS
    if context or template:
        model_kwargs["in_channels"] = tensors.x.shape[1]
    model = build_model(model_name, **model_kwargs, logit_offsets=logit_offsets(config.s_offset))
    x_tr, y_tr, r_tr = tensors.part(split.train)
    x_va, y_va, r_va = tensors.part(split.val)
    # A table read with every lead trains on all of them; the test (and the reported validation) stays on the lead
    # the lead rule reads, so that its numbers mean what a one-lead run's mean. The other leads are scored apart.
    rule = beats.rule_lead()
    x_te, y_te, r_te = tensors.part(split.test[rule[split.test]])
    if len(x_te) == 0:
        raise InputError("the test split is empty")
    # "template" only when on, so that the checkpoints of runs from before the option still resume.
    data_state = {**(data_config or {}), "split": split.protocol, "features": features, "context": context,
                  **({"template": True} if template else {}),
                  "beats": beats_digest(x_tr.numpy(), y_tr.numpy(), x_va.numpy(), y_va.numpy(), x_te.numpy(),
                                        y_te.numpy(), *([] if r_tr is None else [r_tr.numpy()]))}
    if resume and run.checkpoint.exists():
        state = read_checkpoint(run.checkpoint)
        check_training_state(state, run.checkpoint)
        # all checked before anything in the folder changes: a refused resume leaves it as it was
        check_resumable(state, model, config, run.checkpoint)
        check_resumable_data(state, data_state, run.checkpoint)
        check_best(read_checkpoint(run.best), model, run.best)  # there, whole and this run's, or the result lies
    # A run that goes on must not leave the last run's metrics behind if it fails.
    run.metrics_file.unlink(missing_ok=True)
    if r_tr is not None:
        model.set_rhythm_stats(r_tr)
    history = fit(model, x_tr, y_tr, x_va, y_va, config, run_dir=run.path, resume=resume, progress=progress,
                  checkpoint_extra={"data_config": data_state}, r_train=r_tr, r_val=r_va)

    best, best_state = load_checkpoint(run.best)
    check_best(best_state, model, run.best)
    device = pick_device(config.device)
    best.to(device)
    pred, _, test_nfe = predict_nfe(best, x_te, device=device, rhythm=r_te)
    metrics = classification_metrics(y_te.numpy(), pred, y_train=y_tr.numpy())
    summary_keys = ("accuracy", "macro_f1", "baseline_accuracy", "gross", "kappa", "confusion_matrix", "n_test")

    def scores(index: np.ndarray) -> dict[str, Any]:
        x, y, r = tensors.part(index)
        p, _ = predict(best, x, device=device, rhythm=r)
        m = classification_metrics(y.numpy(), p, y_train=y_tr.numpy())
        return {k: m[k] for k in summary_keys}

    if len(x_va):
        # The validation scores of the same weights: what model choices (class weighting, features) are made on.
        metrics["validation"] = scores(split.val[rule[split.val]])
    if not rule.all():
        for part, index in (("test", split.test), ("validation", split.val)):
            if (~rule[index]).any():
                metrics[f"{part}_other_leads"] = scores(index[~rule[index]])
    xb, yb = x_tr[: config.batch_size].to(device), y_tr[: config.batch_size].to(device)
    rb = r_tr[: config.batch_size].to(device) if r_tr is not None else None
    metrics.update({
        "model": model_name,
        "params": count_parameters(best),
        "seconds_per_epoch": [h["seconds"] for h in history],
        "nfe_forward": float(np.mean([h["nfe_forward"] for h in history])),
        "nfe_backward": float(np.mean([h["nfe_backward"] for h in history])),
        "test_nfe_forward": test_nfe,
        "activation_bytes": activation_bytes(best, xb, yb, rhythm=rb),
        "cuda_peak_bytes": cuda_peak_bytes(best, xb, yb, rhythm=rb),
        "beats_per_second": beats_per_second(best, x_te.to(device),
                                             rhythm=r_te.to(device) if r_te is not None else None),
        "best_epoch": int(best_state["epoch"]),
        "split_sizes": split.sizes(),
        "split": {"protocol": split.protocol, **split_records(beats, split)},
        "features": features, "context": context, "template": template,
        "device": str(device), "machine": machine_description(device),
        "config": {"model": best.config, "train": asdict(config), "data": data_config or {},
                   "split": split.protocol, "features": features, "context": context,
                   # only when on: sweeps recognise their finished runs by this config, written before the option
                   **({"template": True} if template else {})},
        "history": history,
    })
    atomic_write_text(run.metrics_file, json.dumps(metrics, indent=2))
    return metrics
