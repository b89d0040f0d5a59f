"""Conclusions computed from the numbers of the comparison: sentences, never written in advance."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..data.facts import CLASS_NAMES, CLASSES
from .anchors import ORIGINAL_STUDY


def _ratio(a: float, b: float) -> str:
    if not (b and math.isfinite(a) and math.isfinite(b)):
        return "n/a"
    r = a / b
    return f"{r:.1f}x" if r >= 1.95 or r < 0.95 else f"{r:.2f}x"


def _pts(v: float) -> str:
    return f"{100 * v:.1f} point{'s' if abs(round(100 * v, 1)) != 1 else ''}"


def conclusions(table: Any, sweep: Any = None, tolerance: float = 0.001) -> list[str]:
    """Sentences computed from a :func:`comparison_table` (a ResNet row and an ODE-Net row, told apart by the
    ``model`` column) and optionally a :func:`tolerance_sweep`. ``tolerance`` (0.001 = 0.1 point) is how close
    to the trained accuracy a cheaper solver setting must stay, and below which two accuracies count as equal."""
    out: list[str] = []
    kinds = dict(zip(table["model"], table.index))
    if "resnet" not in kinds or "odenet" not in kinds:
        rows = ", ".join(f"{i}: accuracy {r['accuracy']:.4f}" for i, r in table.iterrows())
        return [f"The table holds {rows}; conclusions compare a ResNet with an ODE-Net."]
    res, ode = table.loc[kinds["resnet"]], table.loc[kinds["odenet"]]
    rn, on = kinds["resnet"], kinds["odenet"]

    # accuracy
    diff = ode["accuracy"] - res["accuracy"]
    if abs(diff) < tolerance:
        out.append(f"Accuracy: the {on} ({ode['accuracy']:.2%}) and the {rn} ({res['accuracy']:.2%}) are level "
                   f"(difference {100 * diff:+.2f} points, under {100 * tolerance:.1f}).")
    else:
        better, worse = (on, rn) if diff > 0 else (rn, on)
        hi, lo = max(ode["accuracy"], res["accuracy"]), min(ode["accuracy"], res["accuracy"])
        out.append(f"Accuracy: the {better} is more accurate than the {worse}, {hi:.2%} against {lo:.2%} "
                   f"({_pts(abs(diff))}) on {int(ode['test beats']):,} test beats.")
    # baseline
    base = float(res["baseline"])
    parts = []
    if max(res["accuracy"], ode["accuracy"]) - base < tolerance:
        out.append(f"Majority baseline {base:.2%}: neither model beats it ({100 * (res['accuracy'] - base):+.2f} and "
                   f"{100 * (ode['accuracy'] - base):+.2f} points): both still answer (almost) always the majority "
                   f"class after {int(ode['epochs'] or 0)} epoch(s), so their accuracies say nothing about the "
                   "architectures yet; train longer (more epochs or more beats).")
    for name, row in () if out[-1].startswith("Majority") else ((rn, res), (on, ode)):
        gain = row["accuracy"] - base
        if gain < tolerance:
            parts.append(f"the {name} does not beat it ({100 * gain:+.2f} points: it is no better than always "
                         f"answering the majority class)")
        else:
            # share of the errors the baseline makes that the model avoids
            removed = gain / (1 - base) if base < 1 else float("nan")
            parts.append(f"the {name} beats it by {_pts(gain)} (removing {removed:.0%} of the baseline's errors)")
    if parts:
        out.append(f"Majority baseline {base:.2%}: " + "; ".join(parts) + ".")
    # per class
    f1d = ode["macro-F1"] - res["macro-F1"]
    sv = ", ".join(f"{c} {res[f'recall {c}']:.2f} vs {ode[f'recall {c}']:.2f}" for c in ("S", "V"))
    out.append(f"Per class: macro-F1 {res['macro-F1']:.3f} ({rn}) vs {ode['macro-F1']:.3f} ({on}), "
               f"{'higher for the ' + (on if f1d > 0 else rn) if abs(f1d) >= tolerance else 'level'}; "
               f"recall ({rn} vs {on}) {sv}.")
    never = [c for c in CLASSES if res[f"recall {c}"] == 0 and ode[f"recall {c}"] == 0]
    if never:
        out.append(f"Never recognised by either model: {', '.join(never)} "
                   f"({'; '.join(CLASS_NAMES[c] for c in never)}).")
    else:
        weakest = min(CLASSES, key=lambda c: res[f"recall {c}"] + ode[f"recall {c}"])
        out.append(f"The hardest class for both is {weakest} ({CLASS_NAMES[weakest]}): recall "
                   f"{res[f'recall {weakest}']:.2f} ({rn}) and {ode[f'recall {weakest}']:.2f} ({on}).")
    # costs
    out.append(f"Parameters: the {rn} has {_ratio(res['params'], ode['params'])} the parameters of the {on} "
               f"({int(res['params']):,} vs {int(ode['params']):,}).")
    t_ratio = ode["s/epoch"] / res["s/epoch"] if res["s/epoch"] else float("nan")
    lo, hi = ORIGINAL_STUDY["odenet_slowdown_per_epoch"]
    out.append(f"Training time: the {on} takes {_ratio(ode['s/epoch'], res['s/epoch'])} the {rn}'s time per epoch "
               f"({ode['s/epoch']:.1f} s vs {res['s/epoch']:.1f} s) at {ode['NFE fwd/batch']:.0f} forward and "
               f"{ode['NFE bwd/batch']:.0f} backward evaluations per batch"
               + (f"; the original study measured {lo}-{hi}x with dopri5 and the adjoint."
                  if math.isfinite(t_ratio) else "."))
    out.append(f"Activation memory of one training step: {ode['activation MB/step']:.1f} MB ({on}) vs "
               f"{res['activation MB/step']:.1f} MB ({rn}), a ratio of "
               f"{_ratio(ode['activation MB/step'], res['activation MB/step'])}"
               + (" (the adjoint keeps it flat in the number of solver steps)." if ode["NFE bwd/batch"] > 0 else
                  " (without the adjoint it grows with the solver steps)."))
    out.append(f"Inference: {ode['inference beats/s']:,.0f} beats/s ({on}) vs {res['inference beats/s']:,.0f} "
               f"beats/s ({rn}), the "
               f"{on} runs at {_ratio(ode['inference beats/s'], res['inference beats/s'])} the {rn}'s speed.")
    if sweep is not None and len(sweep) and ode["accuracy"] - base < tolerance:
        out.append(f"Tolerance sweep: the {on} answers the majority class whatever the solver, so the sweep shows "
                   "only costs: " + ", ".join(f"{name.replace(' (trained)', '')}: {nfe:.0f}"
                                            for name, nfe in zip(sweep["setting"], sweep["NFE/batch"]))
                   + " NFE per batch.")
    elif sweep is not None and len(sweep):
        ref = sweep[sweep["trained"]].iloc[0] if sweep["trained"].any() else sweep.iloc[0]
        ok = sweep[sweep["accuracy"] >= ref["accuracy"] - tolerance - 1e-12]
        best = ok.sort_values(["NFE/batch", "beats/s"], ascending=[True, False]).iloc[0]
        if best["setting"] == ref["setting"] or best["NFE/batch"] >= ref["NFE/batch"]:
            out.append(f"Tolerance sweep: no setting cheaper than the trained one "
                       f"({ref['setting'].replace(' (trained)', '')}, "
                       f"{ref['NFE/batch']:.0f} NFE/batch) stays within {100 * tolerance:.1f} point of its accuracy "
                       f"{ref['accuracy']:.2%}.")
        else:
            out.append(f"Tolerance sweep (train precise, deploy loose): {best['setting']} needs "
                       f"{best['NFE/batch']:.0f} NFE/batch instead of {ref['NFE/batch']:.0f} "
                       f"({_ratio(ref['NFE/batch'], best['NFE/batch'])} fewer evaluations, {best['beats/s']:,.0f} vs "
                       f"{ref['beats/s']:,.0f} beats/s) at {best['accuracy']:.2%} accuracy, within "
                       f"{100 * tolerance:.1f} point of the trained setting's {ref['accuracy']:.2%}.")
        worst = sweep.loc[sweep["accuracy"].idxmin()]
        if ref["accuracy"] - worst["accuracy"] >= tolerance:
            out.append(f"Largest loss in the sweep: {worst['setting']} ({worst['NFE/batch']:.0f} NFE/batch) "
                       f"drops accuracy "
                       f"to {worst['accuracy']:.2%} ({100 * (worst['accuracy'] - ref['accuracy']):+.1f} points).")
    orig = ORIGINAL_STUDY
    gap = 100 * (orig["odenet"]["accuracy"] - orig["resnet"]["accuracy"])
    out.append(f"For reference, the original study: ResNet {orig['resnet']['accuracy']:.1%}, ODE-Net "
               f"{orig['odenet']['accuracy']:.1%} ({gap:+.1f} points), {orig['resnet']['params']:,} vs "
               f"{orig['odenet']['params']:,} parameters; ours: {100 * diff:+.2f} points"
               f" after {int(ode['epochs'] or 0)} epoch(s) on {int(ode['test beats']):,} test beats.")
    return out


def show_conclusions(lines: Sequence[str]) -> Any:
    """The conclusions as a Markdown bullet list for display in a notebook."""
    from IPython.display import Markdown

    return Markdown("\n".join(f"- {line}" for line in lines))
