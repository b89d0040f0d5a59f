"""read_recording: WFDB, EDF (EDF+, annotation channels, rates per channel, EDF+D), CSV and npy, one lead by the
lead rule; what the formats allow is read, what is broken is refused in one line naming the file."""
from __future__ import annotations

import numpy as np
import pytest
import wfdb
from conftest import write_csv_signal, write_edf

from ecglib.data.recordings import read_record_channel, read_recording, record_header
from ecglib.data.records import read_lead
from ecglib.errors import InputError


def test_wfdb_read_in_spans_equals_one_read(synthetic_records):
    base = synthetic_records / "114"
    header = record_header(base)
    whole = wfdb.rdrecord(str(base), channel_names=["MLII"]).p_signal[:, 0]
    np.testing.assert_array_equal(read_record_channel(base, header, 1, chunk=1001), whole)
    rec = read_recording(f"{base}.hea")
    assert (rec.format, rec.lead, rec.lead_reason, rec.fs) == ("WFDB", "MLII", "MLII by name", 360.0)
    assert rec.leads == ("V5", "MLII") and rec.reference == base.with_suffix(".atr") and rec.name == "114"
    np.testing.assert_array_equal(rec.signal, whole)


def test_training_reads_the_same_lead(synthetic_records):
    # prepare/train and annotate share the rule: 102 has no lead II, its first lead V5 is read by both
    signal, fs, lead = read_lead(synthetic_records / "102")
    rec = read_recording(synthetic_records / "102", reference="atr")
    assert lead == rec.lead == "V5" and rec.lead_reason == "the first ECG lead, no lead II"
    np.testing.assert_array_equal(signal, rec.signal)


def test_edf_equals_the_wfdb_record(synthetic_records, tmp_path):
    path = write_edf(tmp_path / "114.edf", synthetic_records / "114")
    rec = read_recording(path)
    wfdb_rec = read_recording(synthetic_records / "114")
    assert (rec.format, rec.lead, rec.fs, rec.leads) == ("EDF", "MLII", 360.0, ("V5", "MLII"))
    np.testing.assert_allclose(rec.signal, wfdb_rec.signal, rtol=0, atol=1e-12)
    assert rec.reference is None  # no 114.atr beside it


def test_edf_plus_with_annotations_and_other_rates(synthetic_records, tmp_path):
    """EDF+ allows an annotation channel and a rate per signal: the ECG is read at its own rate."""
    n = 25
    extra = [("Resp chest", 25.0, np.sin(np.arange(25 * n) / 7)), ("EEG Fpz-Cz", 100.0, np.zeros(100 * n))]
    path = write_edf(tmp_path / "rec.edf", synthetic_records / "100", extra=extra, annotations=True)
    rec = read_recording(path)
    assert rec.lead == "MLII" and rec.fs == 360.0 and len(rec.signal) == 360 * n
    assert rec.leads == ("MLII", "V1", "Resp chest", "EEG Fpz-Cz")  # the annotation channel is no signal
    slow = read_recording(path, lead="resp chest")
    assert slow.fs == 25.0 and len(slow.signal) == 25 * n and slow.lead_reason == "--lead"
    assert read_recording(path, lead=3).lead == "EEG Fpz-Cz"


def _patched(path, offset: int, text: bytes):
    data = bytearray(path.read_bytes())
    data[offset:offset + len(text)] = text
    path.write_bytes(bytes(data))
    return path


def test_edf_plus_d_is_read_and_said(synthetic_records, tmp_path):
    path = _patched(write_edf(tmp_path / "d.edf", synthetic_records / "100", annotations=True), 192, b"EDF+D")
    rec = read_recording(path)
    assert rec.notes and "EDF+D" in rec.lead_line()


def test_edf_refusals(synthetic_records, tmp_path):
    path = write_edf(tmp_path / "x.edf", synthetic_records / "100")
    # The first signal's physical minimum (the fields after the 256-byte header: 16 + 80 + 8 bytes per signal for
    # label, transducer and dimension, then the minima) made equal to its maximum: it has no physical values.
    (tmp_path / "equal.edf").write_bytes(path.read_bytes())
    _patched(tmp_path / "equal.edf", 256 + 104 * 2, b"5.115   ")
    with pytest.raises(InputError, match=r"equal\.edf: signal 'MLII' has physical minimum = maximum"):
        read_recording(tmp_path / "equal.edf")
    (tmp_path / "cut.edf").write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InputError, match=r"cut\.edf: truncated file"):
        read_recording(tmp_path / "cut.edf")
    (tmp_path / "text.edf").write_text("not an EDF file\n")
    with pytest.raises(InputError, match=r"text\.edf: not an EDF or BDF file"):
        read_recording(tmp_path / "text.edf")
    with pytest.raises(InputError, match=r"x\.edf: the file states 360 Hz and --fs says 250 Hz"):
        read_recording(path, fs=250)


