"""Noise to stress ECG records, built rather than downloaded, and added as the WFDB noise stress test ``nst`` adds it.

Three kinds of noise, after the three noise records of the MIT-BIH Noise Stress Test Database (Moody, Muldrow &
Mark 1984), each returned with unit RMS:

- ``bw`` :func:`baseline_wander`: below 0.5 Hz, a respiration-like oscillation (0.12-0.4 Hz, its rate and depth
  drifting) on a slow random drift of the electrode potential;
- ``ma`` :func:`muscle_noise`: broadband Gaussian noise band-limited to 5-100 Hz (below the Nyquist frequency),
  its level modulated by slow contraction bursts;
- ``em`` :func:`electrode_motion`: the hardest: low-frequency motion bursts (0.3-8 Hz), baseline steps that decay
  as an AC-coupled amplifier lets them decay, and mono- and biphasic transients 60-200 ms wide inside the bursts
  (like ectopic beats).

:func:`add_noise` adds a noise to a signal at a signal-to-noise ratio as ``nst`` (G. Moody, WFDB ``app/nst.c``)
defines and applies it:

- the signal's size is ``sigamp -a atr``'s: the peak-to-peak amplitude of the signal from 50 ms before to 50 ms
  after each of the first 300 reference beats that WFDB's ``map1`` calls NORMAL (N, L, R, B, a, J, A, S, j, e, n,
  /, f, Q: every beat but V, E, r, !, F and ?), the 5 % smallest and largest dropped and the rest averaged (a
  trimmed mean, A);
- the noise's size is ``sigamp``'s without annotations: the RMS of each of the first 300 one-second windows (each
  window's mean removed), trimmed and averaged the same way (R);
- SNR = 20 log10(A / (2 sqrt(2) R)), i.e. S = A^2 / 8 (the power of a sine of peak-to-peak amplitude A) over
  N = R^2; nst turns the requested SNR into the noise gain 10^(-SNR/20) sqrt(2)/4 A / R;
- the noise is on in alternating two-minute stretches from the fifth minute to the end (5:00-7:00, 9:00-11:00,
  ...), off elsewhere, and at each switch a constant offset keeps the output continuous (nst's ``z``).

:func:`stress_record` writes a resampled and/or noise-stressed copy of a WFDB record (``wfdb.wrsamp``, format 16)
with its annotations moved to the new rate (``wfdb.wrann``), so that tests and benchmarks can make 128 Hz or 250 Hz
records, or the noisy records of a noise stress test.

Everything is seeded (numpy ``default_rng``) and linear in memory in the record's length.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import InputError

NOISE_KINDS: tuple[str, ...] = ("bw", "ma", "em")
# WFDB's map1() NORMAL class: the beats sigamp measures the signal's amplitude on (ecgmap.h).
NST_NORMAL_SYMBOLS: frozenset[str] = frozenset("NLRBaJASjen/fQ")
NST_START = 300.0  # s: nst's first protocol switch, "5:0"
NST_PERIOD = 120.0  # s: nst's interval between switches, "2:0"
SIGAMP_MAX = 300  # sigamp's NMAX: measurements per signal
SIGAMP_HALF_WINDOW = 0.05  # s: sigamp's -d default, 50 ms either side of the annotation
SIGAMP_RMS_WINDOW = 1.0  # s: sigamp's -w default


# --------------------------------------------------------------------------------------------------- noises
def _check_length(n: int, fs: float) -> None:
    if int(n) != n or n < 1:
        raise InputError(f"noise: length must be a positive number of samples, got {n!r}")
    if not (fs > 0 and math.isfinite(fs)):
        raise InputError(f"noise: sampling rate must be a positive number, got {fs!r}")


def _unit_rms(x: np.ndarray) -> np.ndarray:
    x = x - np.mean(x)
    rms = float(np.sqrt(np.mean(x * x)))
    return x / rms if rms > 0 else x


def _slow_process(rng: np.random.Generator, n: int, fs: float, rate: float, tau: float) -> np.ndarray:
    """An Ornstein-Uhlenbeck process of unit variance and time constant ``tau`` s, drawn at ``rate`` Hz and
    interpolated (cubic) to n samples at fs: smooth, and cheap for long records."""
    from scipy.interpolate import CubicSpline

    m = int(math.ceil(n / fs * rate)) + 4
    a = math.exp(-1.0 / (rate * tau))
    w = rng.standard_normal(m) * math.sqrt(1.0 - a * a)
    from scipy.signal import lfilter

    z = lfilter([1.0], [1.0, -a], w, zi=[rng.standard_normal() * a])[0]
    t = np.arange(m) / rate
    return CubicSpline(t, z)(np.arange(n) / fs)


def baseline_wander(n: int, fs: float, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Baseline wander (n,), unit RMS, below 0.5 Hz: a respiration-like oscillation whose rate (0.12-0.4 Hz) and
    depth drift slowly, plus a slow random drift of the electrode potential (time constant 8 s), low-passed at
    0.5 Hz."""
    _check_length(n, fs)
    rng = np.random.default_rng(rng)
    f0 = rng.uniform(0.12, 0.4)
    # Instantaneous respiration rate drifting within about +-20 %, the depth by about +-40 %.
    freq = f0 * (1.0 + 0.2 * np.tanh(_slow_process(rng, n, fs, 1.0, 20.0)))
    phase = 2 * np.pi * np.cumsum(freq) / fs + rng.uniform(0, 2 * np.pi)
    depth = np.exp(0.35 * _slow_process(rng, n, fs, 1.0, 15.0))
    breathing = depth * (np.sin(phase) + 0.25 * np.sin(2 * phase + rng.uniform(0, 2 * np.pi)))
    drift = _slow_process(rng, n, fs, 2.0, 8.0)
    from scipy.signal import butter, sosfiltfilt

    # below 0.5 Hz: the breathing harmonic and the spline's wiggles above it are filtered out
    sos = butter(2, 0.5, btype="lowpass", fs=fs, output="sos")
    wander = breathing + 0.8 * drift
    return _unit_rms(sosfiltfilt(sos, wander) if n > 15 else wander)


