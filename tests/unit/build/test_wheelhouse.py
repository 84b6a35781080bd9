"""Lockfile pins, wheel names, and the hash gate in front of every build."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from toolkit.errors import BuildError
from toolkit.wheelhouse import Pin, collect, missing, read_pins, wheel_key

LOCK = """\
# toolkit lock: target=cpu
numpy==2.1.0 \\
    --hash=sha256:{a} \\
    --hash=sha256:{b}
    # via -r requirements.in
torch==2.13.0+cpu ; platform_system == "Linux" \\
    --hash=sha256:{c}
typing-extensions==4.12.2 \\
    --hash=sha256:{d}
"""


def test_read_pins() -> None:
    text = LOCK.format(a="a" * 64, b="b" * 64, c="c" * 64, d="d" * 64)
    assert read_pins(text) == [
        Pin("numpy", "2.1.0", frozenset({"a" * 64, "b" * 64})),
        Pin("torch", "2.13.0+cpu", frozenset({"c" * 64})),
        Pin("typing-extensions", "4.12.2", frozenset({"d" * 64})),
    ]


def test_wheel_key() -> None:
    assert wheel_key("torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl") == (
        "torch",
        "2.13.0+cpu",
    )
    assert wheel_key("typing_extensions-4.12.2-py3-none-any.whl") == ("typing-extensions", "4.12.2")
    assert wheel_key("numpy-2.1.0.tar.gz") is None


def _wheel(folder: Path, name: str, body: bytes) -> Pin:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-1.0-py3-none-any.whl"
    path.write_bytes(body)
    return Pin(name, "1.0", frozenset({hashlib.sha256(body).hexdigest()}))


def test_collect_links_verified_wheels(tmp_path: Path) -> None:
    house = tmp_path / "house"
    pins = [_wheel(house, "alpha", b"a"), _wheel(house, "beta", b"b")]
    assert missing(pins, house) == []
    linked = collect(pins, house, tmp_path / "ctx")
    assert [p.name for p in linked] == ["alpha-1.0-py3-none-any.whl", "beta-1.0-py3-none-any.whl"]
    assert linked[0].read_bytes() == b"a"


def test_collect_refuses_a_tampered_wheel_naming_the_package(tmp_path: Path) -> None:
    house = tmp_path / "house"
    pins = [_wheel(house, "alpha", b"a"), _wheel(house, "beta", b"b")]
    (house / "beta-1.0-py3-none-any.whl").write_bytes(b"evil")
    with pytest.raises(BuildError) as info:
        collect(pins, house, tmp_path / "ctx")
    assert "beta==1.0 does not match the lockfile's hashes" in info.value.message


def test_a_mismatch_names_both_culprits_and_how_to_tell_them_apart(tmp_path: Path) -> None:
    house = tmp_path / "house"
    good = _wheel(house, "tqdm", b"a fine wheel")
    edited = Pin("tqdm", "1.0", frozenset({"0" * 64}))  # one sha256 changed by hand
    assert good.hashes != edited.hashes
    with pytest.raises(BuildError) as info:
        collect([edited], house, tmp_path / "ctx")
    assert info.value.message == (
        "wheel for tqdm==1.0 does not match the lockfile's hashes (tqdm-1.0-py3-none-any.whl): "
        "either the wheel is corrupt (or was tampered with), or the lockfile was edited by hand"
    )
    assert info.value.hint == (
        f"to tell which, delete tqdm-1.0-py3-none-any.whl from {house} and build again: a good "
        "wheel is downloaded and checked; if that fails too, the lockfile is wrong: restore it "
        "from version control, or record the index's hashes with "
        "`toolkit lock --target <target> --upgrade-package tqdm==1.0`"
    )


def test_missing_lists_pins_without_wheels(tmp_path: Path) -> None:
    house = tmp_path / "house"
    present = _wheel(house, "alpha", b"a")
    absent = Pin("gamma", "2.0", frozenset({"0" * 64}))
    assert missing([present, absent], house) == [absent]
