"""Seeded synthetic ECG in the shape of the MIT-BIH Arrhythmia Database, written as real WFDB records.

This is the embedded offline dataset of the package: :func:`write_synthetic_mitdb` writes ``NAME.hea``,
``NAME.dat`` (format 212, 200 adu/mV, baseline 1024, like MIT-BIH) and ``NAME.atr`` for every record name,
so the ordinary MIT-BIH reader processes it unchanged.

Signal model, after McSharry et al. 2003 (ECGSYN): every beat is a sum of Gaussian bumps (P, Q, R, S, T and a
few extra waves), each with a position relative to the R peak, a width and an amplitude. ECGSYN states wave
positions as angles on the cardiac cycle; here they are kept in seconds, and the P and T positions stretch with
the preceding RR interval the way the angles do. Units throughout: time in seconds, amplitude in millivolts,
sampling frequency in Hz, annotation positions in samples.

Each record has its own patient: mean heart rate, heart-rate variability, wave shapes, bundle-branch block,
ectopic focus and beat mix. The beat mix follows the rounded per-record composition of the real database, so
that, as there, a few records carry most ventricular, fusion and supraventricular beats.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import wfdb

from ..errors import InputError
from .facts import MITDB_RECORDS, PACED_RECORDS

# Approximate beat counts per record in the real database (symbol followed by count). Only the proportions
# are used. Names outside the database get the average mix of the non-paced records.
_COMPOSITION: dict[str, str] = {
    "100": "N2239 A33 V1", "101": "N1860 A3 Q2", "102": "/2028 f56 N99 V4", "103": "N2082 A2",
    "104": "/1380 f666 N163 V2 Q18", "105": "N2526 V41 Q5", "106": "N1507 V520", "107": "/2078 V59",
    "108": "N1740 A4 V17 F2 j1", "109": "L2492 V38 F2", "111": "L2123 V1", "112": "N2537 A2",
    "113": "N1789 a6", "114": "N1820 A10 V43 F4 J2", "115": "N1953", "116": "N2302 A1 V109",
    "117": "N1534 A1", "118": "R2166 A96 V16", "119": "N1543 V444", "121": "N1861 A1 V1",
    "122": "N2476", "123": "N1515 V3", "124": "R1531 A2 J29 V47 F5 j5", "200": "N1743 A30 V826 F2",
    "201": "N1625 A30 a97 J1 j10 V198 F2", "202": "N2061 A36 a19 V19 F1", "203": "N2529 a2 V444 F1 Q4",
    "205": "N2571 A3 V71 F11", "207": "L1457 R86 A107 V105 E105", "208": "N1586 S2 V992 F373",
    "209": "N2621 A383 V1", "210": "N2423 a22 V194 F10 E1", "212": "N923 R1825",
    "213": "N2641 A25 a3 V220 F362", "214": "L2003 V256 F1", "215": "N3195 A3 V164 F1",
    "217": "/1542 f260 N244 V162", "219": "N2082 A7 V64 F1", "220": "N1954 A94", "221": "N2031 V396",
    "222": "N2062 A208 J1 j212", "223": "N2029 A72 a1 e16 V473 F14", "228": "N1688 A3 V362",
    "230": "N2255 V1", "231": "R1254 A1", "232": "R397 A1382 j1", "233": "N2230 A7 V831 F11",
    "234": "N2700 J50 V3",
}  # fmt: skip
_DEFAULT_COMPOSITION = "N1000 A28 V75 F8 Q1"

# Fusion beats are rare and sit in two records; at 60 s per record that leaves too few to learn from, so
# their share is raised a little (0.7 % -> about 0.9 % of the default set).
_QUOTA_BOOST = {"F": 1.3, "V": 1.1, "A": 0.75}

# Lead names as the database uses them. The model renders two canonical leads (a limb lead like MLII and a
# right precordial lead like V1); every named lead is a fixed mix of the two.
_LEAD_MIX: dict[str, tuple[float, float]] = {
    "MLII": (1.0, 0.0),
    "V1": (0.0, 1.0),
    "V2": (0.25, 1.3),
    "V5": (1.0, -0.15),
}
_RECORD_LEADS: dict[str, tuple[str, str]] = {
    "102": ("V5", "V2"),
    "104": ("V5", "V2"),
    "114": ("V5", "MLII"),
}
_DEFAULT_LEADS = ("MLII", "V1")

# Format 212 with MIT-BIH's gain and baseline: keep the digital values in the database's 11-bit range 0..2047.
_ADC_GAIN = 200.0
_ADC_BASELINE = 1024
_P_MIN = (0 - _ADC_BASELINE) / _ADC_GAIN
_P_MAX = (2047 - _ADC_BASELINE) / _ADC_GAIN

_RECORD_NAME = re.compile(r"[A-Za-z0-9_-]+")

# --------------------------------------------------------------------------------------------------------------
# Beat shapes. A template is one row per wave role and the columns offset (s from the R peak), width (Gaussian
# sigma, s) and amplitude (mV) in the two canonical leads. Every template has every role, silent ones with zero
# amplitude, so that fusion beats can blend two templates row by row.

_ROLES = ("P", "Q", "R", "S", "T", "T2", "X1", "X2", "SPIKE")
_P, _Q, _R, _S, _T, _T2, _X1, _X2, _SPIKE = range(len(_ROLES))
_OFF, _WID, _AMP = 0, 1, slice(2, 4)

# Wave positions stretch as (preceding RR / 1 s) ** exponent: the QT interval follows cycle length (Bazett),
# the PR interval a little, the QRS complex not at all.
_RR_EXPONENT = np.array([0.25, 0.0, 0.0, 0.0, 0.5, 0.5, 0.0, 0.0, 0.0])

# Samples rendered around each R peak; wide enough for the earliest P and the latest T at the longest RR.
_WINDOW_S = (0.42, 0.72)


def _template(**waves: tuple[float, float, float, float]) -> np.ndarray:
    shape = np.zeros((len(_ROLES), 4))
    shape[:, _WID] = 0.01  # silent waves still need a width to evaluate
    for role, row in waves.items():
        shape[_ROLES.index(role)] = row
    return shape


# Sinus beat: small upright P, narrow qRs (rS in V1), asymmetric upright T.
_NORMAL = _template(
    P=(-0.190, 0.022, 0.15, 0.07),
    Q=(-0.030, 0.008, -0.10, 0.00),
    R=(0.000, 0.009, 1.20, 0.30),
    S=(0.030, 0.009, -0.25, -0.85),
    T=(0.260, 0.045, 0.30, 0.12),
    T2=(0.310, 0.030, 0.10, 0.05),
)
# Left bundle-branch block: wide notched R without septal q, broad QS in V1, T discordant to the QRS.
_LBBB = _template(
    P=(-0.200, 0.022, 0.14, 0.06),
    Q=(-0.050, 0.012, 0.70, -0.45),
    R=(0.000, 0.016, 1.00, -1.00),
    S=(0.045, 0.014, 0.05, -0.35),
    T=(0.300, 0.055, -0.30, 0.35),
    T2=(0.345, 0.035, -0.05, 0.10),
)
# Right bundle-branch block: broad slurred S in the limb lead, rSR' in V1 with an inverted T.
_RBBB = _template(
    P=(-0.190, 0.022, 0.15, 0.07),
    Q=(-0.030, 0.008, -0.08, 0.28),
    R=(0.000, 0.010, 1.05, -0.55),
    S=(0.050, 0.020, -0.35, 0.00),
    X1=(0.050, 0.016, 0.00, 0.85),
    T=(0.280, 0.050, 0.25, -0.20),
    T2=(0.330, 0.030, 0.05, -0.05),
)


def _ventricular(polarity: float) -> np.ndarray:
    """Ectopic ventricular beat: no P, a 2-3x wider and larger QRS, a large T opposite to the QRS."""
    s = polarity
    return _template(
        Q=(-0.050, 0.020, -0.25 * s, 0.30 * s),
        R=(0.000, 0.026, 1.70 * s, -1.20 * s),
        S=(0.060, 0.024, -0.35 * s, 0.35 * s),
        T=(0.300, 0.070, -0.60 * s, 0.45 * s),
        T2=(0.360, 0.045, -0.15 * s, 0.10 * s),
    )


def _paced(spike_width: float) -> np.ndarray:
    """Right-ventricular pacing: a narrow tall spike with a small overshoot, then a wide QRS and discordant T."""
    return _template(
        SPIKE=(-0.065, spike_width, 2.20, 1.60),
        X2=(-0.058, 0.004, -0.25, -0.20),
        Q=(-0.035, 0.018, 0.30, -0.30),
        R=(0.000, 0.024, 1.30, -1.10),
        S=(0.055, 0.020, -0.20, 0.20),
        T=(0.310, 0.065, -0.45, 0.40),
        T2=(0.360, 0.040, -0.10, 0.10),
    )


def _blend(a: np.ndarray, b: np.ndarray, weight: float) -> np.ndarray:
    return (1.0 - weight) * a + weight * b


def _perturbed(rng: np.random.Generator, shape: np.ndarray, lead_gain: np.ndarray) -> np.ndarray:
    """The same wave family looks a little different in every patient."""
    out = shape.copy()
    out[:, _OFF] *= rng.uniform(0.93, 1.07, len(_ROLES))
    out[:, _WID] *= rng.uniform(0.9, 1.1, len(_ROLES))
    out[:, _AMP] *= rng.lognormal(0.0, 0.1, (len(_ROLES), 2)) * lead_gain
    return out


def _record_templates(
    rng: np.random.Generator, base_symbol: str, fs: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Fixed-morphology templates of one patient, and the template of its own conducted (normal-class) beat."""
    lead_gain = np.array([rng.uniform(0.85, 1.25), rng.uniform(0.8, 1.25)])
    conducted = {sym: _perturbed(rng, shape, lead_gain) for sym, shape in (("N", _NORMAL), ("L", _LBBB), ("R", _RBBB))}
    own = conducted[base_symbol] if base_symbol in conducted else conducted["N"]

    # Ectopic ventricular beats are usually opposite in polarity to the conducted QRS.
    polarity = -1.0 if rng.random() < 0.65 else 1.0
    ventricular = _perturbed(rng, _ventricular(polarity), lead_gain)
    # Sample the pacer spike on at least ~1 sample, otherwise it vanishes between samples at low fs.
    paced = _perturbed(rng, _paced(max(0.0014, 0.55 / fs)), lead_gain)

    # The ectopic atrial P of this patient: either inverted (low atrial focus) or small and early.
    ectopic_p = own[_P].copy()
    if rng.random() < 0.5:
        ectopic_p[_OFF] *= 0.85
        ectopic_p[_AMP] *= -rng.uniform(0.4, 0.8)
    else:
        ectopic_p[_OFF] *= 1.3
        ectopic_p[_AMP] *= rng.uniform(0.3, 0.6)
    atrial = own.copy()
    atrial[_P] = ectopic_p
    # Aberrant conduction: same ectopic P, a wider and lower QRS.
    aberrant = atrial.copy()
    aberrant[[_Q, _R, _S], _WID] *= 1.7
    aberrant[[_Q, _R, _S], _OFF] *= 1.4
    aberrant[_R, _AMP] *= 0.8
    # Junctional beats: the atria are activated retrogradely, so a small inverted P follows the QRS.
    junctional = own.copy()
    junctional[_P] = (0.09, 0.018, -0.3 * own[_P, 2], -0.3 * own[_P, 3])

    templates = dict(conducted)
    templates.update(
        {
            "A": atrial, "S": atrial, "e": atrial, "a": aberrant, "J": junctional, "j": junctional,
            "V": ventricular, "E": ventricular, "/": paced,
        }
    )  # fmt: skip
    return templates, own