def _bandpass(x: np.ndarray, fs: float, lo: float, hi: float, order: int = 4) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    hi = min(hi, 0.45 * fs)
    sos = butter(order, [lo, hi], btype="bandpass", fs=fs, output="sos")
    return sosfilt(sos, x)


def muscle_noise(n: int, fs: float, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Muscle (EMG) noise (n,), unit RMS: Gaussian noise band-passed to 5-100 Hz (at most 0.45 fs), its level
    modulated by contraction bursts (a log-normal envelope with a correlation time of about a second)."""
    _check_length(n, fs)
    rng = np.random.default_rng(rng)
    carrier = _bandpass(rng.standard_normal(n), fs, 5.0, 100.0)
    envelope = np.exp(0.6 * _slow_process(rng, n, fs, 8.0, 1.0))
    return _unit_rms(carrier * envelope)


def _pulse(width_samples: float, kind: int) -> np.ndarray:
    """A spike: a Gaussian (kind 0), its first derivative (biphasic, kind 1) or a Mexican hat (kind 2), peak 1."""
    sigma = max(width_samples / 4.0, 0.6)
    half = int(math.ceil(3.5 * sigma))
    u = np.arange(-half, half + 1) / sigma
    g = np.exp(-0.5 * u * u)
    shape = g if kind == 0 else (-u * g if kind == 1 else (1 - u * u) * g)
    return shape / np.max(np.abs(shape))


def electrode_motion(n: int, fs: float, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Electrode-motion-like noise (n,), unit RMS, in the manner of NSTDB ``em``: a low level of motion throughout,
    motion bursts (0.5-6 s every few seconds) of band-limited noise (0.3-8 Hz), baseline steps decaying with a time
    constant of 0.2-1 s (an AC-coupled amplifier), and within bursts transients 60-200 ms wide every 0.3-2 s,
    mono- or biphasic, like ectopic beats (PhysioNet's description of NSTDB em: it "can mimic the appearance of
    ectopic beats")."""
    _check_length(n, fs)
    rng = np.random.default_rng(rng)
    seconds = n / fs
    # Bursts: alternating gaps (exponential, mean 4 s) and bursts (0.5-6 s), each with its own strength.
    gate = np.full(n, 0.6)
    bursts: list[tuple[int, int, float]] = []
    t = rng.exponential(2.0)
    while t < seconds:
        length = rng.uniform(0.5, 6.0)
        lo, hi = int(t * fs), min(n, int((t + length) * fs))
        strength = float(np.exp(rng.normal(0.0, 0.35)))
        ramp = np.hanning(max(hi - lo, 2))[: hi - lo]
        gate[lo:hi] += strength * np.sqrt(ramp)
        bursts.append((lo, hi, strength))
        t += length + rng.exponential(4.0)
    motion = _bandpass(rng.standard_normal(n), fs, 0.3, 8.0, order=2) * gate
    motion = _unit_rms(motion)
    # Baseline steps: Poisson (about one every 8 s, more inside bursts), each decaying exponentially.
    steps = np.zeros(n)
    n_steps = rng.poisson(seconds / 8.0)
    where = rng.integers(0, n, n_steps).tolist()
    for lo, hi, _ in bursts:
        where += rng.integers(lo, max(hi, lo + 1), rng.poisson(0.6)).tolist()
    impulses = np.zeros(n)
    np.add.at(impulses, np.asarray(where, dtype=np.int64), rng.normal(0.0, 1.0, len(where)))
    from scipy.signal import lfilter

    tau = rng.uniform(0.2, 1.0)
    steps = lfilter([1.0], [1.0, -math.exp(-1.0 / (tau * fs))], impulses)
    steps = _unit_rms(steps) if np.any(steps) else steps
    # Transients inside bursts: at irregular intervals of 0.3-2 s, 60-200 ms wide, like ectopic beats.
    spikes = np.zeros(n)
    for lo, hi, strength in bursts:
        s = lo + int(rng.uniform(0.0, 0.5) * fs)
        while s < hi:
            pulse = _pulse(rng.uniform(0.06, 0.2) * fs, int(rng.integers(0, 3)))
            amp = strength * rng.normal(0.0, 1.0)
            end = min(n, s + len(pulse))
            spikes[s:end] += amp * pulse[: end - s]
            s += int(rng.uniform(0.3, 2.0) * fs)
    spikes = _unit_rms(spikes) if np.any(spikes) else spikes
    return _unit_rms(motion + 0.6 * steps + 0.6 * spikes)


NOISE_GENERATORS: dict[str, Callable[..., np.ndarray]] = {
    "bw": baseline_wander,
    "ma": muscle_noise,
    "em": electrode_motion,
}


def make_noise(kind: str, n: int, fs: float, seed: int | None = 0, channels: int = 1,
               correlation: float = 0.5) -> np.ndarray:
    """Noise of ``kind`` (one of NOISE_KINDS): (n,) for one channel, else (n, channels), each channel unit RMS.
    Channels share a common part (``correlation`` of the power), as the two channels of a noise record do, since
    one body movement moves every electrode."""
    if kind not in NOISE_GENERATORS:
        raise InputError(f"unknown noise {kind!r}; choose one of {', '.join(NOISE_KINDS)}")
    rng = np.random.default_rng(seed)
    gen = NOISE_GENERATORS[kind]
    if channels == 1:
        return gen(n, fs, rng)
    common = gen(n, fs, rng)
    out = np.empty((n, channels))
    for c in range(channels):
        own = gen(n, fs, rng)
        out[:, c] = _unit_rms(math.sqrt(correlation) * common + math.sqrt(1.0 - correlation) * own)
    return out


# ------------------------------------------------------------------------------------------------- nst's SNR
def _trimmed_mean(values: np.ndarray) -> float:
    """sigamp's trimmed mean: sort, drop namp // 20 values at each end, average the rest."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    k = len(v) // 20
    v = v[k:len(v) - k]
    return float(np.mean(v)) if len(v) else float("nan")


def signal_amplitude(signal: np.ndarray, fs: float, ref_samples: np.ndarray, ref_symbols: Sequence[str]) -> float:
    """``sigamp -a atr``: the trimmed mean peak-to-peak amplitude (signal units) of ``signal`` (n,) over
    [t - 50 ms, t + 50 ms] at each of the first 300 reference beats of WFDB's NORMAL class (NST_NORMAL_SYMBOLS)."""
    signal = np.asarray(signal, dtype=np.float64)
    half = int(SIGAMP_HALF_WINDOW * fs + 0.5)  # strtim("0.05")
    samples = np.asarray(ref_samples, dtype=np.int64)
    keep = np.isin(np.asarray(ref_symbols, dtype=str), list(NST_NORMAL_SYMBOLS))
    samples = samples[keep]
    # sigamp stops at the first window that runs off the record.
    samples = samples[(samples - half >= 0) & (samples + half < len(signal))][:SIGAMP_MAX]
    if len(samples) == 0:
        raise InputError("signal amplitude: no normal reference beats to measure the QRS amplitude on")
    windows = signal[samples[:, None] + np.arange(-half, half + 1)]
    return _trimmed_mean(windows.max(axis=1) - windows.min(axis=1))


def noise_amplitude(noise: np.ndarray, fs: float) -> float:
    """``sigamp`` without annotations: the trimmed mean RMS of the first 300 one-second windows of ``noise`` (n,)
    (each window's own mean removed; at least one whole window)."""
    noise = np.asarray(noise, dtype=np.float64)
    w = int(SIGAMP_RMS_WINDOW * fs + 0.5)
    k = min(SIGAMP_MAX, len(noise) // w)
    if k < 1:
        raise InputError(f"noise amplitude: the noise is shorter than one {SIGAMP_RMS_WINDOW:g}-s window")
    blocks = noise[: k * w].reshape(k, w)
    return _trimmed_mean(np.sqrt(np.mean((blocks - blocks.mean(axis=1, keepdims=True)) ** 2, axis=1)))


def nst_gain(snr_db: float, signal_amp: float, noise_amp: float) -> float:
    """nst's noise scale factor for an SNR in dB: nsr = 10^(-SNR/20) sqrt(2)/4 (RMS noise per peak-to-peak
    signal), times signal_amp / noise_amp."""
    if not (noise_amp > 0 and signal_amp > 0):
        raise InputError(f"noise gain: amplitudes must be positive (signal {signal_amp!r}, noise {noise_amp!r})")
    return 10.0 ** (-snr_db / 20.0) * math.sqrt(2.0) / 4.0 * signal_amp / noise_amp


def snr_db(signal_amp: float, noise_amp: float) -> float:
    """nst's SNR in dB of a signal of peak-to-peak size signal_amp and a noise of RMS noise_amp:
    10 log10((A^2 / 8) / R^2)."""
    return 20.0 * math.log10(signal_amp / (2.0 * math.sqrt(2.0) * noise_amp))


def measure_snr(clean: np.ndarray, noisy: np.ndarray, fs: float, ref_samples: np.ndarray,
                ref_symbols: Sequence[str], on: np.ndarray | None = None) -> float:
    """The SNR (dB, nst's definition) of ``noisy`` against ``clean`` (both (n,)): the signal's amplitude measured
    on ``clean``, the noise's on noisy - clean over the samples where the noise is on (``on``: a boolean mask;
    None: where noisy and clean differ), the one-second windows taken there as sigamp takes them."""
    clean = np.asarray(clean, dtype=np.float64)
    diff = np.asarray(noisy, dtype=np.float64) - clean
    mask = np.abs(diff) > 0 if on is None else np.asarray(on, dtype=bool)
    return snr_db(signal_amplitude(clean, fs, ref_samples, ref_symbols), noise_amplitude(diff[mask], fs))


def nst_intervals(n: int, fs: float, start: float = NST_START, period: float = NST_PERIOD
                  ) -> list[tuple[int, int]]:
    """The [start, end) samples where nst's default protocol has the noise on: from 5:00 for two minutes, off for
    two, and so on to the end of the record (the switch times rounded as WFDB's strtim rounds)."""
    t0, dt = int(start * fs + 0.5), int(period * fs + 0.5)
    if dt <= 0:
        raise InputError(f"noise protocol: period must be positive, got {period!r} s")
    return [(s, min(s + dt, n)) for s in range(t0, n, 2 * dt)]


def add_noise(signal: np.ndarray, noise: np.ndarray, fs: float, snr: float, ref_samples: np.ndarray,
              ref_symbols: Sequence[str], intervals: Sequence[tuple[int, int]] | None | str = "nst",
              ) -> tuple[np.ndarray, float]:
    """``signal`` (n,) plus ``noise`` (at least n samples) scaled to ``snr`` dB by nst's definition, switched on in
    ``intervals`` ("nst": nst's protocol, :func:`nst_intervals`; None: everywhere) with nst's continuity offsets.
    The signal amplitude comes from ``signal`` and its reference beats, the noise amplitude from the first five
    minutes of ``noise`` (as nst measures the whole noise record). Returns (noisy signal (n,), gain)."""
    signal = np.asarray(signal, dtype=np.float64)
    n = len(signal)
    noise = np.asarray(noise, dtype=np.float64)
    if noise.ndim != 1 or len(noise) < n:
        raise InputError(f"add noise: the noise ({noise.shape}) must be one channel at least as long as the signal "
                         f"({n} samples)")
    noise = noise[:n]
    gain = nst_gain(snr, signal_amplitude(signal, fs, ref_samples, ref_symbols), noise_amplitude(noise, fs))
    if isinstance(intervals, str):
        if intervals != "nst":
            raise InputError(f"add noise: intervals must be 'nst', None or (start, end) pairs, got {intervals!r}")
        intervals = nst_intervals(n, fs)
    if intervals is None:
        return signal + gain * noise, gain
    # nst: at each switch the offset z makes the output continuous: out[t] = x[t] + g n[t] - z, with z chosen so
    # that the sample before the switch is unchanged.
    out = signal.copy()
    z = 0.0
    g = 0.0
    edges = sorted({e for a, b in intervals for e in (max(0, int(a)), min(n, int(b))) if 0 < e <= n} | {n})
    on = np.zeros(n, dtype=bool)
    for a, b in intervals:
        on[max(0, int(a)):min(n, int(b))] = True
    prev = 0
    for edge in edges:
        if edge > prev:
            out[prev:edge] = signal[prev:edge] + g * noise[prev:edge] - z
        if edge >= n:
            break
        last = edge - 1
        g_new = gain if on[edge] else 0.0
        z = signal[last] + g_new * noise[last] - out[last]
        g = g_new
        prev = edge
    return out, gain


# ------------------------------------------------------------------------------------------------ records
def resample_signal(signal: np.ndarray, fs: float, new_fs: float) -> np.ndarray:
    """``signal`` (n,) or (n, c) at fs resampled to new_fs with a polyphase filter (scipy resample_poly)."""
    from scipy.signal import resample_poly

    if new_fs == fs:
        return np.asarray(signal, dtype=np.float64).copy()
    ratio = Fraction(float(new_fs) / float(fs)).limit_denominator(1000)
    return resample_poly(np.asarray(signal, dtype=np.float64), ratio.numerator, ratio.denominator, axis=0)


def resample_samples(samples: np.ndarray, fs: float, new_fs: float, n_new: int | None = None) -> np.ndarray:
    """Annotation samples at fs moved to new_fs: round(sample * new_fs / fs), clipped into the new record."""
    out = np.floor(np.asarray(samples, dtype=np.float64) * (float(new_fs) / float(fs)) + 0.5).astype(np.int64)
    if n_new is not None:
        out = np.clip(out, 0, n_new - 1)
    return out


def stress_record(record: str | os.PathLike, out_dir: str | os.PathLike, name: str | None = None,
                  fs: float | None = None, noise: str | None = None, snr: float | None = None, seed: int = 0,
                  annotator: str = "atr", intervals: Sequence[tuple[int, int]] | None | str = "nst") -> Path:
    """Write OUT_DIR/NAME (.hea, .dat in format 16 at 200 adu per unit, and .ANNOTATOR): the record resampled to
    ``fs`` (None: its own rate) and, with ``noise`` (one of NOISE_KINDS) and ``snr`` (dB), each signal stressed
    with that noise as nst stresses it (the amplitude of each signal measured at the reference beats; one noise
    channel per signal, seeded). The annotations are copied with their samples moved to the new rate.
    Returns the path of the new record without extension."""
    import wfdb

    from .checks import bridge_invalid

    base = Path(record)
    if base.suffix in (".hea", ".dat"):
        base = base.with_suffix("")
    if not Path(f"{base}.hea").exists():
        raise InputError(f"{base}.hea: record header not found")
    if (noise is None) != (snr is None):
        raise InputError("stress record: give both a noise and an SNR, or neither")
    rec = wfdb.rdrecord(str(base))
    ann = wfdb.rdann(str(base), annotator)
    old_fs = float(rec.fs)
    new_fs = float(fs) if fs else old_fs
    sig = np.asarray(rec.p_signal, dtype=np.float64)
    for c in range(sig.shape[1]):  # invalid samples (NaN) bridged as every reader bridges them
        if np.isfinite(sig[:, c]).any():
            bridge_invalid(sig[:, c], f"{base}.dat", rec.sig_name[c])
    sig = resample_signal(sig, old_fs, new_fs)
    n = sig.shape[0]
    samples = resample_samples(ann.sample, old_fs, new_fs, n)
    symbols = list(ann.symbol)
    comment = f"resampled from {old_fs:g} Hz to {new_fs:g} Hz by ecglib.data.noise" if new_fs != old_fs else ""
    if noise is not None:
        noises = make_noise(noise, n, new_fs, seed=seed, channels=sig.shape[1])
        noises = noises[:, None] if noises.ndim == 1 else noises
        for c in range(sig.shape[1]):
            sig[:, c], _ = add_noise(sig[:, c], noises[:, c], new_fs, float(snr), samples, symbols, intervals)
        comment = (comment + "; " if comment else "") + (f"{noise} noise at SNR {snr:g} dB (nst's definition and "
                                                          f"protocol), seed {seed}, by ecglib.data.noise")
    name = name or base.name
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    units = list(rec.units or ["mV"] * sig.shape[1])
    fs_out: float | int = int(new_fs) if float(new_fs).is_integer() else new_fs
    wfdb.wrsamp(record_name=name, fs=fs_out, units=units, sig_name=list(rec.sig_name), p_signal=sig,
                fmt=["16"] * sig.shape[1], adc_gain=[200.0] * sig.shape[1], baseline=[0] * sig.shape[1],
                comments=[comment] if comment else None, write_dir=str(out))
    order = np.argsort(samples, kind="stable")
    aux = list(ann.aux_note) if ann.aux_note is not None else [""] * len(symbols)
    sub = np.asarray(ann.subtype if ann.subtype is not None else np.zeros(len(symbols)), dtype=np.int64)
    chan = np.asarray(ann.chan if ann.chan is not None else np.zeros(len(symbols)), dtype=np.int64)
    num = np.asarray(ann.num if ann.num is not None else np.zeros(len(symbols)), dtype=np.int64)
    wfdb.wrann(name, annotator, sample=samples[order], symbol=[symbols[i] for i in order],
               subtype=sub[order], chan=chan[order], num=num[order], aux_note=[aux[i] for i in order],
               fs=fs_out, write_dir=str(out))
    return out / name
