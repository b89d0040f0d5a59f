"""Rhythm events and the numbers of a Holter-style summary, as pure functions of beat times and classes.

Input everywhere: ``times`` (k,) the beats' R-peak times in seconds from the record's start, increasing, and
``classes`` (k,) their AAMI class letters ('N', 'S', 'V', 'F', 'Q'; anything else, e.g. '?' for a beat the model
could not classify, breaks every pattern); ``noise`` the intervals (start, end) in seconds marked as noise. No
files, no figures: :mod:`ecglib.report.record` draws and writes what these compute.

The definitions follow common Holter practice and ECG textbooks ("couplet = two, triplet = three successive
ectopic beats", "VT = three or more successive ventricular beats", "pause = RR > 2 s"); where practice varies
(the heart-rate window, the cycles that make a bigeminy) the choice is ecglib's. They are stated once, in
:data:`DEFINITIONS`, which the report prints in its footer (and docs/record-report.md):

- runs are maximal: a run of 5 V beats is one VT run, not a couplet and a triplet;
- a triplet is the shortest VT run (it is counted among the VT runs and named a triplet);
- bigeminy and trigeminy cycles end in a single V beat (an N beat, or two, then one V not followed by another V),
  so that no V beat is both in a couplet and in a bigeminy episode;
- an event that overlaps a noise interval is not reported (its beats, or the gap that looks like a pause, may be
  the noise's);
- heart rates leave out every RR interval that overlaps noise.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..data.facts import CLASSES

COUPLET, VT, SVT, BIGEMINY, TRIGEMINY, PAUSE = "couplet", "VT run", "SVT run", "bigeminy", "trigeminy", "pause"
EVENT_KINDS: tuple[str, ...] = (VT, COUPLET, SVT, BIGEMINY, TRIGEMINY, PAUSE)
MIN_RUN = 3  # beats: the shortest VT or SVT run
MIN_CYCLES = 3  # the fewest N-V (N-N-V) cycles that make a bigeminy (trigeminy) episode
PAUSE_SECONDS = 2.0  # an RR interval longer than this is a pause
HR_WINDOW = 10  # RR intervals: the heart rate of a beat is that of the 10 intervals ending at it
UNCERTAIN = 0.5  # a beat whose most probable class has a probability below this is "uncertain"

DEFINITIONS: dict[str, str] = {
    "heart rate": f"60 / mean RR over {HR_WINDOW} consecutive RR intervals, computed at every beat; the mean is "
                  "60 / mean RR of the whole record; minimum and maximum are those of the 10-interval rates. "
                  "RR intervals that overlap noise are left out.",
    "burden": "ectopic burden: S (or V) beats as a percentage of all classified beats.",
    COUPLET: "exactly 2 consecutive V beats.",
    VT: f"ventricular tachycardia run: {MIN_RUN} or more consecutive V beats (a run of exactly 3 is a triplet). "
        "Its rate is 60 / mean RR within the run; classical VT is faster than 100 bpm, a slower run is an "
        "idioventricular rhythm.",
    SVT: f"supraventricular tachycardia run: {MIN_RUN} or more consecutive S beats.",
    BIGEMINY: f"{MIN_CYCLES} or more consecutive cycles of one N beat then one single V beat (N-V N-V N-V).",
    TRIGEMINY: f"{MIN_CYCLES} or more consecutive cycles of two N beats then one single V beat (N-N-V N-N-V N-N-V).",
    PAUSE: f"an RR interval longer than {PAUSE_SECONDS:g} s (the event spans the beats before and after it).",
    "noise": "an event overlapping a noise interval is not reported.",
    "uncertain": f"a beat whose most probable class has a model probability below {UNCERTAIN:g}.",
}


@dataclass(frozen=True)
class Event:
    """One rhythm event: its kind (EVENT_KINDS), the times in seconds of its first and last beat (for a pause: the
    beats before and after it), its number of beats (a pause: the 2 around it), and its mean rate in bpm over the
    RR intervals between its first and last beat."""

    kind: str
    start: float
    end: float
    beats: int

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def rate(self) -> float:
        return 60.0 * (self.beats - 1) / self.duration if self.duration > 0 else float("nan")

    def describe(self) -> str:
        """What a reader sees in the events table: 'VT run, 5 beats', 'triplet (VT run of 3)', 'pause of 2.5 s'."""
        if self.kind == PAUSE:
            return f"pause of {self.duration:.1f} s"
        if self.kind == VT and self.beats == MIN_RUN:
            return "triplet (VT run of 3 beats)"
        if self.kind in (BIGEMINY, TRIGEMINY):
            return f"{self.kind}, {self.beats // (2 if self.kind == BIGEMINY else 3)} cycles"
        return f"{self.kind}, {self.beats} beats"


def format_clock(seconds: float) -> str:
    """Seconds from the record's start as hh:mm:ss (truncated to the second, as a Holter strip's clock reads)."""
    s = max(0, int(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def class_letters(label: np.ndarray) -> np.ndarray:
    """AAMI class indices (k,) as in ecglib.data.facts.CLASSES (-1: not classified) -> letters (k,), '?' for -1."""
    letters = np.array(list(CLASSES) + ["?"])
    return letters[np.where(np.asarray(label) >= 0, label, len(CLASSES))]


def merge_intervals(intervals: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Intervals (start, end) sorted and merged where they overlap or touch; empty ones dropped."""
    out: list[list[float]] = []
    for a, b in sorted((float(a), float(b)) for a, b in intervals if b > a):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def overlaps_noise(start: np.ndarray, end: np.ndarray, noise: Sequence[tuple[float, float]]) -> np.ndarray:
    """Whether each span (start, end) (arrays, seconds) overlaps one of the noise intervals by more than a point
    (an RR interval that starts where noise ends is clean)."""
    start, end = np.atleast_1d(np.asarray(start, float)), np.atleast_1d(np.asarray(end, float))
    hit = np.zeros(start.shape, dtype=bool)
    merged = merge_intervals(noise)
    if not merged:
        return hit
    a = np.array([m[0] for m in merged])
    b = np.array([m[1] for m in merged])
    # The last interval that starts before the span's end is the only one that can overlap it (merged intervals
    # are sorted and apart).
    j = np.searchsorted(a, end, side="left") - 1
    ok = j >= 0
    hit[ok] = b[j[ok]] > start[ok]
    return hit