def test_edf_without_an_ecg_channel(tmp_path):
    """An EDF none of whose signals may be an ECG (every label names another kind: EEG, EOG, Resp) is refused,
    naming the signals, unless --lead chooses one."""
    import edfio

    x = np.sin(np.arange(3000) / 20)
    signals = [edfio.EdfSignal(x, 100.0, label=label) for label in ("EEG Fpz-Cz", "EOG horizontal", "Resp")]
    path = tmp_path / "sleep.edf"
    edfio.Edf(signals).write(path)
    with pytest.raises(InputError, match=r"sleep\.edf: no ECG lead: .*0 EEG Fpz-Cz, 1 EOG horizontal, 2 Resp"):
        read_recording(path)
    assert read_recording(path, lead="1").lead == "EOG horizontal"


def test_csv_with_and_without_header(synthetic_records, tmp_path):
    wfdb_rec = read_recording(synthetic_records / "114")
    rec = read_recording(write_csv_signal(tmp_path / "114.csv", synthetic_records / "114"), fs=360)
    assert (rec.format, rec.lead, rec.leads, rec.fs) == ("CSV", "MLII", ("V5", "MLII"), 360.0)
    np.testing.assert_array_equal(rec.signal, wfdb_rec.signal)  # MIT-BIH's 0.005 mV steps are exact in decimals
    bare = read_recording(write_csv_signal(tmp_path / "bare.csv", synthetic_records / "114", header=False), fs=360)
    assert bare.lead == "0" and bare.lead_reason == "the first ECG lead, no lead II"
    one = tmp_path / "one.txt"
    one.write_text("0.1\n0.2\n\n0.4\n")
    rec = read_recording(one, fs=250)
    assert rec.lead_reason == "the only signal" and rec.signal.tolist() == pytest.approx([0.1, 0.2, 0.4])
    gap = tmp_path / "gap.csv"
    gap.write_text("time,ecg\n0,1.0\n1,\n2,3.0\n")
    assert read_recording(gap, fs=1).signal.tolist() == [1.0, 2.0, 3.0]  # an empty cell is bridged


@pytest.mark.parametrize("content, fs, message", [
    ("MLII\n0.1\nhello\n0.3\n", 360, r"line 3, column 1: 'hello' is not a number"),
    ("Dear reader,\nthis is a letter.\n", 360, r"line 2, column 1: 'this is a letter.' is not a number"),
    ("0.1\n0.2\n", None, r"a CSV signal does not state its sampling rate; give it with --fs HZ"),
    ("0.1\n0.2\n", 0.0, r"sampling rate 0.0 Hz out of range"),
    ("", 360, r"empty file"),
    ("MLII,V1\n", 360, r"no samples"),
])
def test_csv_refusals(content, fs, message, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(InputError, match=r"bad\.csv: " + message):
        read_recording(path, fs=fs)


def test_npy(tmp_path):
    x = np.sin(np.arange(5000) / 30)
    np.save(tmp_path / "one.npy", x)
    np.save(tmp_path / "two.npy", np.stack([x, -x], axis=1))
    np.save(tmp_path / "wide.npy", np.stack([x, -x]))
    np.save(tmp_path / "text.npy", np.array(["a", "b"]))
    assert read_recording(tmp_path / "one.npy", fs=500).signal.tolist() == x.tolist()
    assert read_recording(tmp_path / "two.npy", fs=500, lead=1).signal.tolist() == (-x).tolist()
    with pytest.raises(InputError, match=r"wide\.npy: an array of 2 rows and 5000 columns; samples go in rows"):
        read_recording(tmp_path / "wide.npy", fs=500)
    with pytest.raises(InputError, match=r"text\.npy: an array of <U1, not of numbers"):
        read_recording(tmp_path / "text.npy", fs=500)
    with pytest.raises(InputError, match=r"one\.npy: a npy signal does not state its sampling rate"):
        read_recording(tmp_path / "one.npy")


def test_paths_that_are_no_recording(tmp_path):
    (tmp_path / "notes.docx").write_text("x")
    with pytest.raises(InputError, match=r"notes\.docx: not a recording ecglib reads"):
        read_recording(tmp_path / "notes.docx")
    with pytest.raises(InputError, match=r"nothing\.hea: record header not found"):
        read_recording(tmp_path / "nothing")
    with pytest.raises(InputError, match=r"gone\.edf: file not found"):
        read_recording(tmp_path / "gone.edf")
    (tmp_path / "100.csv").write_text("0.1\n0.2\n0.3\n")
    with pytest.raises(InputError, match=r"100\.zzz: reference annotation file not found"):
        read_recording(tmp_path / "100.csv", fs=100, reference="zzz")
