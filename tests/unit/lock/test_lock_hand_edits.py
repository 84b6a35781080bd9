"""The header's body digest: `toolkit lock --check` finds a lockfile edited by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import toolkit
from tests.unit.lock import test_lock_header
from toolkit import lock, piptools
from toolkit.config import Config

YAML = 'name: demo\npython: "3.11"\ntargets:\n  cpu: {}\n'
BODY = """\
six==1.17.0 \\
    --hash=sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274 \\
    --hash=sha256:ff70335d468e7eb6ec65b95b99d3a2836546063f63acc5171de367e834932a81
    # via -r requirements.in
"""


def project(root: Path) -> Config:
    return test_lock_header.project(root, YAML, "six\n")


def write_lock(cfg: Config, body: str = BODY, *, with_body_digest: bool = True) -> Path:
    """A lockfile as `toolkit lock` writes it (or as toolkit wrote it before the body digest)."""
    return test_lock_header.write_lock(cfg, "cpu", body, with_body_digest=with_body_digest)


def test_the_header_carries_a_digest_of_the_body() -> None:
    header = lock.LockHeader("cpu", "3.11", 1, "sha256:00", "a" * 12, "b" * 12, "c" * 12)
    text = lock.render_header(header) + BODY
    assert text.splitlines()[0].endswith(f"index={'b' * 12} body={'c' * 12}")
    assert lock.parse_header(text) == header


def test_the_body_digest_covers_pins_and_hashes_not_comments() -> None:
    digest = lock.body_digest(BODY)
    assert lock.body_digest("# a header\n#\n" + BODY.replace("-r requirements.in", "x")) == digest
    assert lock.body_digest(BODY.replace("six==1.17.0", "six==1.16.0")) != digest
    assert lock.body_digest(BODY.replace("4721f391", "00000000")) != digest
    assert lock.body_digest(BODY + "numpy==2.1.0\n") != digest


def test_a_pin_edited_by_hand_makes_the_lockfile_stale(tmp_path: Path) -> None:
    cfg = project(tmp_path)
    path = write_lock(cfg)
    assert lock.status(cfg, "cpu").state == "current"

    path.write_text(path.read_text().replace("six==1.17.0", "six==1.16.0"))
    found = lock.status(cfg, "cpu")
    assert found.state == "stale"
    assert found.reason == (
        "was edited by hand after `toolkit lock` wrote it (its requirement lines do not match "
        "the body digest in its header)"
    )
    assert not lock.check(cfg).ok


def test_a_hand_edit_and_a_changed_input_are_both_reported(tmp_path: Path) -> None:
    cfg = project(tmp_path)
    path = write_lock(cfg)
    path.write_text(path.read_text() + "numpy==2.1.0\n")
    (tmp_path / "requirements.in").write_text("six\nnumpy\n")
    assert lock.status(cfg, "cpu").reason == (
        "was edited by hand after `toolkit lock` wrote it (its requirement lines do not match "
        "the body digest in its header); requirements.in changed since the lock was written"
    )


def test_comments_edited_by_hand_change_nothing_installed(tmp_path: Path) -> None:
    cfg = project(tmp_path)
    path = write_lock(cfg)
    path.write_text(path.read_text().replace("# via -r requirements.in", "# via me") + "# hi\n")
    assert lock.status(cfg, "cpu").state == "current"


def test_a_lockfile_from_before_the_body_digest_is_checked_as_before(tmp_path: Path) -> None:
    cfg = project(tmp_path)
    path = write_lock(cfg, with_body_digest=False)
    path.write_text(path.read_text().replace("six==1.17.0", "six==1.16.0"))
    header = lock.read_header(path)
    assert header is not None and header.body == ""
    assert lock.status(cfg, "cpu").state == "current"


def test_lock_does_not_keep_pins_edited_by_hand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip-compile keeps the pins (and hashes) of the file it writes to: a pin changed by hand
    would keep the other version's hashes. A lockfile toolkit wrote is reused; an edited one not."""
    cfg = project(tmp_path)
    monkeypatch.setattr(lock, "_check_python", lambda python: None)
    seen: list[str] = []

    def pip_compile(args: list[str], **kwargs: object) -> piptools.CompileResult:
        output = Path(args[args.index("--output-file") + 1])
        seen.append(output.read_text() if output.exists() else "")
        output.write_text(BODY)
        return piptools.CompileResult(True, 0, ())

    monkeypatch.setattr(piptools, "pip_compile", pip_compile)
    path = write_lock(cfg)
    lock.lock_target(cfg, "cpu")
    assert "six==1.17.0" in seen[-1]  # toolkit's own lockfile: its pins are kept

    path.write_text(path.read_text().replace("six==1.17.0", "six==1.16.0"))
    done = lock.lock_target(cfg, "cpu")
    assert seen[-1] == ""  # resolved afresh, not from the edited pins
    assert done.changed
    assert "six==1.17.0" in path.read_text()
    assert lock.status(cfg, "cpu").state == "current"


def test_check_on_the_cli_says_the_lockfile_was_edited_and_how_to_fix_it(tmp_path: Path) -> None:
    cfg = project(tmp_path)
    path = write_lock(cfg)
    path.write_text(path.read_text().replace("six==1.17.0", "six==1.16.0"))
    done = toolkit("lock", "--check", cwd=tmp_path, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [line.strip() for line in done.stdout.splitlines()]
    assert lines[0].startswith("fail  cpu              lockfiles/cpu.txt stale: was edited by hand")
    assert lines[1] == "fix: toolkit lock --target cpu"
