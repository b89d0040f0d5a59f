"""ecglib's R-peak detector: one lead, any sampling rate, clean or noisy.

Everything is in seconds, so that the detector is the same at 128, 250 or 360 Hz:

1. feature: the lead band-passed to 5-20 Hz (Butterworth, order 2, forward and backward so that nothing shifts),
   the absolute value of its slope, integrated over a centred 0.1-s window (Hamilton & Tompkins 1986 integrate
   the absolute slope; the square of Pan & Tompkins 1985 makes a ventricular beat twice the height of a normal one
   into four times its feature, and the normal beats after it fall under the threshold);
2. first pass (``adaptive``): the feature's peaks at least 0.2 s apart, judged in turn against a threshold 0.3125 of
   the way from the median of the last eight noise peaks to the median of the last eight QRS peaks, with a 0.2-s
   refractory period, T-wave rejection (a peak within 0.36 s of a QRS whose slope is under half that QRS's) and
   search-back (after 1.5 mean RR intervals without a beat, the largest peak in between above half the threshold);
3. second pass, dynamic programming over the feature's peaks at least 0.12 s apart (offline, so it sees both sides
   of every beat): the chain of beats that maximises the sum of each beat's evidence minus the cost of each RR
   interval. Evidence: the log of the peak's height over 0.3 times the local QRS level (rolling median of the
   beat heights of the previous pass, capped), plus up to 1 for a QRS shape (the largest normalised correlation,
   over +-50 ms of lag, of the 1-30 Hz band-passed lead over +-0.2 s with the local templates: per 30-s block, the
   median of the clean beats around it and up to two more shapes that it leaves unmatched, so that ventricular
   beats have a template of their own), minus up to 1 for a shape unlike every template (not for peaks twice the
   QRS level or more), plus 0.5 when the first pass accepted it. Interval cost, in units of the expected RR (the
   rolling median of pair-averaged RR intervals of the nearest *clean* beats, those whose 5-20 Hz background is
   under 0.2 of the QRS level, so that the rhythm inside a noise burst is taken from around it): 3 (0.7 - q)/0.7
   below 0.7, (q - 1.4) above 1.4 up to 1, nothing between; intervals under 0.2 s impossible. Two rounds, each
   with the levels of the previous one;
4. alignment (:func:`align_peaks`): each beat moves to the largest |5-20 Hz band-passed lead| within +-60 ms.

Why: on the 48 MIT-BIH records (bxb's rules), the first pass alone reaches the best QRS sensitivity but fires on
noise (muscle noise at 12 dB: +P 96.5 %; electrode motion: 92-93 %); the second pass trades a little
sensitivity on clean records for +P 99 % at 12 dB, because noise that looks like a QRS complex rarely also keeps
the rhythm and the shape of the beats around it. The numbers are in ``benchmarks/bench_detectors.py``'s table.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..data.checks import bridge_invalid
from ..errors import InputError

ALIGN_BAND = (5.0, 20.0)  # Hz: the band whose dominant extremum is the fiducial point
ALIGN_RADIUS = 0.06  # s either side of a detected peak


def bandpass_sos(fs: float, band: tuple[float, float], order: int = 2) -> np.ndarray:
    """The Butterworth band-pass of :func:`bandpass` as second-order sections: the upper edge kept below 0.45 fs
    and the lower below half the upper, so that any rate gets a filter."""
    from scipy.signal import butter

    hi = min(band[1], 0.45 * fs)
    return butter(order, [min(band[0], 0.5 * hi), hi], btype="bandpass", fs=fs, output="sos")


def bandpass(x: np.ndarray, fs: float, band: tuple[float, float], order: int = 2) -> np.ndarray:
    """Zero-phase Butterworth band-pass (sosfiltfilt) of x (n,) (:func:`bandpass_sos`)."""
    from scipy.signal import sosfiltfilt

    sos = bandpass_sos(fs, band, order)
    if len(x) <= 3 * (2 * len(sos) + 1):  # too short for filtfilt's padding
        return np.asarray(x, dtype=np.float64) - np.mean(x)
    return sosfiltfilt(sos, x)


def _rolling_median(x: np.ndarray, k: int) -> np.ndarray:
    from scipy.ndimage import median_filter

    return median_filter(x, size=k, mode="nearest") if len(x) else x


# --------------------------------------------------------------------------------------- the ecglib detector
@dataclass(frozen=True)
class DetectorParams:
    """The ecglib detector's settings (seconds, Hz, ratios); the defaults are the measured choice."""

    band: tuple[float, float] = (5.0, 20.0)  # QRS band of the feature
    integration: float = 0.10  # s, centred moving window over the absolute slope
    refractory: float = 0.20  # s
    # first pass (Hamilton & Tompkins)
    threshold: float = 0.3125
    history: int = 8
    twave_window: float = 0.36
    twave_slope: float = 0.5
    slope_window: float = 0.06
    searchback_rr: float = 1.5
    searchback_threshold: float = 0.5
    # second pass (dynamic programming)
    rounds: int = 2
    candidate_distance: float = 0.12  # s between the feature peaks considered
    min_level: float = 0.08  # feature peaks under this fraction of the QRS level are not considered
    theta: float = 0.3  # height (fraction of the QRS level) of neutral amplitude evidence
    cap: float = 1.0  # amplitude evidence is capped at cap - log(theta)
    short_cost: float = 3.0  # interval cost below q_lo: short_cost * (q_lo - q) / q_lo
    q_lo: float = 0.7
    long_cost: float = 1.0  # interval cost above q_hi: long_cost * min(q - q_hi, long_sat)
    q_hi: float = 1.4
    long_sat: float = 1.0
    window: float = 4.0  # s: longest interval weighed directly (longer ones pay the saturated long cost)
    first_bonus: float = 0.5  # evidence for a peak the first pass accepted
    clean_floor: float = 0.2  # background / QRS level under which a beat is clean (sets rhythm and templates)
    # shape evidence
    shape_weight: float = 1.0
    shape_neutral: float = 0.85  # correlation of neutral shape evidence
    shape_band: tuple[float, float] = (1.0, 30.0)
    shape_half: float = 0.2  # s: half-width of the correlation window
    shape_lag: float = 0.05  # s
    shape_block: float = 30.0  # s: templates per block
    shape_templates: int = 3
    shape_split: float = 0.8  # a beat correlating less than this with every template seeds another
    shape_min_cluster: int = 3
    shape_big: float = 2.0  # peaks this many times the QRS level are not penalised for their shape


