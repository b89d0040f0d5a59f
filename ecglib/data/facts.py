"""The facts of the MIT-BIH Arrhythmia Database and of the beats ecglib cuts from it: the AAMI classes and how the
database's beat symbols map to them, the 48 records, the paced ones, de Chazal's DS1 and DS2, the beat geometry
(187 samples at 125 Hz) and the rhythm features' names.

Constants only: every layer of the package reads them without importing numpy, torch or wfdb.
"""
from __future__ import annotations

CLASSES: tuple[str, ...] = ("N", "S", "V", "F", "Q")
CLASS_NAMES: dict[str, str] = {
    "N": "normal / bundle-branch block",
    "S": "supraventricular ectopic",
    "V": "ventricular ectopic",
    "F": "fusion",
    "Q": "paced / unclassifiable",
}
# AAMI EC57 grouping of the MIT-BIH beat symbols (de Chazal et al. 2004: the escape beats e and j are N).
AAMI: dict[str, int] = {
    **dict.fromkeys("NLRej", 0),
    **dict.fromkeys("AaJS", 1),
    **dict.fromkeys("VE", 2),
    "F": 3,
    **dict.fromkeys("/fQ", 4),
}

# Beat geometry after Kachuee et al. (2018): each beat 187 samples at 125 Hz, cut from its R peak for 1.2 times the
# median RR interval of its 10-second window.
BEAT_LENGTH = 187
TARGET_FS = 125
WINDOW_SECONDS = 10.0
BEAT_PERIODS = 1.2
# Part of the cache key of prepared beats: raise it whenever extraction changes, so that no stale cache is read.
EXTRACTION_VERSION = 4

# Rhythm features of every beat (ecglib.data.rhythm.rhythm_features): name and unit, in column order. RR intervals in
# seconds, ratios unitless. "local" is the mean of the LOCAL_RR_INTERVALS RR intervals centred on the beat (the
# LOCAL_RR_INTERVALS // 2 before its R peak, its pre-RR included, and as many after, its post-RR included), fewer
# at a record's ends; "record" is the mean RR interval of the whole record. "local_irregularity" is the median
# absolute difference of successive RR intervals within that local window over the local mean RR: near 0 in sinus
# rhythm, even around an isolated ectopic beat (the median ignores its two jumps), and 0.1-0.3 in atrial
# fibrillation, where every beat comes "early" or "late" and prematurity alone does not mean an S beat.
RHYTHM_FEATURES: tuple[tuple[str, str], ...] = (
    ("pre_rr", "s"),
    ("post_rr", "s"),
    ("local_rr", "s"),
    ("record_rr", "s"),
    ("pre_over_local", "1"),
    ("post_over_local", "1"),
    ("post_over_pre", "1"),
    ("pre_over_record", "1"),
    ("post_over_record", "1"),
    ("local_over_record", "1"),
    ("local_irregularity", "1"),
)
RHYTHM_NAMES: tuple[str, ...] = tuple(name for name, _ in RHYTHM_FEATURES)
# The rhythm features a rhythm-aware model takes: the unitless ones. The four intervals in seconds are a patient's
# heart rate, which a network learns per training patient and which does not carry over to new patients
# (docs/rhythm-recipe.md).
RHYTHM_INPUTS: tuple[str, ...] = tuple(name for name, unit in RHYTHM_FEATURES if unit == "1")
LOCAL_RR_INTERVALS = 10

MITDB_RECORDS: tuple[str, ...] = (
    "100", "101", "102", "103", "104", "105", "106", "107", "108", "109", "111", "112", "113", "114", "115",
    "116", "117", "118", "119", "121", "122", "123", "124", "200", "201", "202", "203", "205", "207", "208",
    "209", "210", "212", "213", "214", "215", "217", "219", "220", "221", "222", "223", "228", "230", "231",
    "232", "233", "234",
)
PACED_RECORDS: tuple[str, ...] = ("102", "104", "107", "217")
# de Chazal, O'Dwyer & Reilly (2004), IEEE TBME 51(7): patient-wise split, paced records excluded. Records 201 and
# 202 are the same subject, so one patient is on both sides.
DS1: tuple[str, ...] = (
    "101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122", "124", "201", "203", "205",
    "207", "208", "209", "215", "220", "223", "230",
)
DS2: tuple[str, ...] = (
    "100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210", "212", "213", "214", "219",
    "221", "222", "228", "231", "232", "233", "234",
)
# The names lead II goes by in headers (compared case- and space-insensitively: "ML II" and "mlii" are MLII), in the
# order the lead rule tries them (ecglib.data.leads.choose_lead): MIT-BIH's modified lead II first, then lead II as
# 12-lead and EDF+ files name it ("ECG II" is the EDF+ standard's label). Not "ECG2": that is a second ECG channel,
# whatever its lead.
MLII_NAMES: tuple[str, ...] = ("MLII", "II", "ECG II", "EKG II", "Lead II", "ECG Lead II")
# Sampling rates outside this range are typing errors, not ECGs (MIT-BIH: 360 Hz; Holters: 125-1000 Hz): the range
# of a header's rate (ecglib.data.checks) and of --fs.
MIN_FS, MAX_FS = 1.0, 100_000.0
# Which leads of a record become beats: the one the lead rule reads, or every lead (each beat once per lead).
LEAD_MODES: tuple[str, ...] = ("rule", "all")
