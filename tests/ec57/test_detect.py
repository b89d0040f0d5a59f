"""R-peak detection (ecglib.ec57.detect, .rpeaks), noise stress (ecglib.data.noise) and signal quality
(ecglib.ec57.quality)."""
from __future__ import annotations

import math
import shutil
import sys

import numpy as np
import pytest
import wfdb

from ecglib import ec57
from ecglib.data import noise, read_lead
from ecglib.data.facts import CLASSES
from ecglib.ec57 import annotate, detect, quality, rpeaks
from ecglib.ec57.annotations import read_annotations
from ecglib.ec57.bxb import BXB_CLASS
from ecglib.errors import InputError


def _score(ref_samples, ref_symbols, peaks, fs, n, learning_period=0.0, **kw) -> dict:
    c = ec57.compare(ref_samples, ref_symbols, peaks, ["N"] * len(peaks), fs, learning_period=learning_period,
                     sig_len=n, **kw)
    return c.stats()


def _beats(record) -> tuple[np.ndarray, np.ndarray]:
    ann = wfdb.rdann(str(record), "atr")
    symbols = np.asarray(ann.symbol)
    keep = np.isin(symbols, list(BXB_CLASS))
    return np.asarray(ann.sample)[keep], symbols[keep]


def _toy_ecg(seconds: float, fs: float, rr: float = 0.8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A lead of Gaussian QRS complexes (1 mV, 12 ms wide) with T waves, and its R-peak samples."""
    rng = np.random.default_rng(seed)
    n = int(seconds * fs)
    times = np.cumsum(rng.uniform(0.9, 1.1, int(seconds / rr) + 2) * rr)
    times = times[times < seconds - 0.5]
    t = np.arange(n) / fs
    x = np.zeros(n)
    for c in times:
        x += np.exp(-0.5 * ((t - c) / 0.012) ** 2) + 0.25 * np.exp(-0.5 * ((t - c - 0.28) / 0.05) ** 2)
    return x, np.rint(times * fs).astype(np.int64)


# ------------------------------------------------------------------------------------------------ detection
def test_find_local_peaks_equals_wfdb():
    from wfdb.processing.peaks import find_local_peaks as wfdb_find_local_peaks

    rng = np.random.default_rng(1)
    for trial in range(200):
        radius = int(rng.integers(1, 25))
        sig = rng.integers(0, 4, int(rng.integers(2 * radius + 2, 300))).astype(float) if trial % 2 else \
            rng.normal(size=int(rng.integers(2 * radius + 2, 300)))
        expected = np.asarray(wfdb_find_local_peaks(sig, radius), dtype=np.int64)
        np.testing.assert_array_equal(detect.find_local_peaks(sig, radius), expected, err_msg=str(trial))
    assert detect.find_local_peaks(np.ones(50), 5).size == 0


@pytest.mark.parametrize("fs", [360, 128])
def test_ecglib_detector_finds_the_beats_of_a_synthetic_record(synthetic_records, tmp_path, fs):
    record = synthetic_records / "208"  # ventricular and fusion beats among the normal ones
    if fs != 360:
        record = noise.stress_record(record, tmp_path, fs=fs)
    signal, rate, _ = read_lead(record)
    assert rate == fs
    peaks = detect.detect_r_peaks(signal, rate)
    assert peaks.dtype == np.int64 and np.all(np.diff(peaks) > 0)
    ref, symbols = _beats(record)
    s = _score(ref, symbols, peaks, rate, len(signal))
    assert s["Q Se"] >= 97 and s["Q +P"] >= 97, s
    # aligned to the reference's fiducial point: most peaks on the annotated sample or next to it
    matched = [int(p - ref[np.argmin(np.abs(ref - p))]) for p in peaks]
    assert np.median(np.abs(matched)) <= 1


def test_a_record_resampled_to_128_hz_through_wrsamp(synthetic_records, tmp_path):
    out = noise.stress_record(synthetic_records / "100", tmp_path, name="r128", fs=128)
    header = wfdb.rdheader(str(out))
    assert header.fs == 128 and header.sig_name == ["MLII", "V1"]
    ann = wfdb.rdann(str(out), "atr")
    original = wfdb.rdann(str(synthetic_records / "100"), "atr")
    assert list(ann.symbol) == list(original.symbol)
    np.testing.assert_array_equal(ann.sample, np.floor(original.sample * 128 / 360 + 0.5).astype(np.int64))
    signal, fs, _ = read_lead(out)
    ref, symbols = _beats(out)
    for name in ("ecglib", "xqrs"):
        s = _score(ref, symbols, detect.detect_r_peaks(signal, fs, name), fs, len(signal))
        assert s["Q Se"] >= 95 and s["Q +P"] >= 95, (name, s)


def test_detection_in_chunks_matches_the_whole(monkeypatch):
    x, truth = _toy_ecg(120.0, 250.0, seed=2)
    whole = detect.detect_r_peaks(x, 250.0)
    monkeypatch.setattr(annotate, "DETECT_SECONDS", 40.0)
    monkeypatch.setattr(annotate, "OWN_DETECT_OVERLAP", 10.0)
    assert annotate.detect_chunks(len(x), 250.0) == 3
    assert len(whole) == len(truth)
    np.testing.assert_array_equal(annotate.detect_peaks(x, 250.0), whole)


def test_each_detector_gets_its_run_up():
    """ecglib's detectors read 60 s of the neighbouring chunks (twice their 30-s template block); the others, XQRS
    among them, 120 s (XQRS lost beats with less on the 24-hour recording)."""
    fs = 360.0
    for detector, seconds in (("ecglib", 60), ("adaptive", 60), ("xqrs", 120), ("gqrs", 120)):
        chunks = annotate.detection_chunks(int(3 * annotate.DETECT_SECONDS * fs), fs, detector)
        (start, end, a, b), (start1, _, a1, _) = chunks[:2]
        assert len(chunks) == 3 and (start, end, a) == (0, start1, 0)
        assert b - end == start1 - a1 == int(seconds * fs)


def test_alignment_moves_peaks_to_the_r_peak():
    x, truth = _toy_ecg(30.0, 360.0)
    shifted = truth + np.random.default_rng(0).integers(-15, 16, len(truth))  # up to 42 ms off
    np.testing.assert_array_equal(rpeaks.align_peaks(x, 360.0, shifted), truth)


def test_detector_names_and_errors(monkeypatch):
    assert detect.DEFAULT_DETECTOR == "ecglib" and {"ecglib", "xqrs", "gqrs", "neurokit"} <= set(detect.DETECTORS)
    with pytest.raises(InputError, match="unknown detector"):
        detect.detect_r_peaks(np.zeros(1000), 360.0, "nope")
    with pytest.raises(InputError, match="one lead"):
        detect.detect_r_peaks(np.zeros((1000, 2)), 360.0)
    monkeypatch.setitem(sys.modules, "neurokit2", None)  # as if it were not installed
    with pytest.raises(InputError, match="detectors") as err:
        detect.detect_r_peaks(np.zeros(3600), 360.0, "nk-pantompkins1985")
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------------------------------- noise
def _sigamp_reference(x: np.ndarray, fs: float, samples: np.ndarray) -> float:
    """sigamp -a, written out: p-p over [t - 50 ms, t + 50 ms] of the first 300 beats, 5 % trimmed mean."""
    half = int(0.05 * fs + 0.5)
    amps = sorted(float(x[t - half:t + half + 1].max() - x[t - half:t + half + 1].min()) for t in samples[:300])
    k = len(amps) // 20
    return float(np.mean(amps[k:len(amps) - k]))


def _rms_reference(v: np.ndarray, fs: float) -> float:
    """sigamp without -a: RMS of the first 300 one-second windows, each window's mean removed, trimmed mean."""
    w = int(fs + 0.5)
    rms = sorted(float(np.sqrt(np.mean((v[i:i + w] - v[i:i + w].mean()) ** 2)))
                 for i in range(0, min(len(v) // w, 300) * w, w))
    k = len(rms) // 20
    return float(np.mean(rms[k:len(rms) - k]))


@pytest.mark.parametrize("kind", noise.NOISE_KINDS)
def test_noise_is_added_at_the_snr_nst_defines(kind):
    fs = 250.0
    x, beats = _toy_ecg(400.0, fs)
    symbols = ["N"] * len(beats)
    n = len(x)
    z = noise.make_noise(kind, n, fs, seed=3)
    assert z.shape == (n,) and abs(np.sqrt(np.mean(z * z)) - 1) < 1e-9
    for snr in (12.0, 0.0):
        # everywhere: nst's SNR, computed from scratch, is the one asked for
        y, gain = noise.add_noise(x, z, fs, snr, beats, symbols, intervals=None)
        a, r = _sigamp_reference(x, fs, beats), _rms_reference(y - x, fs)
        assert abs(20 * math.log10(a / (2 * math.sqrt(2) * r)) - snr) < 1e-6
        assert abs(noise.measure_snr(x, y, fs, beats, symbols) - snr) < 1e-6
        assert gain == pytest.approx(10 ** (-snr / 20) * math.sqrt(2) / 4 * a / _rms_reference(z, fs))
    # nst's protocol: clean for five minutes, then noise for two, then clean again, continuous at each switch
    y, gain = noise.add_noise(x, z, fs, 6.0, beats, symbols)
    assert noise.nst_intervals(n, fs) == [(75000, 100000)]
    assert np.array_equal(y[:75000], x[:75000])
    np.testing.assert_allclose(y[75000:100000] - x[75000:100000], gain * (z[75000:100000] - z[74999]), atol=1e-9)
    assert np.allclose(np.diff(y[100000:] - x[100000:]), 0.0)  # off again: only a constant offset is left


def test_noise_is_seeded_and_shaped():
    a = noise.make_noise("em", 5000, 360.0, seed=7, channels=2)
    b = noise.make_noise("em", 5000, 360.0, seed=7, channels=2)
    assert a.shape == (5000, 2) and np.array_equal(a, b)
    assert not np.array_equal(a[:, 0], a[:, 1])
    bw = noise.make_noise("bw", 360 * 120, 360.0, seed=1)
    spectrum = np.abs(np.fft.rfft(bw)) ** 2
    freqs = np.fft.rfftfreq(len(bw), 1 / 360.0)
    assert spectrum[freqs < 0.5].sum() / spectrum.sum() > 0.97  # baseline wander lives below 0.5 Hz
    with pytest.raises(InputError, match="unknown noise"):
        noise.make_noise("hum", 100, 360.0)


def test_stress_record_writes_a_noisy_copy(synthetic_records, tmp_path):
    out = noise.stress_record(synthetic_records / "213", tmp_path, name="213em", noise="em", snr=6, seed=1)
    header = wfdb.rdheader(str(out))
    assert header.fs == 360 and any("em noise at SNR 6 dB" in c for c in header.comments)
    clean, fs, _ = read_lead(synthetic_records / "213")
    noisy, _, _ = read_lead(out)
    # 25 s: nst's protocol has not switched the noise on yet; everywhere, it is on
    assert np.max(np.abs(noisy - clean)) < 0.01
    out2 = noise.stress_record(synthetic_records / "213", tmp_path, name="213em2", noise="em", snr=6, seed=1,
                               intervals=None)
    assert np.std(read_lead(out2)[0] - clean) > 0.05


# ------------------------------------------------------------------------------------------------- quality
def test_quality_marks_a_stretch_of_pure_noise_and_not_a_clean_record(tmp_path):
    from ecglib.data.synthetic import write_synthetic_mitdb

    write_synthetic_mitdb(tmp_path, records=["100"], seconds=90, seed=5)
    signal, fs, _ = read_lead(tmp_path / "100")
    assert quality.noise_intervals(signal, fs) == []
    noisy = signal.copy()
    a, b = int(30 * fs), int(45 * fs)
    amplitude = np.percentile(signal, 99.5) - np.percentile(signal, 0.5)
    noisy[a:b] += amplitude * noise.make_noise("ma", b - a, fs, seed=2)
    intervals = quality.noise_intervals(noisy, fs)
    assert len(intervals) == 1
    s, e = intervals[0]
    assert abs(s - a) <= 2 * fs and abs(e - b) <= 2 * fs, (s / fs, e / fs)


def test_fast_order_statistics_equal_numpys_bit_for_bit():
    """The detector's and the quality check's replacements for np.median / np.percentile calls and for the
    saturation filters give numpy's and scipy's values exactly (ties, NaN, even and odd counts, edges)."""
    from scipy.ndimage import maximum_filter1d, minimum_filter1d

    rng = np.random.default_rng(0)
    for trial in range(60):
        rows = rng.standard_normal((int(rng.integers(1, 40)), int(rng.integers(1, 200))))
        if trial % 3 == 0:
            rows = np.round(rows * 2)  # ties
        np.testing.assert_array_equal(rpeaks._column_medians(rows), np.median(rows, axis=0), strict=True)
        if trial % 5 == 0:
            rows[0, 0] = np.nan
        np.testing.assert_array_equal(quality._row_percentile(rows, 25), np.percentile(rows, 25, axis=1),
                                      strict=True)
        values = rows.ravel()
        lo = np.sort(rng.integers(0, len(values), 30))
        hi = np.minimum(len(values), lo + rng.integers(1, 60, 30))
        np.testing.assert_array_equal(quality._window_medians(values, lo, hi, batch=int(rng.integers(1, 500))),
                                      [np.median(values[a:b]) for a, b in zip(lo, hi)])
    for trial in range(300):
        n, run = int(rng.integers(1, 2000)), int(rng.integers(1, 10))
        flags = np.zeros(n, dtype=bool)
        for _ in range(int(rng.integers(0, 100 if trial % 10 == 0 else 6))):
            start = int(rng.integers(0, n))
            flags[start:start + int(rng.integers(1, 3 * run))] = True
        flags[:int(rng.integers(0, 2 * run))] = trial % 4 == 0  # runs at the lead's ends
        flags[n - int(rng.integers(0, 2 * run)):] |= trial % 3 == 0
        eroded = minimum_filter1d(flags.astype(np.uint8), size=run, mode="nearest")
        np.testing.assert_array_equal(quality._opening(flags, run),
                                      maximum_filter1d(eroded, size=run, mode="nearest").astype(bool))


def test_annotates_path_detects_and_checks_quality_as_the_separate_steps(monkeypatch):
    """detect_and_find_noise (the feature shared, each chunk checked once the next is detected) gives the peaks
    of detect_peaks and the stretches of find_noise given them."""
    x, _ = _toy_ecg(150.0, 250.0, seed=4)
    x[int(60 * 250):int(80 * 250)] += 3 * noise.make_noise("ma", int(20 * 250), 250.0, seed=1)
    monkeypatch.setattr(annotate, "DETECT_SECONDS", 40.0)
    monkeypatch.setattr(annotate, "OWN_DETECT_OVERLAP", 10.0)
    peaks, noisy = annotate.detect_and_find_noise(x, 250.0)
    np.testing.assert_array_equal(peaks, annotate.detect_peaks(x, 250.0))
    assert noisy and noisy == annotate.find_noise(x, 250.0, peaks)


def test_noise_annotations_become_a_shutdown_for_bxb():
    fs = 360.0
    ref = np.arange(1, 120) * 360  # one beat a second for two minutes
    test = ref.copy()
    intervals = [(int(50.5 * fs), int(60.5 * fs))]
    sample, symbol, subtype = quality.merge_with_beats(test, ["N"] * len(test), intervals)
    assert list(symbol[(sample > 50 * fs) & (sample < 61 * fs)]) == ["~", "~"]
    assert list(subtype[symbol == "~"]) == [quality.SHUTDOWN_SUBTYPE, quality.CLEAR_SUBTYPE]
    c = ec57.compare(ref, ["N"] * len(ref), sample, symbol, fs, learning_period=0, sig_len=int(121 * fs),
                     test_subtypes=subtype)
    assert c.count("N", "X") == 10 and c.count("N", "O") == 0 and c.count("N", "N") == len(ref) - 10
    assert c.shutdown_seconds == 10
    assert quality.noise_annotations([(100, 200), (300, 400)], sig_len=400) == [
        (100, "~", 0x30), (200, "~", 0), (300, "~", 0x30)]


# ------------------------------------------------------------------------------------------------ real data
@pytest.mark.realdata
def test_ecglib_detector_on_record_208(MITDB):
    """MIT-BIH 208 (992 ventricular, 373 fusion beats; XQRS misses 120 of its 2,437 scored beats): QRS Se and +P
    of at least 99.5 % under bxb's rules (5-minute learning period, 150 ms match window)."""
    signal, fs, lead = read_lead(MITDB / "208")
    assert lead == "MLII"
    ref = read_annotations(MITDB / "208", "atr", len(signal), fs=fs)
    peaks = detect.detect_r_peaks(signal, fs)
    s = ec57.compare(ref.sample, ref.symbol, peaks, ["N"] * len(peaks), fs, sig_len=len(signal),
                     ref_subtypes=ref.subtype, record="208").stats()
    assert s["Q Se"] >= 99.5 and s["Q +P"] >= 99.5, s


# ------------------------------------------------------------------------------------------- in annotate
def test_annotate_marks_a_noise_burst_as_noise_and_labels_no_beat_there(synthetic_records, tmp_path):
    """Electrode-motion noise at -6 dB over 40-70 s of a two-minute record: ``annotate`` marks it as EC57's
    shutdown ('~' 0x30 ... '~' 0) and labels no beat inside; bxb counts the reference beats there as missed in
    shutdown (X), not as false V beats. Without the check, detections in the noise are labelled."""
    from ecglib.data.synthetic import write_synthetic_mitdb
    from ecglib.ec57.trained import load_model

    write_synthetic_mitdb(tmp_path / "clean", records=["119"], seconds=120, seed=4)
    fs = 360.0
    burst = (int(40 * fs), int(70 * fs))
    record = noise.stress_record(tmp_path / "clean" / "119", tmp_path, noise="em", snr=-6, seed=2,
                                 intervals=[burst])
    model = load_model()
    result = annotate.annotate_record(model, record, out_dir=tmp_path / "on")
    assert len(result.noise) >= 1
    covered = sum(min(e, burst[1]) - max(a, burst[0]) for a, e in result.noise if e > burst[0] and a < burst[1])
    assert covered >= 0.8 * (burst[1] - burst[0]), result.noise
    assert sum(e - a for a, e in result.noise) <= 1.3 * (burst[1] - burst[0]), result.noise
    assert not np.any((result.sample >= result.noise[0][0]) & (result.sample <= result.noise[0][1]))
    assert "marked noise" in result.summary_line()
    ann = wfdb.rdann(str(tmp_path / "on" / "119"), "ecglib")
    marks = [(int(t), int(st)) for t, c, st in zip(ann.sample, ann.symbol, ann.subtype) if c == "~"]
    assert marks[0] == (result.noise[0][0], quality.SHUTDOWN_SUBTYPE) and marks[1][1] == quality.CLEAR_SUBTYPE
    assert result.comparison.shutdown_seconds >= 20 and result.comparison.count("N", "X") > 0
    # the noise is not a beat class: no V label where the reference has none
    off = annotate.annotate_record(model, record, out_dir=tmp_path / "off", quality=False)
    assert not off.noise and "~" not in wfdb.rdann(str(tmp_path / "off" / "119"), "ecglib").symbol
    assert result.comparison.stats()["Q +P"] >= off.comparison.stats()["Q +P"]


def test_annotate_takes_the_beats_of_the_other_lead_where_the_lead_read_is_unreadable(synthetic_records, tmp_path):
    """The same -6 dB burst on MLII alone: the other lead is readable there, so its beats fill the stretch as Q
    (no class: the lead the model reads is noise), nothing is shut down, and bxb finds the beats there."""
    from ecglib.data.synthetic import write_synthetic_mitdb
    from ecglib.ec57.trained import load_model

    write_synthetic_mitdb(tmp_path / "clean", records=["119"], seconds=120, seed=4)
    fs = 360.0
    burst = (int(40 * fs), int(70 * fs))
    noisy = noise.stress_record(tmp_path / "clean" / "119", tmp_path / "both", noise="em", snr=-6, seed=2,
                                intervals=[burst])
    both, clean = wfdb.rdrecord(str(noisy)), wfdb.rdrecord(str(tmp_path / "clean" / "119"))
    assert both.sig_name[0] == "MLII"
    signal = np.column_stack([both.p_signal[:, 0], clean.p_signal[:, 1]])  # noise on MLII only
    wfdb.wrsamp("119", fs=fs, units=["mV", "mV"], sig_name=both.sig_name, p_signal=signal, fmt=["16", "16"],
                adc_gain=[200.0, 200.0], baseline=[0, 0], write_dir=str(tmp_path))
    shutil.copy(f"{noisy}.atr", tmp_path / "119.atr")
    model = load_model()
    result = annotate.annotate_record(model, tmp_path / "119", out_dir=tmp_path / "out")
    inside = (result.sample > burst[0]) & (result.sample < burst[1])
    assert result.backup_lead == both.sig_name[1] and result.backup is not None
    ref = wfdb.rdann(str(tmp_path / "119"), "atr")
    expected = np.sum((ref.sample > burst[0]) & (ref.sample < burst[1]))
    assert abs(int(inside.sum()) - expected) <= 2, (inside.sum(), expected)
    assert np.all(result.backup[inside]) and not np.any(result.backup[~inside])
    assert np.all(result.label[inside] == CLASSES.index("Q")) and np.isnan(result.prob[inside]).all()
    assert not result.noise
    assert f"found on {both.sig_name[1]} where MLII is unreadable" in result.summary_line()
    assert result.comparison.stats()["Q Se"] >= 99.0
    # the record's own lead alone: the stretch is shut down and its beats are missed
    alone = annotate.annotate_record(model, noisy, out_dir=tmp_path / "alone")
    assert alone.noise and alone.comparison.stats()["Q Se"] < result.comparison.stats()["Q Se"]


def test_missed_beats_are_taken_only_from_a_lead_that_finds_more():
    """The other lead's beats that the lead read lacks, once the other lead finds over 2 % more: not its beats at
    the lead read's beats (within 0.15 s) nor those closer than 0.4 of its median RR to one (a T wave, a split
    QRS)."""
    fs = 360.0
    other = np.arange(100, 360_000, 288)  # 1,250 beats, RR 0.8 s
    assert len(annotate.missed_beats(other, other, fs)) == 0
    read = np.delete(other, np.arange(500, 520))  # 20 beats missed: 1.6 % fewer, not enough
    assert len(annotate.missed_beats(read, other, fs)) == 0
    read = np.delete(other, np.arange(500, 540))  # 40 missed (3.2 %)
    assert np.array_equal(annotate.missed_beats(read, other, fs), other[500:540])
    # the lead read's own beats a few samples away, and one 0.3 RR before a beat of the other lead, are not missed
    shifted = np.sort(np.concatenate([read + 5, [other[540] - int(0.3 * 288)]]))
    assert np.array_equal(annotate.missed_beats(shifted, other, fs), other[500:540])
    assert len(annotate.missed_beats(read[:1], other, fs)) == 0


def test_annotate_completes_a_lead_that_misses_beats_from_the_other_lead(synthetic_records, tmp_path):
    """Every other beat of a 30-s stretch of the lead read shrunk to a tenth, as V1's small beats between ventricular
    ones in record 208: the detector misses them, the other lead finds them, and they are added (classified from the
    lead read); where the lead read is lead II (MLII by name) the other lead is not asked."""
    from ecglib.data.recordings import read_recording
    from ecglib.data.synthetic import write_synthetic_mitdb
    from ecglib.ec57.trained import load_model

    write_synthetic_mitdb(tmp_path / "clean", records=["119"], seconds=120, seed=4)
    fs = 360.0
    rec, ann = wfdb.rdrecord(str(tmp_path / "clean" / "119")), wfdb.rdann(str(tmp_path / "clean" / "119"), "atr")
    lead = rec.p_signal[:, 0].copy()
    small = ann.sample[(ann.sample > 40 * fs) & (ann.sample < 70 * fs)][::2]
    for b in small:
        lead[b - 36:b + 36] *= 0.1
    model = load_model()
    signal = np.column_stack([lead, rec.p_signal[:, 1]])
    results = {}
    for names in (["ECG1", "ECG2"], ["MLII", "V1"]):
        folder = tmp_path / names[0]
        folder.mkdir()
        wfdb.wrsamp("119", fs=fs, units=["mV", "mV"], sig_name=names, p_signal=signal,
                    fmt=["16", "16"], adc_gain=[200.0, 200.0], baseline=[0, 0], write_dir=str(folder))
        shutil.copy(tmp_path / "clean" / "119.atr", folder / "119.atr")
        recording = read_recording(folder / "119")
        results[names[0]] = [annotate.annotate_recording(model, recording, write=False, complete=complete)
                             for complete in (True, False)]
    done, alone = results["ECG1"]
    assert done.completed >= 0.8 * len(small) and done.completed_lead == "ECG2"
    assert len(done.sample) == len(alone.sample) + done.completed
    assert np.all(rpeaks.nearest_distance(done.sample, small) <= int(0.15 * fs))  # bxb's match window
    assert np.all(done.label[np.isin(done.sample, np.setdiff1d(done.sample, alone.sample))] >= 0)
    assert f"{done.completed} missed on ECG1, found on ECG2" in done.summary_line()
    assert done.comparison.stats()["Q Se"] > alone.comparison.stats()["Q Se"]
    assert done.comparison.stats()["Q +P"] >= alone.comparison.stats()["Q +P"]
    lead_ii, lead_ii_alone = results["MLII"]
    assert lead_ii.completed == 0 and np.array_equal(lead_ii.sample, lead_ii_alone.sample)
    assert np.array_equal(lead_ii.sample, alone.sample)  # the same lead, so the same misses


def test_lead_polarity_reads_which_way_the_qrs_complexes_point(synthetic_records):
    """+1 for a synthetic MLII, -1 for it turned over, from detected and from reference R peaks alike; a 24-hour
    lead is judged from an even spread of its beats, so a long lead costs what a short one does."""
    from ecglib.data.recordings import read_recording
    from ecglib.ec57.annotate import reference_r_peaks
    from ecglib.ec57.detect import detect_r_peaks
    from ecglib.ec57.rpeaks import POLARITY_BEATS, lead_polarity

    rec = read_recording(synthetic_records / "100")
    detected = detect_r_peaks(rec.signal, rec.fs)
    reference = reference_r_peaks(synthetic_records / "100", len(rec.signal))
    assert len(detected) > 20
    for peaks in (detected, reference):
        assert lead_polarity(rec.signal, rec.fs, peaks) == 1
        assert lead_polarity(-rec.signal, rec.fs, peaks) == -1
        assert lead_polarity(rec.signal * 1e-3 + 5.0, rec.fs, peaks) == 1  # unit and offset do not matter
    assert lead_polarity(rec.signal, rec.fs, np.zeros(0, dtype=np.int64)) == 1
    gap = -rec.signal.copy()
    gap[detected[1] - 50:detected[1] + 50] = np.nan  # invalid samples near one beat leave the others to decide
    assert lead_polarity(gap, rec.fs, detected) == -1
    assert lead_polarity(np.full(len(gap), np.nan), rec.fs, detected) == 1
    copies = POLARITY_BEATS // len(detected) + 2
    long, n = np.tile(-rec.signal, copies), len(rec.signal)
    long_peaks = np.concatenate([detected + k * n for k in range(copies)])
    assert len(long_peaks) > POLARITY_BEATS and lead_polarity(long, rec.fs, long_peaks) == -1


@pytest.mark.realdata
def test_lead_polarity_on_mit_bih(MITDB):
    """MIT-BIH's MLII points up except in record 207; V1 points down in most records (here 119 and 208, whose large
    ventricular beats point the other way from their normal beats: the majority decides), and up in 118."""
    from ecglib.ec57.detect import detect_r_peaks
    from ecglib.ec57.rpeaks import lead_polarity

    def points(record: str, lead: str) -> int:
        signal, fs, _ = read_lead(MITDB / record, lead)
        return lead_polarity(signal, fs, detect_r_peaks(signal, fs))

    assert [points(r, "MLII") for r in ("100", "119", "207", "208")] == [1, 1, -1, 1]
    assert [points(r, "V1") for r in ("118", "119", "208")] == [1, -1, -1]