def _features(b: np.ndarray, fs: float, p: DetectorParams) -> tuple[np.ndarray, np.ndarray]:
    """(absolute slope of the lead band-passed to p.band, ``b``, and its centred moving average: the QRS
    feature), each (n,)."""
    from scipy.ndimage import uniform_filter1d

    slope = np.gradient(b)
    np.abs(slope, out=slope)
    slope *= fs
    f = uniform_filter1d(slope, size=max(1, int(round(p.integration * fs))), mode="nearest")
    return slope, f


def qrs_feature(signal: np.ndarray, fs: float, params: DetectorParams | None = None) -> np.ndarray:
    """The QRS feature (n,) of one lead: its 5-20 Hz absolute slope integrated over 0.1 s (units of the lead per
    second); QRS complexes are its peaks, and what lies between them is noise, P and T waves."""
    p = params or DetectorParams()
    return _features(bandpass(np.asarray(signal, dtype=np.float64), float(fs), p.band), float(fs), p)[1]


def _first_pass(f: np.ndarray, slope: np.ndarray, fs: float, p: DetectorParams) -> np.ndarray:
    """Hamilton & Tompkins' decision rules on the feature's peaks: adaptive threshold between the running medians
    of QRS and noise peak heights, refractory period, T-wave rejection by slope, search-back."""
    from scipy.signal import find_peaks

    n = len(f)
    refr = max(1, int(round(p.refractory * fs)))
    cand, _ = find_peaks(f, distance=refr)
    if len(cand) == 0:
        return cand.astype(np.int64)
    heights = f[cand]
    # the largest slope within +-slope_window of each peak (a maximum filter in mode "nearest", at the peaks only)
    sw = max(1, int(round(p.slope_window * fs)))
    smax_arr = slope[np.clip(cand[:, None] + np.arange(-sw, sw + 1), 0, n - 1)].max(axis=1)
    # Initial levels from the first 8 s: the median of each second's largest peak as QRS, half the median peak
    # as noise.
    first = cand < min(n, int(8 * fs))
    init = heights[first] if first.any() else heights[:8]
    tops = [heights[(cand >= int(k * fs)) & (cand < int((k + 1) * fs))] for k in range(8)]
    tops = [t.max() for t in tops if len(t)]
    qrs_hist = [float(np.median(tops) if tops else init.max())] * p.history
    noise_hist = [float(np.median(init) * 0.5)] * p.history
    rr_hist = [fs * 0.8] * p.history
    beats: list[int] = []
    beat_slope: list[float] = []
    tw = int(round(p.twave_window * fs))
    height = heights.tolist()
    smax = smax_arr.tolist()
    times = cand.tolist()
    mid = p.history // 2
    sb_best = -1  # the highest peak since the last beat that refractory period and T-wave rule allow

    def median(values: list) -> float:
        v = sorted(values)
        return (v[mid] + v[~mid]) / 2.0

    # The levels and the search-back interval change only with their histories: kept, not recomputed per peak.
    qrs_level, noise_level = median(qrs_hist), median(noise_hist)
    searchback = p.searchback_rr * sum(rr_hist) / len(rr_hist)

    def allowed(k: int) -> bool:
        if not beats:
            return True
        dt = times[k] - beats[-1]
        return dt >= refr and not (dt < tw and smax[k] < p.twave_slope * beat_slope[-1])

    def accept(k: int, h: float) -> None:
        nonlocal rr_hist, qrs_hist, sb_best, qrs_level, searchback
        if beats:
            rr_hist = rr_hist[1:] + [times[k] - beats[-1]]
            searchback = p.searchback_rr * sum(rr_hist) / len(rr_hist)
        beats.append(times[k])
        beat_slope.append(smax[k])
        qrs_hist = qrs_hist[1:] + [h]
        qrs_level = median(qrs_hist)
        sb_best = -1

    for k in range(len(times)):
        th = noise_level + p.threshold * (qrs_level - noise_level)
        if height[k] > th and allowed(k):
            accept(k, height[k])
            continue
        if beats and sb_best >= 0 and times[k] - beats[-1] > searchback \
                and height[sb_best] > p.searchback_threshold * th:
            # search back: the highest allowed peak since the last beat was a missed one
            accept(sb_best, 0.25 * height[sb_best] + 0.75 * qrs_level)
            if height[k] > th and allowed(k):
                accept(k, height[k])
                continue
        noise_hist = noise_hist[1:] + [height[k]]
        noise_level = median(noise_hist)
        if allowed(k) and (sb_best < 0 or height[k] > height[sb_best]):
            sb_best = k
    return np.asarray(beats, dtype=np.int64)