def _beat_shape(rng: np.random.Generator, symbol: str, templates: dict[str, np.ndarray], own: np.ndarray) -> np.ndarray:
    if symbol == "F":
        # Ventricles activated partly by the sinus beat and partly by the ectopic focus: a smaller narrow
        # conducted R followed by a part of the wide ectopic deflection, the rest of the waves halfway between.
        # (Blending the two R waves alone would cancel them when their polarities differ.) The P is the sinus one.
        weight = rng.uniform(0.35, 0.65)
        shape = _blend(own, templates["V"], weight)
        shape[_P] = own[_P]
        shape[_R] = own[_R]
        shape[_R, _AMP] *= 1.0 - weight
        shape[_X2] = templates["V"][_R]
        shape[_X2, _OFF] += rng.uniform(0.015, 0.035)
        shape[_X2, _AMP] *= weight
        return shape
    if symbol == "f":
        # Paced fusion: the spike is at full size, the QRS halfway between conducted and paced.
        shape = _blend(own, templates["/"], rng.uniform(0.35, 0.7))
        shape[[_P, _SPIKE, _X2]] = np.stack([own[_P], templates["/"][_SPIKE], templates["/"][_X2]])
        return shape
    if symbol == "Q":
        # Unclassifiable: an odd mixture with distorted amplitudes.
        shape = _blend(own, templates["V"], rng.uniform(0.2, 0.8))
        shape[:, _AMP] *= rng.uniform(0.5, 1.5, (len(_ROLES), 1))
        return shape
    return templates[symbol].copy()


