"""The embedded synthetic records: seeded, deterministic, and refusing arguments that make no record."""
from __future__ import annotations

import pytest
import wfdb

from ecglib.data.synthetic import write_synthetic_mitdb
from ecglib.errors import InputError


def test_synthetic_generator_is_deterministic(tmp_path):
    names = ["100", "208"]
    a = write_synthetic_mitdb(tmp_path / "a", names, seconds=20, seed=11)
    write_synthetic_mitdb(tmp_path / "b", names, seconds=20, seed=11)
    write_synthetic_mitdb(tmp_path / "c", ["208"], seconds=20, seed=11)  # alone: same content
    write_synthetic_mitdb(tmp_path / "d", names, seconds=20, seed=12)
    assert a == names
    for name in names:
        for ext in ("hea", "dat", "atr"):
            assert (tmp_path / "a" / f"{name}.{ext}").read_bytes() == (tmp_path / "b" / f"{name}.{ext}").read_bytes()
    for ext in ("hea", "dat", "atr"):
        assert (tmp_path / "a" / f"208.{ext}").read_bytes() == (tmp_path / "c" / f"208.{ext}").read_bytes()
    assert (tmp_path / "a" / "100.dat").read_bytes() != (tmp_path / "d" / "100.dat").read_bytes()
    record = wfdb.rdrecord(str(tmp_path / "a" / "100"))
    assert record.fs == 360 and record.sig_len == 20 * 360 and record.fmt == ["212", "212"]


@pytest.mark.parametrize("kwargs, match", [({"seconds": 0}, "seconds"), ({"seconds": float("nan")}, "seconds"),
                                           ({"fs": 10}, "fs"), ({"records": ["1 00"]}, "record name")])
def test_synthetic_generator_rejects_bad_arguments(tmp_path, kwargs, match):
    kwargs = {"records": ["100"], **kwargs}
    with pytest.raises(InputError, match=match):
        write_synthetic_mitdb(tmp_path, **kwargs)