def _background(f: np.ndarray, fs: float, block: float = 0.1, span: float = 2.0
                ) -> Callable[[np.ndarray], np.ndarray]:
    """The feature's background, a function of samples ``at``: the lower quartile of 0.1-s block means over 2 s (a
    quartile, not the median, so that a fast rhythm whose QRS complexes fill a third of the time still reads as
    clean). Made once for the rounds of the second pass, which look it up at their beats."""
    from scipy.ndimage import percentile_filter

    b = max(1, int(round(block * fs)))
    nb = len(f) // b
    if nb < 1:
        level = float(np.median(f))
        return lambda at: np.full(len(at), level)
    means = f[: nb * b].reshape(nb, b).mean(axis=1)
    floor = percentile_filter(means, 25, size=max(3, int(round(span / block)) | 1), mode="nearest")
    return lambda at: floor[np.clip(at // b, 0, nb - 1)]


def _expected_rr(beats: np.ndarray, clean: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Expected RR (samples) at ``at``: the rolling median (9) of pair-averaged RR intervals over the clean beats
    (a beat whose neighbours are clean too), interpolated; all beats when fewer than 5 are clean."""
    rr = np.diff(beats).astype(np.float64)
    if len(rr) < 2:
        return np.full(len(at), float(rr[0]) if len(rr) else 1.0)
    pair = (rr[:-1] + rr[1:]) / 2
    mid = beats[1:-1]
    ok = clean[:-2] & clean[1:-1] & clean[2:]
    if ok.sum() < 5:
        return np.interp(at, mid, _rolling_median(pair, 9))
    return np.interp(at, mid[ok], _rolling_median(pair[ok], 9))


def _unit_windows(wins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Windows (k, w) made zero-mean and unit-norm, row by row, and which rows have a nonzero norm (the others are
    left zero and are not templates' material)."""
    z = wins - wins.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(z, axis=1)
    nonzero = norms > 0
    z[nonzero] /= norms[nonzero, None]
    return z, nonzero


def sorted_middle(rows: np.ndarray, count: np.ndarray | int) -> np.ndarray:
    """The median of each sorted row (n, w) of which the first ``count`` (n,) elements count: the middle one, or the
    mean of the middle two, (a + b) / 2, as np.median takes them (so bit for bit np.median's)."""
    count = np.broadcast_to(np.asarray(count), (len(rows),))
    k = np.arange(len(rows))
    a, b = rows[k, (count - 1) // 2], rows[k, count // 2]
    return np.where(count % 2 == 1, a, (a + b) / 2)


def _column_medians(z: np.ndarray) -> np.ndarray:
    """np.median(z, axis=0) of a finite z (k, w), bit for bit. Sorting the columns as contiguous rows is several
    times faster than np.median's partition along the first axis."""
    cols = np.ascontiguousarray(z.T)
    cols.sort(axis=1)
    return sorted_middle(cols, len(z))


def _cluster_templates(z: np.ndarray, p: DetectorParams) -> list[np.ndarray]:
    """Up to shape_templates unit-norm, zero-mean templates of unit windows (k, w) (:func:`_unit_windows`' nonzero
    rows): the median of all, then the median of those matching no template yet (correlation below shape_split),
    while shape_min_cluster are left."""
    out: list[np.ndarray] = []
    rest = z
    while len(rest) >= (5 if not out else p.shape_min_cluster) and len(out) < p.shape_templates:
        t = _column_medians(rest)
        t = t - t.mean()
        nt = np.linalg.norm(t)
        if nt == 0:
            break
        t = t / nt
        out.append(t)
        rest = rest[rest @ t < p.shape_split]
    return out


@dataclass
class _Block:
    """One block's inputs and results in a call of :class:`_ShapeCorrelation`."""

    near: np.ndarray  # the seeds its templates are made from
    found: list[np.ndarray] | None  # the templates made from them (None: too few seeds)
    templates: list[np.ndarray]  # the templates used: found, else the last block's
    at: np.ndarray  # its candidates
    values: np.ndarray | None  # their correlations (None: none computed)


class _ShapeCorrelation:
    """The shape evidence's correlation (module docstring, step 3) over the rounds of the second pass, for one lead
    band-passed to shape_band, ``bm`` (n,).

    A call ``(seeds, at)`` gives, for each sample in ``at`` (sorted), the largest normalised correlation, within
    +-shape_lag, of the window of ``bm`` around it with the templates of its block (made from the ``seeds``, clean
    beats, of the block and half a block either side, each aligned at its largest |bm|); 1 where no template could
    be made.

    Per block, ``correlate`` runs over the block with a margin for the window and the lag (``seg``; zero-padded
    where the record ends): numpy's direct 1-D correlation is fast, and copying out the windows at the samples
    needed costs more than it saves. The normalisation (the window's standard deviation times its length, from
    cumulative sums over ``seg``, the window clipped to ``seg``) and the maximum over the lags are computed at
    ``at`` and its lag neighbours only, those clipped to ``seg`` as a maximum filter in mode "nearest" clips them:
    the same values as over the whole segment, for well under half of its samples.

    A round's beats are mostly those of the round before, and so are the seeds and the candidates of most blocks: a
    block whose seeds are those of the previous call keeps its templates, and one whose templates and candidates
    are too keeps its values (the same computation from the same inputs), which saves most of a second round."""

    def __init__(self, bm: np.ndarray, fs: float, p: DetectorParams) -> None:
        self.bm, self.p = bm, p
        self.hw = max(2, int(round(p.shape_half * fs)))
        self.r = max(1, int(round(p.shape_lag * fs)))
        self.block = max(int(p.shape_block * fs), 1)
        self.last: dict[int, _Block] = {}  # the previous call's blocks by their start
        self.last_windows = (np.empty(0, dtype=np.int64), np.empty((0, 2 * self.hw + 1)), np.empty(0, dtype=bool))

    def __call__(self, seeds: np.ndarray, at: np.ndarray) -> np.ndarray:
        bm, p, hw, r, block = self.bm, self.p, self.hw, self.r, self.block
        n = len(bm)
        out = np.ones(len(at))
        valid = seeds[(seeds >= hw + r) & (seeds < n - hw - r)]
        if len(valid):
            idx = valid[:, None] + np.arange(-r, r + 1)
            valid = idx[np.arange(len(valid)), np.argmax(np.abs(bm[idx]), axis=1)]
        unit, nonzero = self._windows(valid)
        templates: list[np.ndarray] = []
        blocks: dict[int, _Block] = {}
        for start in range(0, n, block):
            end = min(n, start + block)
            pick = (valid >= start - block // 2) & (valid < end + block // 2)
            near = valid[pick]
            last = self.last.get(start)
            found = None
            if len(near) >= 5:
                if last is not None and last.found is not None and np.array_equal(near, last.near):
                    found = last.found
                else:
                    found = _cluster_templates(unit[pick & nonzero], p)
                if found:
                    templates = found
            lo, hi = np.searchsorted(at, [start, end])
            values = None
            if templates and hi > lo:
                if last is not None and templates is last.templates and last.values is not None \
                        and np.array_equal(at[lo:hi], last.at):
                    values = last.values
                else:
                    values = self._values(templates, start, end, at[lo:hi])
                out[lo:hi] = values
            blocks[start] = _Block(near, found, templates, at[lo:hi], values)
        self.last = blocks
        return out

    def _windows(self, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:func:`_unit_windows` of the windows at the (aligned) seeds ``valid``, each made once per call (a block's
        templates take the seeds of two blocks' time) and taken from the previous call where it had the seed."""
        hw = self.hw
        seen, seen_unit, seen_nonzero = self.last_windows
        unit = np.empty((len(valid), 2 * hw + 1))
        nonzero = np.empty(len(valid), dtype=bool)
        j = np.minimum(np.searchsorted(seen, valid), max(len(seen) - 1, 0))
        known = seen[j] == valid if len(seen) else np.zeros(len(valid), dtype=bool)
        unit[known], nonzero[known] = seen_unit[j[known]], seen_nonzero[j[known]]
        new = ~known
        unit[new], nonzero[new] = _unit_windows(self.bm[valid[new, None] + np.arange(-hw, hw + 1)])
        self.last_windows = (valid, unit, nonzero)
        return unit, nonzero

    def _values(self, templates: list[np.ndarray], start: int, end: int, at: np.ndarray) -> np.ndarray:
        """The correlations at ``at`` (k,), samples of the block [start, end)."""
        from scipy.signal import correlate

        bm, hw, r = self.bm, self.hw, self.r
        # the block with a margin for the window and the lag
        a, b = max(0, start - hw - r), min(len(bm), end + hw + r)
        seg = bm[a:b]
        c1, c2 = np.zeros(len(seg) + 1), np.zeros(len(seg) + 1)
        np.cumsum(seg, out=c1[1:])
        np.cumsum(seg * seg, out=c2[1:])
        centre = np.minimum(np.maximum((at - a)[:, None] + np.arange(-r, r + 1), 0), len(seg) - 1)  # (k, 2 r + 1)
        lo = np.maximum(centre - hw, 0)
        hi = np.minimum(centre + hw + 1, len(seg))
        s1, s2 = c1[hi] - c1[lo], c2[hi] - c2[lo]
        den = np.sqrt(np.maximum(s2 - s1 * s1 / (hi - lo), 1e-20))
        best = np.full(centre.shape, -1.0)
        for template in templates:
            best = np.maximum(best, correlate(seg, template, mode="same", method="direct")[centre] / den)
        return best.max(axis=1)


@dataclass
class _Programme:
    """One run of :func:`_select`: its inputs and each candidate's best score and predecessor."""

    cand: np.ndarray
    reward: np.ndarray
    expected: np.ndarray
    best: list[float]
    back: list[int]


def _select(cand: np.ndarray, reward: np.ndarray, expected: np.ndarray, fs: float, p: DetectorParams,
            previous: _Programme | None = None) -> tuple[np.ndarray, _Programme | None]:
    """The chain of candidates (sorted samples) maximising the sum of rewards minus interval costs (module
    docstring, step 3), and the run's programme.

    A candidate weighs the chains ending at most ``window`` before it and a refractory period or more before it, a
    few dozen: the costs of all those pairs are one array computation, and the dynamic programme is a loop over
    Python floats whose inner maximum runs in builtins (map, max, index). The arithmetic is that of the array form,
    in the same order, so the scores are the same IEEE doubles; the predecessor is the first best one (argmax's
    rule). Rewards are finite (the feature is positive at its peaks) and expected intervals at least one sample.

    A candidate's score depends on the inputs of those before it only: the scores of the candidates before the
    first whose inputs differ from the ``previous`` run's (the last round's) are that run's."""
    from operator import sub

    k_all = len(cand)
    if k_all == 0:
        return cand, None
    cand = np.asarray(cand, dtype=np.int64)
    reward = np.asarray(reward, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    done = 0
    if previous is not None:
        m = min(k_all, len(previous.cand))
        differ = (cand[:m] != previous.cand[:m]) | (reward[:m] != previous.reward[:m]) \
            | (expected[:m] != previous.expected[:m])
        done = int(np.argmax(differ)) if differ.any() else m
    restart = p.long_cost * p.long_sat  # a chain may start, or resume after a long gap, at this cost
    # Each candidate's window, lo..hi-1: the candidates at most window and at least refractory before it, from the
    # whole samples between them (an integer d is > w exactly when it is > floor(w), and >= w when >= ceil(w)).
    at = np.arange(k_all)
    lo = np.minimum(np.searchsorted(cand, cand - math.floor(p.window * fs), "left"), at)[done:]
    hi = np.minimum(np.searchsorted(cand, cand - math.ceil(p.refractory * fs), "right"), at)[done:]
    hi = np.maximum(hi, lo)
    width = hi - lo
    offset = np.concatenate(([0], np.cumsum(width)))
    pair_i = np.repeat(at[done:], width)
    pair_j = np.arange(offset[-1]) - np.repeat(offset[:-1] - lo, width)
    t = cand.astype(np.float64)
    q = (t[pair_i] - t[pair_j]) / expected[pair_j]
    cost = np.where(q < p.q_lo, p.short_cost * (p.q_lo - q) / p.q_lo, 0.0)
    m = q - p.q_hi
    cost = np.where(m > 0.0, cost + p.long_cost * np.minimum(m, p.long_sat), cost)
    costs = cost.tolist()
    offsets = offset.tolist()
    best: list[float] = previous.best[:done] if done else []
    back: list[int] = previous.back[:done] if done else []
    gone = 0  # the candidates before gone have left every later window
    old_best, old_arg = -math.inf, -1  # the best chain ending before the window
    for a, b, o, o_end, g in zip(lo.tolist(), hi.tolist(), offsets, offsets[1:], reward[done:].tolist()):
        while gone < a:
            if best[gone] > old_best:
                old_best, old_arg = best[gone], gone
            gone += 1
        score, arg = -restart, -1
        if old_best - restart > score:
            score, arg = old_best - restart, old_arg
        if b > a:
            s = list(map(sub, best[a:b], costs[o:o_end]))
            top = max(s)
            if top > score:
                score, arg = top, a + s.index(top)
        best.append(score + g)
        back.append(arg)
    i = int(np.argmax(best))
    chosen = []
    while i >= 0:
        chosen.append(i)
        i = back[i]
    return cand[np.asarray(chosen[::-1], dtype=np.int64)], _Programme(cand, reward, expected, best, back)


def nearest_distance(peaks: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The distance (samples) from each sample of ``at`` to the nearest of the sorted, non-empty ``peaks``."""
    j = np.searchsorted(peaks, at)
    return np.minimum(np.abs(at - peaks[np.maximum(j - 1, 0)]), np.abs(peaks[np.minimum(j, len(peaks) - 1)] - at))


def _second_pass(x: np.ndarray, f: np.ndarray, first: np.ndarray, fs: float, p: DetectorParams) -> np.ndarray:
    from scipy.signal import find_peaks

    cand, _ = find_peaks(f, distance=max(1, int(round(p.candidate_distance * fs))))
    if len(first) < 4 or len(cand) == 0:
        return first
    bm = bandpass(x, fs, p.shape_band) if p.shape_weight > 0 else None
    near_first = np.zeros(len(cand), dtype=bool)
    if p.first_bonus:
        near_first = nearest_distance(first, cand) <= max(1, int(0.05 * fs))
    shape = _ShapeCorrelation(bm, fs, p) if bm is not None else None
    programme = None
    background = _background(f, fs)
    beats = first
    for _ in range(p.rounds):
        heights = _rolling_median(f[beats], 9)
        clean = background(beats) < p.clean_floor * heights
        level = np.interp(cand, beats, heights)
        keep = f[cand] >= p.min_level * level
        c, lv = cand[keep], level[keep]
        h = f[c]
        expected = np.interp(c, beats, _expected_rr(beats, clean, beats))
        reward = np.minimum(np.log(h / (p.theta * lv)), p.cap - math.log(p.theta))
        if shape is not None:
            strong = clean & (f[beats] >= 0.5 * heights)
            corr = shape(beats[strong], c)
            m = np.clip((corr - p.shape_neutral) / (1.0 - p.shape_neutral), -1.0, 1.0)
            big = np.clip(np.log(h / lv) / math.log(p.shape_big), 0.0, 1.0)
            reward = reward + p.shape_weight * np.where(m > 0, m, m * (1.0 - big))
        reward = reward + p.first_bonus * near_first[keep]
        beats, programme = _select(c, reward, expected, fs, p, programme)
        if len(beats) < 4:
            break
    return beats


def prepare(signal: np.ndarray, fs: float) -> tuple[np.ndarray, float]:
    """One lead as float64 (n,) and its rate, checked; non-finite samples bridged linearly."""
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 1:
        raise InputError(f"detector: one lead (n,) expected, got an array of shape {x.shape}")
    if not (fs > 0 and math.isfinite(fs)):
        raise InputError(f"detector: sampling rate must be a positive number, got {fs!r}")
    if not np.isfinite(x).all():
        if not np.isfinite(x).any():
            raise InputError("detector: no finite samples")
        x = bridge_invalid(x.copy(), "detector", "given")
    return x, float(fs)


def detect_adaptive(signal: np.ndarray, fs: float, params: DetectorParams | None = None) -> np.ndarray:
    """The first pass of the ecglib detector alone (Hamilton & Tompkins' rules on the integrated 5-20 Hz absolute
    slope), its peaks aligned (:func:`align_peaks`). signal (n,), fs Hz -> samples (k,) int64."""
    x, fs = prepare(signal, fs)
    p = params or DetectorParams()
    if len(x) < int(fs):
        return np.empty(0, dtype=np.int64)
    b = bandpass(x, fs, p.band)
    slope, f = _features(b, fs, p)
    return align_peaks(x, fs, _first_pass(f, slope, fs, p), filtered=_align_band(x, fs, p, b))


@dataclass(frozen=True)
class Detection:
    """What ecglib's detector found in one lead, with what it computed on the way that its callers reuse rather
    than compute again (filtering is most of the quality check's time and a good part of the detector's)."""

    peaks: np.ndarray  # (k,) int64, sorted: the R peaks, aligned
    aligned: np.ndarray | None  # (n,) the lead band-passed to ALIGN_BAND, which aligned them (None: lead too short)
    feature: np.ndarray | None  # (n,) the QRS feature (qrs_feature's, with the detector's params; None likewise)


def ecglib_detection(signal: np.ndarray, fs: float, params: DetectorParams | None = None) -> Detection:
    """:func:`detect_ecglib`'s peaks with the band-passed lead and the feature it computed them from, of the lead
    as :func:`prepare` makes it (non-finite samples bridged)."""
    x, fs = prepare(signal, fs)
    p = params or DetectorParams()
    if len(x) < int(fs):
        return Detection(np.empty(0, dtype=np.int64), None, None)
    b = bandpass(x, fs, p.band)
    slope, f = _features(b, fs, p)
    first = _first_pass(f, slope, fs, p)
    aligned = _align_band(x, fs, p, b)
    return Detection(align_peaks(x, fs, _second_pass(x, f, first, fs, p), filtered=aligned), aligned, f)


def detect_ecglib(signal: np.ndarray, fs: float, params: DetectorParams | None = None) -> np.ndarray:
    """ecglib's R-peak detector (module docstring): first pass, dynamic programming over amplitude, shape and
    rhythm, alignment. signal (n,) in any unit, fs Hz -> R-peak samples (k,) int64, sorted."""
    return ecglib_detection(signal, fs, params).peaks


def _align_band(x: np.ndarray, fs: float, p: DetectorParams, b: np.ndarray) -> np.ndarray:
    """The lead band-passed to ALIGN_BAND: the feature's band-passed lead ``b`` when the bands are the same (the
    default), which saves filtering the lead again."""
    return b if tuple(p.band) == ALIGN_BAND else bandpass(x, fs, ALIGN_BAND)


# ---------------------------------------------------------------------------------------------- alignment
def align_peaks(signal: np.ndarray, fs: float, peaks: np.ndarray, radius: float = ALIGN_RADIUS,
                band: tuple[float, float] = ALIGN_BAND, filtered: np.ndarray | None = None) -> np.ndarray:
    """Each peak moved to the dominant extremum (largest absolute value) of the lead band-passed to ``band`` within
    +-radius s: the R peak, or the deepest deflection of a QS complex, where MIT-BIH's reference annotations (and so
    the beats training cuts) sit. ``filtered``: the lead already band-passed to ``band`` (:func:`bandpass`), when
    at hand. Returns sorted unique samples (k' <= k) int64."""
    peaks = np.asarray(peaks, dtype=np.int64)
    if len(peaks) == 0:
        return peaks
    b = filtered if filtered is not None else bandpass(np.asarray(signal, dtype=np.float64), fs, band)
    r = max(1, int(round(radius * fs)))
    idx = np.clip(peaks[:, None] + np.arange(-r, r + 1), 0, len(b) - 1)
    return np.unique(idx[np.arange(len(peaks)), np.argmax(np.abs(b[idx]), axis=1)])


# ----------------------------------------------------------------------------------------------- polarity
POLARITY_BEATS = 500  # beats, evenly spread over the lead, whose QRS complexes decide its polarity
POLARITY_SPAN = 1.0  # s either side of each beat band-passed on its own


def lead_polarity(signal: np.ndarray, fs: float, peaks: np.ndarray) -> int:
    """+1 when the lead's QRS complexes point up, -1 when they point down: the sign of the median, over the beats, of
    the dominant extremum (largest absolute value) of the lead band-passed to ALIGN_BAND within +-ALIGN_RADIUS of
    each R peak, the point :func:`align_peaks` puts a detected peak on, so that detected and reference R peaks of the
    same beats give the same answer. Up to POLARITY_BEATS beats spread evenly over the lead are looked at, each
    from +-POLARITY_SPAN s of the lead filtered on its own (a 24-hour lead costs what a half-hour one does). +1 when
    no beat has the span inside the lead with finite samples around its peak."""
    from scipy.signal import sosfiltfilt

    x = np.asarray(signal, dtype=np.float64)
    span, r = int(round(POLARITY_SPAN * fs)), max(1, int(round(ALIGN_RADIUS * fs)))
    peaks = np.asarray(peaks, dtype=np.int64)
    peaks = peaks[(peaks >= span) & (peaks < len(x) - span)]
    if len(peaks) == 0:
        return 1
    if len(peaks) > POLARITY_BEATS:
        peaks = peaks[np.linspace(0, len(peaks) - 1, POLARITY_BEATS).round().astype(np.int64)]
    rows = sosfiltfilt(bandpass_sos(fs, ALIGN_BAND), x[peaks[:, None] + np.arange(-span, span + 1)], axis=1)
    near = rows[:, span - r:span + r + 1]
    extremum = near[np.arange(len(near)), np.argmax(np.abs(near), axis=1)]
    extremum = extremum[np.isfinite(extremum)]  # a beat near a gap of invalid samples has no say
    return 1 if len(extremum) == 0 or np.median(extremum) >= 0 else -1