# --------------------------------------------------------------------------------------------------------------
# Rhythm. Conducted beats follow the sinus node; ectopic beats come at their own time and may reset it.

_SINUS = ("N", "L", "R", "Q")
_ATRIAL_PREMATURE = ("A", "a", "J", "S")
_ESCAPE = ("E", "j", "e")
# Average RR of a beat relative to the sinus RR, to guess how many beats fill the record. A premature
# ventricular beat and its compensatory pause together last two sinus cycles, so it counts as 1.
_RR_FACTOR = {"A": 0.675, "a": 0.675, "J": 0.675, "S": 0.675, "E": 1.45, "j": 1.45, "e": 1.45}
_RR_FACTOR_PACED = {"N": 0.885, "f": 0.985, "V": 0.65}


def _composition(name: str) -> dict[str, float]:
    counts = {tok[0]: float(tok[1:]) for tok in _COMPOSITION.get(name, _DEFAULT_COMPOSITION).split()}
    total = sum(counts.values())
    return {sym: count / total for sym, count in counts.items()}


def _dominant_symbol(composition: dict[str, float], paced: bool) -> str:
    candidates = ("/",) if paced else ("N", "L", "R")
    return max((s for s in composition if s in candidates), key=composition.__getitem__, default=candidates[0])


def _beat_labels(rng: np.random.Generator, composition: dict[str, float], dominant: str, n_beats: int) -> list[str]:
    """Labels in random order with a fixed quota per symbol, so class totals vary little between seeds."""
    labels = [dominant] * n_beats
    free = rng.permutation(np.arange(1, n_beats))  # the first beat is always the dominant one
    used = 0
    for symbol, share in composition.items():
        if symbol == dominant:
            continue
        expected = share * n_beats * _QUOTA_BOOST.get(symbol, 1.0)
        count = int(expected) + int(rng.random() < expected - int(expected))
        for position in free[used : used + count]:
            labels[position] = symbol
        used += count
    return labels


