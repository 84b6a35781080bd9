"""toolkit.runtime.log: one JSON line per call in $TOOLKIT_RUN_DIR/metrics.jsonl."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import toolkit.runtime
from toolkit.runtime import log

from .conftest import RunPython


def test_log_appends_a_json_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLKIT_RUN_DIR", str(tmp_path))
    before = time.time()
    log(step=3, loss=0.25, acc=1)
    log(lr=0.1)
    first, second = (
        json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
    )
    assert first["step"] == 3 and first["values"] == {"loss": 0.25, "acc": 1.0}
    assert before <= first["time"] <= time.time()
    assert second["step"] is None and second["values"] == {"lr": 0.1}
    assert sorted(first) == ["step", "time", "values"]


def test_log_without_a_run_dir_warns_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TOOLKIT_RUN_DIR", raising=False)
    monkeypatch.setattr(toolkit.runtime, "_warned", False)
    log(step=1, loss=1.0)
    log(step=2, loss=1.0)
    assert capsys.readouterr().err.count("TOOLKIT_RUN_DIR is not set") == 1


def test_log_rejects_what_is_not_a_number(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLKIT_RUN_DIR", str(tmp_path))
    with pytest.raises(TypeError, match=r"loss='high' is not a number"):
        log(step=1, loss="high")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"step=1\.5 is not an integer"):
        log(step=1.5, loss=1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"step=True is not an integer"):
        log(step=True, loss=1.0)
    assert not (tmp_path / "metrics.jsonl").exists()


def test_concurrent_writers_never_interleave(run_python: RunPython) -> None:
    script = """
        import multiprocessing, threading
        from toolkit.runtime import log

        def write(tag):
            for step in range(300):
                log(step=step, **{tag: float(step), "padding": 1e300})

        def process(index):
            threads = [threading.Thread(target=write, args=(f"p{index}t{t}",)) for t in range(3)]
            for thread in threads: thread.start()
            for thread in threads: thread.join()

        if __name__ == "__main__":
            children = [multiprocessing.Process(target=process, args=(i,)) for i in range(3)]
            for child in children: child.start()
            for child in children: child.join()
    """
    run = run_python(script)
    assert run.returncode == 0, run.stderr
    lines = (run.run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3 * 3 * 300
    tags = [next(iter(set(json.loads(line)["values"]) - {"padding"})) for line in lines]
    assert {tag: tags.count(tag) for tag in set(tags)} == {
        f"p{p}t{t}": 300 for p in range(3) for t in range(3)
    }
