"""Mirrors: a per-machine map from declared sources to mirrors, applied to a target's sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit import piptools
from toolkit.config import IndexConfig
from toolkit.errors import ConfigError

CPU_INDEX = IndexConfig(
    url="https://download.pytorch.org/whl/cpu", extra_urls=("https://pypi.org/simple",)
)


def env(tmp_path: Path, mirrors: str = "") -> dict[str, str]:
    return {"TOOLKIT_MIRRORS": mirrors, "XDG_CONFIG_HOME": str(tmp_path / "config")}


def test_no_mirrors_means_declared_sources(tmp_path: Path) -> None:
    sources = piptools.target_sources(
        "cpu", CPU_INDEX, tmp_path, piptools.load_mirrors(tmp_path, env(tmp_path))
    )
    assert sources.pip_args() == [
        "--index-url",
        "https://download.pytorch.org/whl/cpu",
        "--extra-index-url",
        "https://pypi.org/simple",
    ]


def test_a_folder_mirror_becomes_find_links(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    mirrors = piptools.load_mirrors(
        tmp_path, env(tmp_path, f"https://download.pytorch.org/whl/cpu/={wheels}")
    )
    sources = piptools.target_sources("cpu", CPU_INDEX, tmp_path, mirrors)
    assert sources.pip_args() == [
        "--index-url",
        "https://pypi.org/simple",
        "--find-links",
        str(wheels),
    ]
    torch = sources.items[0]
    assert (torch.declared, torch.kind, torch.mirror is not None) == (
        "https://download.pytorch.org/whl/cpu",
        "links",
        True,
    )


def test_every_source_mirrored_to_folders_means_no_index(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    mirrors = piptools.load_mirrors(
        tmp_path,
        env(
            tmp_path,
            f"https://download.pytorch.org/whl/cpu={tmp_path / 'a'}  "
            f"https://PyPI.org/simple={tmp_path / 'b'}",
        ),
    )
    args = piptools.target_sources("cpu", CPU_INDEX, tmp_path, mirrors).pip_args()
    assert args == [
        "--no-index",
        "--find-links",
        str(tmp_path / "a"),
        "--find-links",
        str(tmp_path / "b"),
    ]


def test_an_index_mirror_replaces_pypi_for_a_target_without_url(tmp_path: Path) -> None:
    mirrors = piptools.load_mirrors(
        tmp_path, env(tmp_path, "https://pypi.org/simple=https://nexus.internal/pypi/simple")
    )
    sources = piptools.target_sources("gpu", IndexConfig(), tmp_path, mirrors)
    assert sources.pip_args() == ["--index-url", "https://nexus.internal/pypi/simple"]
    assert sources.for_host("nexus.internal")[0].declared == piptools.PYPI
    assert sources.for_host("pypi.org")[0].key == "targets.gpu.index.url"


def test_declared_find_links_are_relative_to_the_project(tmp_path: Path) -> None:
    index = IndexConfig(find_links=("wheels",))
    sources = piptools.target_sources("cpu", index, tmp_path, piptools.Mirrors())
    assert sources.pip_args()[-2:] == ["--find-links", str(tmp_path / "wheels")]


def test_project_file_then_environment_take_precedence(tmp_path: Path) -> None:
    for name in ("user", "project", "env"):
        (tmp_path / name).mkdir()
    user_file = tmp_path / "config" / "toolkit" / "mirrors.toml"
    user_file.parent.mkdir(parents=True)
    user_file.write_text(
        f'"https://pypi.org/simple" = "{tmp_path / "user"}"\n'
        f'"https://download.pytorch.org/whl/cpu" = "{tmp_path / "user"}"\n'
    )
    project_file = tmp_path / ".toolkit" / "mirrors.toml"
    project_file.parent.mkdir()
    project_file.write_text(f'[mirrors]\n"https://pypi.org/simple" = "{tmp_path / "project"}"\n')
    mirrors = piptools.load_mirrors(tmp_path, env(tmp_path))
    assert mirrors.get("https://pypi.org/simple/").target == str(tmp_path / "project")  # type: ignore[union-attr]
    torch = mirrors.get("https://download.pytorch.org/whl/cpu")
    assert torch is not None and torch.origin == str(user_file)
    mirrors = piptools.load_mirrors(
        tmp_path, env(tmp_path, f"https://pypi.org/simple={tmp_path / 'env'}")
    )
    assert mirrors.get(piptools.PYPI).origin == "TOOLKIT_MIRRORS"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("https://pypi.org/simple", "is not SOURCE=MIRROR"),
        ("https://pypi.org/simple=relative/dir", "must be an absolute path"),
        ("https://pypi.org/simple=/no/such/folder", "does not exist"),
        ("/opt/wheels=https://pypi.org/simple", "is not a URL"),
    ],
)
def test_bad_mirror_settings_are_config_errors(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        piptools.load_mirrors(tmp_path, env(tmp_path, value))


def test_a_broken_mirrors_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / ".toolkit" / "mirrors.toml"
    path.parent.mkdir()
    path.write_text("not toml = = =\n")
    with pytest.raises(ConfigError, match=r"mirrors.toml: cannot read"):
        piptools.load_mirrors(tmp_path, env(tmp_path))