def _sinus_rr(rng: np.random.Generator, mean_rr: float, paced: bool) -> Callable[[float], float]:
    """Slowly varying RR (s) as a function of time: respiratory sinus arrhythmia plus a slower Mayer wave."""
    if paced:  # a pacemaker fires at a fixed rate
        return lambda t: mean_rr
    resp_amp, resp_f, resp_ph = rng.uniform(0.01, 0.05), rng.uniform(0.15, 0.35), rng.uniform(0, 2 * np.pi)
    slow_amp, slow_f, slow_ph = rng.uniform(0.01, 0.04), rng.uniform(0.04, 0.12), rng.uniform(0, 2 * np.pi)
    return lambda t: mean_rr * (
        1.0 + resp_amp * np.sin(2 * np.pi * resp_f * t + resp_ph) + slow_amp * np.sin(2 * np.pi * slow_f * t + slow_ph)
    )


def _beat_times(
    rng: np.random.Generator, labels: list[str], sinus_rr: Callable[[float], float], paced: bool, jitter: float
) -> np.ndarray:
    """R-peak times (s) of the labelled beats."""
    coupling = rng.uniform(0.55, 0.72)  # each ectopic focus fires at a fairly fixed interval after the last beat
    t_prev = rng.uniform(0.3, 0.9) * sinus_rr(0.0)
    next_sinus = t_prev
    times = []
    for i, symbol in enumerate(labels):
        rr = sinus_rr(t_prev) * (1.0 + jitter * rng.standard_normal())
        if i == 0:
            t = t_prev
        elif symbol == "V":
            t = t_prev + rr * coupling * (1.0 + 0.02 * rng.standard_normal())
        elif paced:
            # A demand pacemaker restarts its interval at every sensed beat: conducted beats come a little
            # early, fusion beats just before the pacer would fire, paced beats on time.
            factor = {"N": rng.uniform(0.82, 0.95), "f": rng.uniform(0.97, 1.0)}.get(symbol, 1.0)
            t = t_prev + rr * factor
        elif symbol in _ATRIAL_PREMATURE:
            t = t_prev + rr * rng.uniform(0.6, 0.75)
        elif symbol in _ESCAPE:
            t = t_prev + rr * rng.uniform(1.3, 1.6)
        elif symbol == "F":
            t = next_sinus - rng.uniform(0.01, 0.05)  # slightly ahead of the sinus beat it fuses with
        else:
            t = next_sinus
        t = max(t, t_prev + max(0.25, 0.3 * rr))

        # Where the sinus node fires next.
        if i == 0 or symbol in _SINUS or symbol == "F":
            next_sinus = max(next_sinus, t) + rr
        elif symbol == "V":
            # The ventricle is refractory when the next sinus impulse arrives, so that beat is lost: a
            # full compensatory pause.
            while next_sinus < t + 0.5 * rr:
                next_sinus += sinus_rr(next_sinus)
        else:  # atrial and junctional beats reset the sinus node
            next_sinus = t + rr
        times.append(t)
        t_prev = t
    return np.asarray(times)