def _check(times: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    times = np.asarray(times, dtype=float)
    classes = np.asarray(classes).astype(str)
    if times.ndim != 1 or times.shape != classes.shape:
        raise ValueError(f"{times.shape} beat times for {classes.shape} classes")
    if len(times) > 1 and np.any(np.diff(times) < 0):
        raise ValueError("beat times are not in increasing order")
    return times, classes


def find_events(times: np.ndarray, classes: np.ndarray, noise: Sequence[tuple[float, float]] = ()) -> list[Event]:
    """Every rhythm event of a record (see DEFINITIONS), in time order (then by EVENT_KINDS order)."""
    times, classes = _check(times, classes)
    # One character per beat, so that the patterns are regular expressions over the record's rhythm (fast on a
    # 24-hour recording: 100,000 characters).
    text = "".join(c if c in CLASSES else "?" for c in classes)
    spans: list[tuple[str, int, int]] = []  # (kind, first beat, last beat)
    for m in re.finditer(r"V+", text):
        n = m.end() - m.start()
        if n == 2:
            spans.append((COUPLET, m.start(), m.end() - 1))
        elif n >= MIN_RUN:
            spans.append((VT, m.start(), m.end() - 1))
    for m in re.finditer(f"S{{{MIN_RUN},}}", text):
        spans.append((SVT, m.start(), m.end() - 1))
    for kind, cycle in ((BIGEMINY, "NV"), (TRIGEMINY, "NNV")):
        for m in re.finditer(f"(?:{cycle}(?!V)){{{MIN_CYCLES},}}", text):
            spans.append((kind, m.start(), m.end() - 1))
    if len(times) > 1:
        for i in np.flatnonzero(np.diff(times) > PAUSE_SECONDS):
            spans.append((PAUSE, int(i), int(i) + 1))
    if not spans:
        return []
    first = np.array([s[1] for s in spans])
    last = np.array([s[2] for s in spans])
    keep = ~overlaps_noise(times[first], times[last], noise)
    events = [Event(kind, float(times[a]), float(times[b]), b - a + 1)
              for (kind, a, b), k in zip(spans, keep) if k]
    order = {k: i for i, k in enumerate(EVENT_KINDS)}
    return sorted(events, key=lambda e: (e.start, order[e.kind]))


# ------------------------------------------------------------------------------------------------- heart rate
def valid_rr(times: np.ndarray, noise: Sequence[tuple[float, float]] = ()) -> tuple[np.ndarray, np.ndarray]:
    """RR intervals (k-1,) in seconds and whether each is valid (does not overlap noise)."""
    times = np.asarray(times, dtype=float)
    rr = np.diff(times)
    return rr, ~overlaps_noise(times[:-1], times[1:], noise)


def heart_rate(times: np.ndarray, noise: Sequence[tuple[float, float]] = (), window: int = HR_WINDOW
               ) -> tuple[np.ndarray, np.ndarray]:
    """The heart rate (bpm) of every beat that ends ``window`` valid consecutive RR intervals: (times (m,),
    rates (m,)), rate = 60 * window / (time spanned by the window)."""
    times = np.asarray(times, dtype=float)
    if len(times) <= window:
        return np.zeros(0), np.zeros(0)
    rr, ok = valid_rr(times, noise)
    span = times[window:] - times[:-window]
    # A window is valid when none of its RR intervals is: count invalid intervals with a running sum.
    bad = np.concatenate([[0], np.cumsum(~ok)])
    clean = (bad[window:] - bad[:-window]) == 0
    clean &= span > 0
    return times[window:][clean], 60.0 * window / span[clean]


@dataclass
class RecordSummary:
    """The numbers of the report's summary table (None where a record has too few beats to say)."""

    seconds: float
    counts: dict[str, int]  # beats per class letter, '?' for the unclassified
    mean_hr: float | None
    min_hr: tuple[float, float] | None  # (bpm, time s)
    max_hr: tuple[float, float] | None
    s_burden: float | None  # %
    v_burden: float | None
    noise_seconds: float
    events: dict[str, int]  # events per kind
    triplets: int
    uncertain: dict[str, int] | None = None  # uncertain beats per predicted class, when probabilities are known

    @property
    def beats(self) -> int:
        return int(sum(self.counts.values()))


def summarize_record(times: np.ndarray, classes: np.ndarray, seconds: float,
                     noise: Sequence[tuple[float, float]] = (), events: Sequence[Event] | None = None,
                     prob: np.ndarray | None = None) -> RecordSummary:
    """The summary of one record of ``seconds`` (see DEFINITIONS). events: find_events' result, when already
    computed; prob: (k, 5) class probabilities of the beats, for the count of uncertain beats."""
    times, classes = _check(times, classes)
    events = find_events(times, classes, noise) if events is None else events
    counts = {c: int(np.sum(classes == c)) for c in CLASSES}
    counts["?"] = int(len(classes) - sum(counts.values()))
    classified = len(classes) - counts["?"]
    rr, ok = valid_rr(times, noise)
    mean_hr = 60.0 * ok.sum() / rr[ok].sum() if ok.any() and rr[ok].sum() > 0 else None
    t_hr, hr = heart_rate(times, noise)
    lo = (float(hr.min()), float(t_hr[hr.argmin()])) if len(hr) else None
    hi = (float(hr.max()), float(t_hr[hr.argmax()])) if len(hr) else None
    noise_seconds = sum(min(b, seconds) - max(a, 0.0) for a, b in merge_intervals(noise) if b > 0 and a < seconds)
    uncertain = None
    if prob is not None:
        prob = np.asarray(prob, dtype=float)
        if prob.shape != (len(classes), len(CLASSES)):
            raise ValueError(f"probabilities of shape {prob.shape} for {len(classes)} beats and {len(CLASSES)} classes")
        low = prob.max(axis=1) < UNCERTAIN
        uncertain = {c: int(np.sum(low & (classes == c))) for c in CLASSES}
    return RecordSummary(
        seconds=float(seconds), counts=counts, mean_hr=None if mean_hr is None else float(mean_hr),
        min_hr=lo, max_hr=hi,
        s_burden=100.0 * counts["S"] / classified if classified else None,
        v_burden=100.0 * counts["V"] / classified if classified else None,
        noise_seconds=float(max(0.0, noise_seconds)),
        events={k: sum(e.kind == k for e in events) for k in EVENT_KINDS},
        triplets=sum(e.kind == VT and e.beats == MIN_RUN for e in events), uncertain=uncertain)


def ectopy_per_hour(times: np.ndarray, classes: np.ndarray, seconds: float, bin_seconds: float
                    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """S and V beats per hour in bins of ``bin_seconds``: (bin starts (b,), {'S': (b,), 'V': (b,)}). A last,
    partial bin is scaled by its own length; one shorter than half a bin joins the bin before it (a 30:05 record
    in 5-minute bins has six, the last 5:05 long: a 5-second bin would turn one beat into 720 per hour)."""
    times, classes = _check(times, classes)
    n = max(1, int(np.ceil(seconds / bin_seconds)))
    if n > 1 and seconds - (n - 1) * bin_seconds < bin_seconds / 2:
        n -= 1
    edges = np.arange(n + 1) * float(bin_seconds)
    edges[-1] = max(float(seconds), edges[-2] + 1e-9)  # the last bin ends with the record
    hours = np.diff(edges) / 3600.0
    rates = {c: np.histogram(times[classes == c], bins=edges)[0] / hours for c in ("S", "V")}
    return edges[:-1], rates
