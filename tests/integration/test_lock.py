"""`toolkit lock` with real pip-tools against tiny local wheels: offline, a few seconds per case.

The fixture mirrors the bundled example: the cpu target declares the PyTorch CPU index plus PyPI,
the gpu target PyPI alone, and TOOLKIT_MIRRORS maps both URLs to local folders of wheels. A decoy
folder with a higher torch build sits in the host's pip config and PIP_FIND_LINKS: nothing from
it may reach a lockfile.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import support
from tests.support import make_wheel
from toolkit import lock, piptools
from toolkit.config import load_config
from toolkit.errors import BuildError

YAML = """\
name: demo
python: "{python}"
targets:
  cpu:
    index: {{url: "https://download.pytorch.org/whl/cpu", extra_urls: ["https://pypi.org/simple"]}}
  gpu: {{}}
"""
REQUIREMENTS = "# top-level dependencies\ntorch==2.13.0\nnumpy>=2,<3\n"
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wheels")
    pypi, cpu, decoy = root / "pypi", root / "torch-cpu", root / "decoy"
    make_wheel(pypi, "numpy", "2.1.0")
    make_wheel(pypi, "numpy", "2.2.0")
    make_wheel(pypi, "filelock", "3.16.1")
    make_wheel(pypi, "nvidia-cublas", "13.1.1.3")
    make_wheel(pypi, "needy", "1.0", requires=("numpy>=2.2",))
    make_wheel(pypi, "torch", "2.13.0", requires=("numpy", "filelock", "nvidia-cublas==13.1.1.3"))
    make_wheel(cpu, "torch", "2.13.0+cpu", requires=("numpy", "filelock"))
    make_wheel(decoy, "torch", "2.13.0+zzdecoy", requires=("numpy",))
    make_wheel(decoy, "numpy", "2.9.0")
    return root


@pytest.fixture
def project(tmp_path: Path, wheels: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "toolkit.yaml").write_text(YAML.format(python=PYTHON))
    (root / "requirements.in").write_text(REQUIREMENTS)
    return root


def environment(root: Path, wheels: Path, **extra: str) -> dict[str, str]:
    """A user's shell on a machine whose pip config points elsewhere, with the mirrors set."""
    host_pip = root.parent / "host-pip.conf"
    host_pip.write_text(
        f"[global]\nfind-links = {wheels / 'decoy'}\nextra-index-url = file:///nonexistent/simple\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "TOOLKIT_"))}
    env.update(
        PIP_CONFIG_FILE=str(host_pip),
        PIP_FIND_LINKS=str(wheels / "decoy"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        XDG_CONFIG_HOME=str(root.parent / "xdg"),
        TOOLKIT_MIRRORS=(
            f"https://download.pytorch.org/whl/cpu={wheels / 'torch-cpu'} "
            f"https://pypi.org/simple={wheels / 'pypi'}"
        ),
        COLUMNS="1000",  # one line per message: rich wraps stderr at the width
    )
    env.update(extra)
    return env


def toolkit(root: Path, wheels: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return support.toolkit(*args, cwd=root, env=environment(root, wheels, **env), timeout=300)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_lock_writes_hash_pinned_portable_lockfiles(project: Path, wheels: Path) -> None:
    done = toolkit(project, wheels, "lock")
    assert done.returncode == 0, done.stderr
    assert "cpu: lockfiles/cpu.txt written (3 packages" in done.stdout
    assert "gpu: lockfiles/gpu.txt written (4 packages" in done.stdout
    assert "parity: 2 packages pinned identically across cpu, gpu" in done.stdout

    cpu = (project / "lockfiles" / "cpu.txt").read_text()
    gpu = (project / "lockfiles" / "gpu.txt").read_text()
    cpu_torch = sha256(wheels / "torch-cpu" / "torch-2.13.0+cpu-py3-none-any.whl")
    assert f"torch==2.13.0+cpu \\\n    --hash=sha256:{cpu_torch}\n" in cpu
    assert "torch==2.13.0 \\\n" in gpu and "nvidia-cublas==13.1.1.3 \\\n" in gpu
    assert lock.read_pins(cpu)["numpy"] == lock.read_pins(gpu)["numpy"] == "2.2.0"
    for text in (cpu, gpu):
        assert "decoy" not in text and "2.9.0" not in text  # host pip config did not leak
        for leak in (str(wheels), str(project), "/tmp", "file:", "--find-links", "--index-url"):
            assert leak not in text
        assert "# via -r requirements.in" in text
        pins = [line for line in text.splitlines() if "==" in line]
        assert all(line.endswith(" \\") for line in pins)  # each pin is followed by its hashes

    cfg = load_config(project / "toolkit.yaml")
    header = lock.read_header(project / "lockfiles" / "cpu.txt")
    assert header is not None
    assert header.inputs == lock.lock_inputs(cfg, cfg.targets["cpu"]).digest
    assert (header.target, header.python, header.format) == ("cpu", PYTHON, lock.FORMAT)

    again = toolkit(project, wheels, "lock", "--target", "cpu")
    assert again.returncode == 0, again.stderr
    assert "cpu: lockfiles/cpu.txt unchanged" in again.stdout
    assert (project / "lockfiles" / "cpu.txt").read_text() == cpu


def test_check_is_a_drift_gate(project: Path, wheels: Path) -> None:
    assert toolkit(project, wheels, "lock").returncode == 0
    before = {p.name: p.read_bytes() for p in (project / "lockfiles").iterdir()}

    current = toolkit(project, wheels, "lock", "--check")
    assert current.returncode == 0, current.stdout + current.stderr
    assert "cpu              lockfiles/cpu.txt current" in current.stdout

    (project / "requirements.in").write_text(REQUIREMENTS + "filelock==3.16.1\n")
    stale = toolkit(project, wheels, "lock", "--check")
    assert stale.returncode == 1
    assert (
        "lockfiles/gpu.txt stale: requirements.in changed since the lock was written"
        in stale.stdout
    )
    assert "fix: toolkit lock --target gpu" in stale.stdout

    (project / "requirements.in").write_text(REQUIREMENTS)
    assert toolkit(project, wheels, "lock", "--check").returncode == 0
    (project / "lockfiles" / "gpu.txt").unlink()
    missing = toolkit(project, wheels, "lock", "--check", "--target", "gpu")
    assert missing.returncode == 1
    assert "lockfiles/gpu.txt missing: does not exist" in missing.stdout
    assert {p.name for p in (project / "lockfiles").iterdir()} == {"cpu.txt"}
    assert (project / "lockfiles" / "cpu.txt").read_bytes() == before["cpu.txt"]


def test_divergent_targets_are_reported_by_package(project: Path, wheels: Path) -> None:
    # the CPU build of torch here caps numpy below what the CUDA build gets
    capped = project.parent / "capped"
    make_wheel(capped, "torch", "2.13.0+cpu", requires=("numpy<2.2", "filelock"))
    mirrors = (
        f"https://download.pytorch.org/whl/cpu={capped} https://pypi.org/simple={wheels / 'pypi'}"
    )
    done = toolkit(project, wheels, "lock", TOOLKIT_MIRRORS=mirrors)
    assert done.returncode == 0, done.stderr
    assert "warning: parity: numpy: cpu 2.1.0, gpu 2.2.0" in done.stderr

    check = toolkit(project, wheels, "lock", "--check", TOOLKIT_MIRRORS=mirrors)
    assert check.returncode == 1
    assert "lockfiles/cpu.txt current" in check.stdout  # both are current, yet they disagree
    assert "parity           numpy: cpu 2.1.0, gpu 2.2.0" in check.stdout


def test_unknown_target_exits_2(project: Path, wheels: Path) -> None:
    done = toolkit(project, wheels, "lock", "--target", "tpu")
    assert done.returncode == 2
    assert "unknown target 'tpu' (targets: cpu, gpu)" in done.stderr


def test_missing_requirements_exits_2_and_keeps_the_lockfile(project: Path, wheels: Path) -> None:
    old = project / "lockfiles" / "cpu.txt"
    old.parent.mkdir()
    old.write_text("old lock\n")
    (project / "requirements.in").unlink()
    done = toolkit(project, wheels, "lock")
    assert done.returncode == 2
    assert "requirements.in: requirements file not found" in done.stderr
    assert old.read_text() == "old lock\n"


@pytest.mark.parametrize(
    ("requirements", "expected"),
    [
        ("torch==2.13.0\nnum py>=2\n", "requirements.in line 2: invalid requirement 'num py>=2'"),
        ("nosuchpkg\n", "no matching distribution for nosuchpkg (versions found: none)"),
        (
            "numpy==2.1.0\nneedy\n",
            "conflicting requirements: The user requested numpy==2.1.0; "
            "needy 1.0 depends on numpy>=2.2",
        ),
    ],
    ids=["syntax", "not-found", "conflict"],
)
def test_resolution_errors_are_short_and_keep_the_lockfile(
    project: Path, wheels: Path, requirements: str, expected: str
) -> None:
    old = project / "lockfiles" / "gpu.txt"
    old.parent.mkdir()
    old.write_text("old lock\n")
    (project / "requirements.in").write_text(requirements)
    done = toolkit(project, wheels, "lock", "--target", "gpu")
    assert done.returncode == 1
    assert f"error: locking target gpu failed: {expected}" in done.stderr
    assert "Traceback" not in done.stderr
    assert "full log: " in done.stderr and (project / ".toolkit/logs/lock-gpu.log").is_file()
    assert len(done.stderr.splitlines()) <= 4
    assert old.read_text() == "old lock\n"
    assert os.listdir(old.parent) == ["gpu.txt"]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_index_fails_fast_and_says_how_to_mirror(project: Path, wheels: Path) -> None:
    # the cpu target's torch index is down while PyPI (mirrored) carries the CUDA torch: resolving
    # without the CPU index would lock the wrong torch, so toolkit stops instead
    down = f"http://127.0.0.1:{_closed_port()}/whl/cpu"
    (project / "toolkit.yaml").write_text(
        YAML.format(python=PYTHON).replace("https://download.pytorch.org/whl/cpu", down)
    )
    mirrors = f"https://pypi.org/simple={wheels / 'pypi'}"
    started = time.monotonic()
    done = toolkit(project, wheels, "lock", "--target", "cpu", TOOLKIT_MIRRORS=mirrors)
    assert done.returncode == 1
    assert time.monotonic() - started < 60
    assert "locking target cpu failed: cannot reach 127.0.0.1: connection refused" in done.stderr
    assert "(targets.cpu.index.url in toolkit.yaml)" in done.stderr
    assert f"TOOLKIT_MIRRORS='{down}=/path/to/wheels'" in done.stderr
    assert not (project / "lockfiles").exists()


def test_unreachable_mirror_is_named_as_the_mirror(project: Path, wheels: Path) -> None:
    down = f"http://127.0.0.1:{_closed_port()}/simple"
    mirrors = f"https://download.pytorch.org/whl/cpu={down} https://pypi.org/simple={wheels}/pypi"
    done = toolkit(project, wheels, "lock", "--target", "cpu", TOOLKIT_MIRRORS=mirrors)
    assert done.returncode == 1
    assert "cannot reach 127.0.0.1: connection refused" in done.stderr
    assert (
        f"{down} is the mirror for https://download.pytorch.org/whl/cpu (set in TOOLKIT_MIRRORS)"
        in done.stderr
    )


class _StallingIndex(http.server.BaseHTTPRequestHandler):
    """An index that never answers until released: pip-compile waits on it."""

    asked = threading.Event()
    release = threading.Event()

    def do_GET(self) -> None:
        type(self).asked.set()
        type(self).release.wait(timeout=120)
        self.send_error(404)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stalling_index() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StallingIndex)
    server.daemon_threads = True
    _StallingIndex.asked.clear()
    _StallingIndex.release.clear()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    _StallingIndex.release.set()
    server.shutdown()
    server.server_close()


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def _running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killing_a_lock_leaves_the_old_lockfile(
    project: Path, wheels: Path, stalling_index: str
) -> None:
    (project / "toolkit.yaml").write_text(
        YAML.format(python=PYTHON) + f'  slow:\n    index: {{url: "{stalling_index}"}}\n'
    )
    old = project / "lockfiles" / "slow.txt"
    old.parent.mkdir()
    old.write_bytes(b"# the previous lock\nnumpy==2.1.0 \\\n    --hash=sha256:00\n")
    before = old.read_bytes()

    running = subprocess.Popen(
        [sys.executable, "-m", "toolkit", "lock", "--target", "slow"],
        cwd=project,
        env=environment(project, wheels),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert _StallingIndex.asked.wait(timeout=60), "pip-compile never asked the index"
        compilers = _children(running.pid)
        assert compilers, "pip-compile is not running under toolkit"
        running.send_signal(signal.SIGKILL)  # mid pip-compile: no cleanup code runs
        running.wait(timeout=10)
    finally:
        if running.poll() is None:
            running.kill()
    deadline = time.monotonic() + 10
    while any(_running(pid) for pid in compilers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_running(pid) for pid in compilers), "pip-compile outlived toolkit"

    assert old.read_bytes() == before
    assert os.listdir(old.parent) == ["slow.txt"]
    leftovers = list((project / ".toolkit" / "tmp").glob("lock-slow-*"))
    assert leftovers  # the killed run's work file; the next lock removes it
    _StallingIndex.release.set()
    assert toolkit(project, wheels, "lock", "--target", "cpu").returncode == 0
    assert not list((project / ".toolkit" / "tmp").glob("lock-slow-*"))


def test_lock_in_a_copied_checkout_is_current(project: Path, wheels: Path, tmp_path: Path) -> None:
    """Lockfiles and their headers name nothing of the machine: a clone elsewhere agrees."""
    assert toolkit(project, wheels, "lock").returncode == 0
    clone = tmp_path / "elsewhere" / "clone"
    shutil.copytree(project, clone, ignore=shutil.ignore_patterns(".toolkit"))
    check = toolkit(clone, wheels, "lock", "--check", TOOLKIT_MIRRORS="")
    assert check.returncode == 0, check.stdout


def test_wheelhouse_download_uses_the_same_sources_and_trust(
    project: Path, wheels: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build step's `pip download` sees the target's mirrors, not the host's pip sources."""
    assert toolkit(project, wheels, "lock").returncode == 0
    for name, value in environment(project, wheels).items():
        monkeypatch.setenv(name, value)
    piptools.host_settings.cache_clear()
    cfg = load_config(project / "toolkit.yaml")
    dest = tmp_path / "wheelhouse"
    piptools.download_wheels(
        cfg, cfg.targets["cpu"], cfg.targets["cpu"].lockfile, dest, tmp_path / "download.log"
    )
    assert sorted(p.name for p in dest.iterdir()) == [
        "filelock-3.16.1-py3-none-any.whl",
        "numpy-2.2.0-py3-none-any.whl",
        "torch-2.13.0+cpu-py3-none-any.whl",
    ]
    piptools.host_settings.cache_clear()


def test_wheelhouse_download_refuses_a_tampered_lockfile(
    project: Path, wheels: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert toolkit(project, wheels, "lock", "--target", "gpu").returncode == 0
    for name, value in environment(project, wheels).items():
        monkeypatch.setenv(name, value)
    piptools.host_settings.cache_clear()
    cfg = load_config(project / "toolkit.yaml")
    lockfile = cfg.targets["gpu"].lockfile
    numpy = sha256(wheels / "pypi" / "numpy-2.2.0-py3-none-any.whl")
    lockfile.write_text(lockfile.read_text().replace(numpy, "0" * 64))
    with pytest.raises(
        BuildError, match=r"do not match the hashes in the lockfile: numpy==2.2.0$"
    ) as err:
        piptools.download_wheels(
            cfg, cfg.targets["gpu"], lockfile, tmp_path / "wh", tmp_path / "download.log"
        )
    assert err.value.log == tmp_path / "download.log"
    piptools.host_settings.cache_clear()


def test_a_lockfile_edited_by_hand_fails_the_check_and_lock_repairs_it(
    project: Path, wheels: Path
) -> None:
    assert toolkit(project, wheels, "lock", "--target", "gpu").returncode == 0
    lockfile = project / "lockfiles" / "gpu.txt"
    written = lockfile.read_text()
    # a downgrade by hand: the line keeps numpy 2.2.0's hashes
    lockfile.write_text(written.replace("numpy==2.2.0", "numpy==2.1.0"))

    check = toolkit(project, wheels, "lock", "--check", "--target", "gpu")
    assert check.returncode == 1, check.stdout
    assert "lockfiles/gpu.txt stale: was edited by hand after `toolkit lock` wrote it" in (
        check.stdout
    )
    assert "fix: toolkit lock --target gpu" in check.stdout

    relock = toolkit(project, wheels, "lock", "--target", "gpu")
    assert relock.returncode == 0, relock.stderr
    assert "gpu: lockfiles/gpu.txt written" in relock.stdout
    numpy = sha256(wheels / "pypi" / "numpy-2.2.0-py3-none-any.whl")
    assert f"numpy==2.2.0 \\\n    --hash=sha256:{numpy}\n" in lockfile.read_text()
    assert lockfile.read_text() == written
    assert toolkit(project, wheels, "lock", "--check", "--target", "gpu").returncode == 0


def test_a_project_without_packages_locks_without_an_index(project: Path, wheels: Path) -> None:
    (project / "requirements.in").write_text("# the standard library is enough\n")
    done = toolkit(project, wheels, "lock", TOOLKIT_MIRRORS="")  # no index is needed
    assert done.returncode == 0, done.stderr
    assert "cpu: lockfiles/cpu.txt written (no packages: requirements.in lists none" in done.stdout
    assert "requirements.in lists no packages: the lockfile pins none" in done.stderr
    log = (project / ".toolkit" / "logs" / "lock-cpu.log").read_text()
    assert "(pip-tools not run)" in log
    for name in ("cpu", "gpu"):
        text = (project / "lockfiles" / f"{name}.txt").read_text()
        assert lock.read_pins(text) == {}
    check = toolkit(project, wheels, "lock", "--check")
    assert check.returncode == 0, check.stdout