# --------------------------------------------------------------------------------------------------------------
# Rendering and noise.


def _render(
    rng: np.random.Generator, shapes: np.ndarray, times: np.ndarray, rr_before: np.ndarray, n: int, fs: int
) -> np.ndarray:
    """Canonical two-lead signal (2, n) in mV: every beat's Gaussians, evaluated only in a window around it."""
    shapes = shapes.copy()
    shapes[:, :, _OFF] *= np.clip(rr_before, 0.4, 1.5)[:, None] ** _RR_EXPONENT
    # Beat-to-beat variation, and the slow change of electrical axis with breathing.
    shapes[:, :, _OFF] += rng.normal(0.0, 0.002, shapes.shape[:2]) * (_RR_EXPONENT > 0)
    shapes[:, :, _WID] *= 1.0 + rng.normal(0.0, 0.02, shapes.shape[:2])
    resp_f, resp_phase = rng.uniform(0.15, 0.35), rng.uniform(0, 2 * np.pi)
    breathing = 1.0 + rng.uniform(0.02, 0.07) * np.sin(2 * np.pi * resp_f * times + resp_phase)
    shapes[:, :, _AMP] *= (1.0 + rng.normal(0.0, 0.03, shapes.shape[:2]))[:, :, None] * breathing[:, None, None]

    lo, hi = int(np.ceil(_WINDOW_S[0] * fs)), int(np.ceil(_WINDOW_S[1] * fs))
    grid = np.rint(times * fs).astype(np.int64)[:, None] + np.arange(-lo, hi + 1)  # (beats, window)
    dt = grid / fs - times[:, None]
    z = (dt[:, None, :] - shapes[:, :, _OFF, None]) / shapes[:, :, _WID, None]  # (beats, waves, window)
    waves = np.einsum("bkw,bkl->lbw", np.exp(-0.5 * z * z), shapes[:, :, _AMP])
    inside = (grid >= 0) & (grid < n)
    return np.stack([np.bincount(grid[inside], weights=lead[inside], minlength=n) for lead in waves])


