"""Signal quality: the stretches of a lead where no QRS detector can be trusted, as WFDB noise annotations.

An annotator that labels every detected peak of a noisy stretch writes noise as beats (often as V); EC57 instead
lets an analyser declare a stretch unreadable: a noise annotation ``~`` whose subtype has bits 4 and 5 set
(0x30: both signals unreadable) starts a *shutdown*, the next ``~`` with those bits clear ends it, and ``bxb``
(and :func:`ecglib.ec57.compare`) count no test beat there: a reference beat in shutdown is an ``X`` (still a
missed beat for QRS sensitivity, reported apart as "beats missed in shutdown"), and the shutdown time is totalled.

The check, per one-second block of the lead, in the QRS band the detectors see (the feature of
:func:`ecglib.ec57.rpeaks.qrs_feature`: the band-passed slope, 5-20 Hz, integrated over 0.1 s):

- **noise**: the block's background, the lower quartile of the feature over 3 s, against the QRS level, the
  median feature height of the beats in clean blocks within a minute (the beats given, or detected). Clean ECG has
  a background of a few percent of its QRS level (P and T waves); a block whose background reaches
  ``noise_ratio`` of it holds noise as large as the QRS complexes it would have to find, and the stretch extends
  over the blocks next to it whose background is above ``extend_ratio`` (hysteresis: a burst rises and falls
  through the threshold);
- **flat line**: the raw lead moves less than ``flat_fraction`` of the QRS amplitude over the block and its
  neighbours (lead off, a disconnected electrode);
- **saturation**: the lead sits at its own extreme values (clipped by the recorder) for more than
  ``clip_fraction`` of the block.

Marked blocks are joined across gaps shorter than ``bridge`` seconds, and stretches shorter than ``min_duration``
seconds are dropped (a noise burst of a second does not stop a detector).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .rpeaks import qrs_feature, sorted_middle

SHUTDOWN_SUBTYPE = 0x30  # '~' subtype: signals 0 and 1 unreadable (bits 4 and 5), as bxb reads a shutdown start
CLEAR_SUBTYPE = 0  # '~' subtype that ends it
NOISE_SYMBOL = "~"


@dataclass(frozen=True)
class QualityParams:
    block: float = 1.0  # s
    context: int = 3  # blocks over which the background quantile is taken
    noise_ratio: float = 0.6  # background / QRS level above which a block is unreadable (benchmarks/select_quality.py)
    extend_ratio: float = 0.35  # an unreadable stretch extends over the blocks next to it above this ratio
    clean_ratio: float = 0.15  # blocks below this are clean: their beats set the QRS level
    level_window: float = 60.0  # s either side for the QRS level
    flat_fraction: float = 0.03  # peak-to-peak below this fraction of the QRS amplitude: flat line
    clip_fraction: float = 0.2  # fraction of a block at the lead's extreme values: saturated
    min_duration: float = 3.0  # s
    bridge: float = 2.0  # s


@dataclass
class QualityReport:
    """Per block (start sample ``block_start``): the background / QRS-level ratio, the flat and the saturated
    flags, and the unreadable flag; the merged unreadable ``intervals`` [(start, end) samples, end exclusive]."""

    block_start: np.ndarray
    ratio: np.ndarray
    flat: np.ndarray
    clipped: np.ndarray
    unreadable: np.ndarray
    intervals: list[tuple[int, int]]
    fs: float

    @property
    def seconds(self) -> float:
        return float(sum(e - s for s, e in self.intervals)) / self.fs


def _blocks(x: np.ndarray, b: int) -> np.ndarray:
    nb = int(np.ceil(len(x) / b))
    pad = nb * b - len(x)
    if pad:
        x = np.concatenate([x, np.full(pad, x[-1])])
    return x.reshape(nb, b)


def assess(signal: np.ndarray, fs: float, beats: np.ndarray | None = None,
           params: QualityParams | None = None, feature: np.ndarray | None = None) -> QualityReport:
    """The quality of one lead (n,) at fs. beats: R-peak samples (None: found with ecglib.ec57.detect's default).
    feature: the lead's QRS feature (n,) where its detection computed it
    (:func:`ecglib.ec57.detect.detect_with_feature`), else None: computed here."""
    from scipy.ndimage import maximum_filter1d, percentile_filter

    from .detect import detect_with_feature

    p = params or QualityParams()
    x = np.asarray(signal, dtype=np.float64)
    n = len(x)
    if n == 0:
        raise InputError("quality: empty signal")
    if not (fs > 0):
        raise InputError(f"quality: sampling rate must be positive, got {fs!r}")
    if feature is not None and len(feature) != n:
        raise InputError(f"quality: the feature has {len(feature)} samples, the signal {n}")
    if beats is None:
        beats, found = detect_with_feature(x, fs)
        feature = feature if feature is not None else found
    b = max(1, int(round(p.block * fs)))
    f = feature if feature is not None else qrs_feature(x, fs)
    fb = _blocks(f, b)
    nb = fb.shape[0]
    starts = np.arange(nb) * b
    # background: lower quartile of the feature over `context` blocks
    q25 = _row_percentile(fb, 25)
    ctx = max(1, p.context)
    background = percentile_filter(q25, 50, size=ctx, mode="nearest") if ctx > 1 else q25
    beats = np.asarray(beats, dtype=np.int64)
    beats = beats[(beats >= 0) & (beats < n)]
    # QRS level: median feature height of beats in clean blocks within level_window (all beats as a fallback)
    if len(beats):
        h = f[beats]
        bb = beats // b
        first = background[bb] / np.maximum(h, 1e-12)
        clean = first < p.clean_ratio
        use_t, use_h = (beats[clean], h[clean]) if clean.sum() >= 5 else (beats, h)
        centres = starts + b // 2
        w = int(p.level_window * fs)
        lo = np.searchsorted(use_t, centres - w)
        hi = np.searchsorted(use_t, centres + w)
        level = np.full(nb, float(np.median(use_h)))
        enough = hi - lo >= 3
        level[enough] = _window_medians(use_h, lo[enough], hi[enough])
    else:
        level = np.full(nb, np.inf)  # no beats: no QRS level; only flat and clipped blocks are marked
    ratio = background / np.maximum(level, 1e-12)
    # flat: raw peak-to-peak over the block and its neighbours below flat_fraction of the QRS amplitude
    xb = _blocks(x, b)
    ptp = xb.max(axis=1) - xb.min(axis=1)
    ptp_ctx = maximum_filter1d(ptp, size=3, mode="nearest")
    if len(beats):
        r = max(1, int(0.05 * fs))
        idx = np.clip(beats[:, None] + np.arange(-r, r + 1), 0, n - 1)
        qrs_amp = float(np.median(x[idx].max(axis=1) - x[idx].min(axis=1)))
    else:
        qrs_amp = float(np.percentile(ptp, 90))
    flat = ptp_ctx < p.flat_fraction * qrs_amp
    # saturation: samples at the lead's own extremes (a run of equal extreme values)
    lo_v, hi_v = float(np.min(x)), float(np.max(x))
    span = hi_v - lo_v
    if span > 0:
        at_rail = (x <= lo_v + 1e-3 * span) | (x >= hi_v - 1e-3 * span)
        # a single sample at the record's extreme is no clipping: require runs of 20 ms
        run = max(1, int(0.02 * fs))
        sustained = _opening(at_rail, run)
        clipped = _blocks(sustained.astype(float), b).mean(axis=1) > p.clip_fraction
    else:
        clipped = np.zeros(nb, dtype=bool)
        flat = np.ones(nb, dtype=bool)
    bad = _extend(ratio > p.noise_ratio, ratio > min(p.extend_ratio, p.noise_ratio)) | flat | clipped
    intervals = _merge_blocks(bad, b, n, p, fs)
    return QualityReport(starts, ratio, flat, clipped, bad, intervals, float(fs))


def _row_percentile(rows: np.ndarray, q: float) -> np.ndarray:
    """np.percentile(rows, q, axis=1) (its default, linear method), bit for bit: np.percentile of the two order
    statistics of each row around the quantile's position, (w - 1) q / 100, at the same fraction between them, so
    that numpy's own interpolation gives the value. Sorting the rows is several times faster than np.percentile's
    partition of them. A row holding a NaN is NaN, as np.percentile makes it."""
    width = rows.shape[1]
    position = (width - 1) * (q / 100)
    k = int(position)
    ordered = np.sort(rows, axis=1)
    pair = ordered[:, [k, min(k + 1, width - 1)]]
    out = np.percentile(pair, 100 * (position - k), axis=1)
    out[np.isnan(ordered[:, -1])] = np.nan  # np.sort puts NaN last
    return out


def _opening(at: np.ndarray, run: int) -> np.ndarray:
    """minimum_filter1d, then maximum_filter1d, of the flags ``at`` (size ``run``, mode "nearest"): the runs of at
    least ``run`` flagged samples. Computed around the flagged samples only (a lead sits at its own extremes for a
    handful of samples): over each group of them closer than 4 run, with 2 run samples either side (or to the
    lead's end), no window reaches a flagged sample outside the group, so the filters give there what they give
    over the whole lead, and nothing elsewhere. Many groups (a saturated lead): the whole lead at once."""
    from scipy.ndimage import maximum_filter1d, minimum_filter1d

    def opening(x: np.ndarray) -> np.ndarray:
        eroded = minimum_filter1d(x.astype(np.uint8), size=run, mode="nearest")
        return maximum_filter1d(eroded, size=run, mode="nearest").astype(bool)

    flagged = np.flatnonzero(at)
    cut = np.flatnonzero(np.diff(flagged) > 4 * run) + 1
    if len(cut) > 64:
        return opening(at)
    out = np.zeros(len(at), dtype=bool)
    if len(flagged) == 0:
        return out
    for first, last in zip(flagged[np.r_[0, cut]].tolist(), flagged[np.r_[cut - 1, len(flagged) - 1]].tolist()):
        a, b = max(0, first - 2 * run), min(len(at), last + 1 + 2 * run)
        out[a:b] = opening(at[a:b])
    return out


def _window_medians(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, batch: int = 1 << 21) -> np.ndarray:
    """np.median(values[lo[i]:hi[i]]) for each i (hi > lo), bit for bit, without a call per window (a block a
    second: tens of thousands of calls on a Holter): the windows as rows padded with +inf, sorted, and the middle
    element, or the mean of the middle two, by each row's count, as np.median takes them ((a + b) / 2). A window
    holding a NaN is NaN, as np.median makes it. Rows go in batches of about ``batch`` elements (bounded memory)."""
    values = np.asarray(values, dtype=np.float64)
    count = hi - lo
    out = np.empty(len(lo))
    if len(lo) == 0:
        return out
    width = int(count.max())
    padded = np.append(values, np.inf)  # index len(values): the padding
    step = max(1, batch // width)
    cols = np.arange(width)
    for s in range(0, len(lo), step):
        c, start = count[s:s + step], lo[s:s + step]
        rows = padded[np.where(cols < c[:, None], start[:, None] + cols, len(values))]
        rows.sort(axis=1)
        out[s:s + step] = sorted_middle(rows, c)
    nans = np.concatenate(([0], np.cumsum(np.isnan(values))))
    out[nans[hi] > nans[lo]] = np.nan
    return out


def _extend(core: np.ndarray, weak: np.ndarray) -> np.ndarray:
    """Hysteresis: every run of consecutive ``weak`` blocks that holds a ``core`` block (noise rises into and falls
    out of a burst through the threshold; the blocks on its flanks are as unreadable as its peak)."""
    out = core.copy()
    run = np.cumsum(~weak)  # constant over each run of consecutive weak blocks, different between runs
    ids = np.unique(run[core & weak])
    return out | (weak & np.isin(run, ids))


def _merge_blocks(bad: np.ndarray, b: int, n: int, p: QualityParams, fs: float) -> list[tuple[int, int]]:
    runs: list[list[int]] = []
    for i in np.flatnonzero(bad).tolist():
        s, e = i * b, min(n, (i + 1) * b)
        if runs and s - runs[-1][1] < p.bridge * fs:
            runs[-1][1] = e
        else:
            runs.append([s, e])
    return [(s, e) for s, e in runs if e - s >= p.min_duration * fs]


def noise_intervals(signal: np.ndarray, fs: float, beats: np.ndarray | None = None,
                    params: QualityParams | None = None, feature: np.ndarray | None = None
                    ) -> list[tuple[int, int]]:
    """The unreadable stretches of one lead (n,) at fs: [(start, end)] samples, end exclusive, in time order
    (:func:`assess`'s arguments)."""
    return assess(signal, fs, beats, params, feature).intervals


def noise_annotations(intervals: list[tuple[int, int]], sig_len: int | None = None) -> list[tuple[int, str, int]]:
    """WFDB annotations (sample, symbol, subtype) for unreadable stretches: '~' with subtype 0x30 (shutdown) at
    each start and '~' with subtype 0 (readable again) at each end; an end at the record's last sample or beyond
    is left out (shutdown to the end of the record, which bxb reads as such)."""
    out: list[tuple[int, str, int]] = []
    for s, e in intervals:
        out.append((int(s), NOISE_SYMBOL, SHUTDOWN_SUBTYPE))
        if sig_len is None or e < sig_len:
            out.append((int(e), NOISE_SYMBOL, CLEAR_SUBTYPE))
    return out


def outside_noise(sample: np.ndarray, intervals: list[tuple[int, int]]) -> np.ndarray:
    """Whether each sample (k,) lies outside every interval [(start, end)], its end included: no beat is kept at
    the '~' mark that closes a stretch (bxb reads the annotation after a shutdown start as its end)."""
    sample = np.asarray(sample)
    keep = np.ones(len(sample), dtype=bool)
    for s, e in intervals:
        keep &= (sample < s) | (sample > e)
    return keep


def merge_with_beats(sample: np.ndarray, symbol, intervals: list[tuple[int, int]], sig_len: int | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Beat annotations (sample (k,), symbol (k,)) merged with the noise annotations of ``intervals``: beats inside
    an unreadable stretch are dropped (bxb reads the annotation after a shutdown start as its end), the '~' marks
    added. Returns (sample, symbol, subtype), in time order, for wfdb.wrann or ecglib.ec57.compare."""
    sample = np.asarray(sample, dtype=np.int64)
    symbol = np.asarray(symbol, dtype=object)
    keep = outside_noise(sample, intervals)
    marks = noise_annotations(intervals, sig_len)
    rows = [(int(t), str(c), 0) for t, c in zip(sample[keep], symbol[keep])] + marks
    rows.sort(key=lambda r: (r[0], r[1] != NOISE_SYMBOL))
    # WFDB allows one annotation per sample and channel here: nudge a collision by one sample
    out_s, out_c, out_t = [], [], []
    last = -1
    for t, c, st in rows:
        t = max(t, last + 1)
        out_s.append(t)
        out_c.append(c)
        out_t.append(st)
        last = t
    return np.asarray(out_s, dtype=np.int64), np.asarray(out_c, dtype=str), np.asarray(out_t, dtype=np.int64)
