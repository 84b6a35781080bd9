"""The wheelhouse download's failures: what a pin the lock found but the build cannot use means."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from toolkit import piptools
from toolkit.config import Config, parse_config
from toolkit.errors import BuildError

YAML = 'name: demo\npython: "3.11"\ntargets:\n  cpu: {}\n'

# `pip download --only-binary=:all:` when the index has only mylib-0.0.1.tar.gz (real pip output)
SDIST_ONLY = [
    "ERROR: Could not find a version that satisfies the requirement mylib==0.0.1 "
    "(from versions: none)",
    "ERROR: No matching distribution found for mylib==0.0.1",
]
# ... and when 0.0.2 and 0.1.0 have wheels
OTHER_WHEELS = [
    "ERROR: Could not find a version that satisfies the requirement mylib==0.0.1 "
    "(from versions: 0.0.2, 0.1.0)",
    "ERROR: No matching distribution found for mylib==0.0.1",
]


def download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lines: Sequence[str]) -> BuildError:
    cfg: Config = parse_config(YAML, tmp_path / "toolkit.yaml")
    argvs: list[Sequence[str]] = []

    def pip(argv: Sequence[str], *args: object, **kwargs: object) -> piptools.CompileResult:
        argvs.append(argv)
        return piptools.CompileResult(False, 1, tuple(lines))

    monkeypatch.setattr(piptools, "_run", pip)
    monkeypatch.setattr(piptools, "host_settings", piptools.HostSettings)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no mirrors of this user
    lockfile = tmp_path / "lockfiles" / "cpu.txt"
    with pytest.raises(BuildError) as err:
        piptools.download_wheels(cfg, cfg.targets["cpu"], lockfile, tmp_path / "w", tmp_path / "l")
    assert "--only-binary=:all:" in argvs[0]
    return err.value


def test_a_pin_without_a_wheel_says_so_and_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    err = download(tmp_path, monkeypatch, SDIST_ONLY)
    assert err.message == (
        "downloading the wheels of cpu.txt failed: no wheel of mylib==0.0.1 for Python 3.11 on "
        "this platform (builds install wheels only): the target's sources have only a source "
        "distribution of it, or nothing for this platform"
    )
    assert err.hint == (
        "pin a version that has wheels in requirements.in, or build a wheel with Python 3.11 "
        "(`pip wheel --no-deps -w wheels mylib==0.0.1`) and add that folder to "
        "targets.cpu.index.find_links; then `toolkit lock --target cpu`"
    )
    assert err.log == tmp_path / "l"


def test_versions_that_have_wheels_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    err = download(tmp_path, monkeypatch, OTHER_WHEELS)
    assert err.hint is not None
    assert err.hint.startswith(
        "pin a version that has wheels in requirements.in (versions with a wheel: 0.0.2, 0.1.0),"
    )


def test_other_download_failures_keep_their_explanation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    err = download(tmp_path, monkeypatch, ["ERROR: something else broke"])
    assert err.message == "downloading the wheels of cpu.txt failed: something else broke"