def _noise(rng: np.random.Generator, n: int, fs: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Noise (2, n) in mV for the two output leads, and the (start, end) samples of the muscle-noise bursts."""
    t = np.arange(n) / fs
    noise = rng.normal(0.0, rng.uniform(0.005, 0.015, (2, 1)), (2, n))  # amplifier and quantisation

    # Baseline wander from breathing and electrode motion: same frequency in both leads, own size and phase.
    f_wander = rng.uniform(0.1, 0.5)
    noise += rng.uniform(0.05, 0.2, (2, 1)) * np.sin(2 * np.pi * f_wander * t + rng.uniform(0, 2 * np.pi, (2, 1)))
    f_drift = rng.uniform(0.02, 0.08)  # slower drift of the electrode potential
    noise += rng.uniform(0.0, 0.1, (2, 1)) * np.sin(2 * np.pi * f_drift * t + rng.uniform(0, 2 * np.pi, (2, 1)))

    if fs > 150 and rng.random() < 0.3:  # mains interference in some recordings
        noise += rng.uniform(0.005, 0.02, (2, 1)) * np.sin(2 * np.pi * 60.0 * t + rng.uniform(0, 2 * np.pi))

    # Muscle artefact: short bursts of broadband noise; every record has at least one so that it carries a
    # noise annotation.
    bursts = []
    for _ in range(1 + rng.poisson(n / fs / 60.0)):
        length = min(int(rng.uniform(0.8, 3.0) * fs), n // 2)
        if length < 4:
            break
        start = int(rng.integers(1, n - length))
        emg = np.convolve(rng.standard_normal(length), [0.25, 0.5, 0.25], mode="same") * np.hanning(length)
        noise[:, start : start + length] += rng.uniform(0.04, 0.12, (2, 1)) * emg
        bursts.append((start, start + length - 1))
    return noise, bursts


def _annotations(
    beat_samples: np.ndarray, labels: list[str], bursts: list[tuple[int, int]], rhythm: str
) -> tuple[np.ndarray, list[str], list[str]]:
    """Beat annotations plus the non-beat ones a classifier must skip, sorted and at distinct samples."""
    taken = set(beat_samples.tolist())
    extra: list[tuple[int, str, str]] = []
    for start, end in bursts:  # '~' marks where the signal quality changes, at both ends of a burst
        for s in (start, end):
            while s in taken:
                s += 1
            taken.add(s)
            extra.append((s, "~", ""))
    rows = [(0, "+", rhythm)] if 0 not in beat_samples else []
    rows += [(int(s), sym, "") for s, sym in zip(beat_samples, labels)] + extra
    rows.sort(key=lambda row: row[0])
    return np.array([r[0] for r in rows], dtype=np.int64), [r[1] for r in rows], [r[2] for r in rows]


def _record_seed(name: str, seed: int) -> list[int]:
    key = MITDB_RECORDS.index(name) if name in MITDB_RECORDS else 1000 + zlib.crc32(name.encode())
    return [seed, key]


def _write_record(folder: Path, name: str, seconds: float, seed: int, fs: int) -> None:
    rng = np.random.default_rng(_record_seed(name, seed))
    n = int(round(seconds * fs))
    paced = name in PACED_RECORDS
    composition = _composition(name)
    dominant = _dominant_symbol(composition, paced)
    templates, own = _record_templates(rng, "N" if paced else dominant, fs)

    mean_rr = 60.0 / rng.uniform(60.0, 95.0)
    sinus_rr = _sinus_rr(rng, mean_rr, paced)
    factors = _RR_FACTOR_PACED if paced else _RR_FACTOR
    mean_factor = sum(share * factors.get(sym, 1.0) for sym, share in composition.items())
    n_beats = max(1, int(seconds / (mean_rr * mean_factor)) + 1)
    labels = _beat_labels(rng, composition, dominant, n_beats)
    times = _beat_times(rng, labels, sinus_rr, paced, jitter=0.002 if paced else rng.uniform(0.005, 0.02))

    samples = np.rint(times * fs).astype(np.int64)
    keep = samples < n
    times, samples = times[keep], samples[keep]
    labels = [sym for sym, k in zip(labels, keep) if k]
    rr_before = np.diff(times, prepend=times[0] - mean_rr) if len(times) else times

    shapes = np.array([_beat_shape(rng, sym, templates, own) for sym in labels]).reshape(-1, len(_ROLES), 4)
    canonical = _render(rng, shapes, times, rr_before, n, fs)
    lead_names = _RECORD_LEADS.get(name, _DEFAULT_LEADS)
    mix = np.array([_LEAD_MIX[lead] for lead in lead_names])
    noise, bursts = _noise(rng, n, fs)
    signal = np.clip(mix @ canonical + noise, _P_MIN, _P_MAX)

    wfdb.wrsamp(
        record_name=name,
        fs=fs,
        units=["mV", "mV"],
        sig_name=list(lead_names),
        p_signal=np.ascontiguousarray(signal.T),
        fmt=["212", "212"],
        adc_gain=[_ADC_GAIN, _ADC_GAIN],
        baseline=[_ADC_BASELINE, _ADC_BASELINE],
        comments=[f"synthetic ECG (ecglib.synthetic, seed {seed})"],
        write_dir=str(folder),
    )
    sample, symbol, aux = _annotations(samples, labels, bursts, "(P" if paced else "(N")
    wfdb.wrann(name, "atr", sample=sample, symbol=symbol, aux_note=aux, write_dir=str(folder))


def write_synthetic_mitdb(
    folder: str | os.PathLike,
    records: Sequence[str] = MITDB_RECORDS,
    seconds: float = 60.0,
    seed: int = 0,
    fs: int = 360,
) -> list[str]:
    """Write one WFDB record per name (NAME.hea, NAME.dat, NAME.atr) into folder (created if needed); return the names
    written.

    Each record is ``seconds`` long (s) at ``fs`` Hz with two leads in mV (format 212, gain 200 adu/mV,
    baseline 1024, clipped to about -5.12..5.12 mV). ``NAME.atr`` marks every beat at its R peak (in samples)
    with its MIT-BIH symbol, plus a rhythm annotation '+' at sample 0 (aux '(N', or '(P' in paced records)
    and '~' at the start and end of each muscle-noise burst. The same ``seed`` gives byte-identical files; a
    record's content depends only on its name, ``seed``, ``seconds`` and ``fs``, not on which other records
    are requested. Names outside :data:`MITDB_RECORDS` get a generic beat mix. Duplicate names are written once.
    """
    if not seconds > 0 or not np.isfinite(seconds):
        raise InputError(f"synthetic ECG: seconds must be a positive number, got {seconds!r}")
    if int(fs) != fs or fs < 50:
        raise InputError(f"synthetic ECG: fs must be an integer of at least 50 Hz, got {fs!r}")
    names = list(dict.fromkeys(str(r) for r in records))
    for name in names:
        if not _RECORD_NAME.fullmatch(name):
            raise InputError(f"synthetic ECG: {name!r} is not a valid WFDB record name")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        _write_record(folder, name, float(seconds), int(seed), int(fs))
    return names
