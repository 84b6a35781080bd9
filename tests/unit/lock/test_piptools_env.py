"""The pip environment: host trust settings kept, host package sources dropped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from toolkit import piptools

PIP_CONFIG_LIST = """\
global.cert='/etc/ssl/certs/ca-certificates.crt'
global.constraint='/etc/xdg/pip/constraints.txt'
global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'
global.find-links='/opt/wheels'
global.timeout='60'
install.proxy='http://proxy.internal:3128'
install.no-index='true'
download.cert='/ignored/for/install.pem'
:env:.cert='/etc/ssl/certs/ca-certificates.crt'
:env:.default-timeout='180'
:env:.find-links='/opt/wheels'
:env:.trusted-host='mirror.internal\\nother.internal'
"""


def test_trust_settings_are_kept_and_sources_dropped() -> None:
    settings = piptools.parse_pip_config(PIP_CONFIG_LIST)
    assert dict(settings.kept) == {
        "cert": "/etc/ssl/certs/ca-certificates.crt",
        "proxy": "http://proxy.internal:3128",
        "timeout": "180",  # the environment wins over the config file, default-timeout is timeout
        "trusted-host": "mirror.internal\nother.internal",
    }
    assert set(settings.dropped) == {
        "global.constraint",
        "global.extra-index-url",
        "global.find-links",
        "install.no-index",
        "download.cert",
        ":env:.find-links",
    }
    assert "find-links" in settings.describe()


def test_environment_has_no_config_files_and_no_source_variables() -> None:
    settings = piptools.parse_pip_config(PIP_CONFIG_LIST)
    base = {
        "PATH": "/usr/bin",
        "HTTPS_PROXY": "http://proxy.internal:3128",
        "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
        "PIP_FIND_LINKS": "/opt/wheels",
        "PIP_INDEX_URL": "https://elsewhere/simple",
        "PIP_CONSTRAINT": "/etc/xdg/pip/constraints.txt",
        "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt",
        "PIP_TOOLS_CACHE_DIR": "/cache",
    }
    env = piptools.pip_environment(settings, base)
    assert env == {
        "PATH": "/usr/bin",
        "HTTPS_PROXY": "http://proxy.internal:3128",
        "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
        "PIP_TOOLS_CACHE_DIR": "/cache",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt",
        "PIP_PROXY": "http://proxy.internal:3128",
        "PIP_DEFAULT_TIMEOUT": "180",
        "PIP_TRUSTED_HOST": "mirror.internal\nother.internal",
    }


def test_real_pip_sees_only_the_kept_settings(tmp_path: Path) -> None:
    """pip itself, given the environment, reports no source from a hostile host config."""
    config = tmp_path / "pip.conf"
    config.write_text(
        "[global]\nfind-links = /opt/wheels\nextra-index-url = file:///opt/pypi/simple\n"
        "cert = /etc/ssl/certs/ca-certificates.crt\ntimeout = 42\n"
    )
    host = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    host.update(PIP_CONFIG_FILE=str(config), PIP_FIND_LINKS="/somewhere", PIP_RETRIES="7")
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        env=host,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    env = piptools.pip_environment(piptools.parse_pip_config(listed), host)
    seen = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "find-links" not in seen and "index-url" not in seen
    assert ":env:.cert='/etc/ssl/certs/ca-certificates.crt'" in seen
    assert ":env:.default-timeout='42'" in seen
    assert ":env:.retries='7'" in seen


def test_host_settings_reads_this_machine() -> None:
    settings = piptools.host_settings()
    assert all(name in piptools._TRUST_OPTIONS for name, _ in settings.kept)


def test_compile_args_never_emit_sources_and_pin_with_hashes(tmp_path: Path) -> None:
    sources = piptools.Sources(
        (piptools.Source(piptools.PYPI, "targets.gpu.index.url", "index", piptools.PYPI),)
    )
    args = piptools.compile_args(
        "requirements.in",
        tmp_path / "out.txt",
        sources,
        cache_dir=tmp_path / "c",
        upgrade_packages=["numpy"],
    )
    for flag in (
        "--generate-hashes",
        "--allow-unsafe",
        "--no-emit-index-url",
        "--no-emit-find-links",
        "--no-emit-trusted-host",
        "--no-header",
        "--no-config",
    ):
        assert flag in args
    assert args[args.index("--output-file") + 1] == str(tmp_path / "out.txt")
    assert args[args.index("--upgrade-package") + 1] == "numpy"
    assert args[-1] == "requirements.in"


def test_the_launcher_takes_hashes_from_index_links() -> None:
    from pip._internal.models.link import Link
    from piptools.repositories.pypi import PyPIRepository

    original = PyPIRepository._get_file_hash
    try:
        piptools._patch_hashing()
        link = Link("https://files.example/torch-2.13.0-cp311-none-any.whl#sha256=" + "ab" * 32)
        # no network, no download: the fragment is the answer
        assert PyPIRepository._get_file_hash(None, link) == "sha256:" + "ab" * 32  # type: ignore[arg-type]
    finally:
        PyPIRepository._get_file_hash = original  # type: ignore[method-assign]


def test_this_pip_reads_metadata_by_range_requests() -> None:
    assert piptools._fast_deps_supported()


@pytest.mark.parametrize("python", [sys.executable])
def test_the_launcher_is_pip_compile(python: str) -> None:
    done = subprocess.run(
        [python, "-m", "toolkit.piptools", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert "pip-compile, version" in done.stdout


def test_host_settings_follow_pips_precedence(tmp_path: Path) -> None:
    """PIP_CONFIG_FILE overrides global files and PIP_* variables override both, as in pip."""
    env_file = tmp_path / "pip.conf"
    env_file.write_text("[global]\ncert = /env-file.pem\ntimeout = 5\nfind-links = /opt/w\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=str(env_file), PIP_RETRIES="3", PIP_DEFAULT_TIMEOUT="9")
    text = subprocess.run(
        [sys.executable, "-m", "toolkit.piptools", "--pip-config"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    kept = dict(piptools.parse_pip_config(text).kept)
    assert kept["cert"] == "/env-file.pem"
    assert kept["timeout"] == "9"
    assert kept["retries"] == "3"
    assert "find-links" not in kept
