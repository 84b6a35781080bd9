"""The rendered Dockerfile and the content hash: pure text, tested as text."""

from __future__ import annotations

from toolkit import __version__
from toolkit.image import content_hash, render_dockerfile


def test_dockerfile_is_multi_stage_hermetic_and_non_root() -> None:
    text = render_dockerfile("toolkit-base:bookworm-abc", "cpu", uid=1000)
    assert text.count("FROM toolkit-base:bookworm-abc") == 2
    assert "FROM toolkit-base:bookworm-abc AS install" in text
    install = text.split("AS install", 1)[1].split("\nFROM ", 1)[0]
    assert "--no-index" in install and "--require-hashes" in install
    assert "--only-binary=:all:" in install
    final = text.rsplit("\nFROM ", 1)[1]
    assert "COPY --from=install /opt/venv /opt/venv" in final
    assert "wheels" not in final  # the wheelhouse stays in the first stage
    assert "USER 1000:1000" in final
    assert f"toolkit {__version__}" in text


def test_content_hash_covers_every_input() -> None:
    ref = content_hash("sha256:base", b"torch==1\n", "FROM x")
    assert len(ref) == 20
    assert content_hash("sha256:base", b"torch==1\n", "FROM x") == ref
    assert content_hash("sha256:other", b"torch==1\n", "FROM x") != ref
    assert content_hash("sha256:base", b"torch==2\n", "FROM x") != ref
    assert content_hash("sha256:base", b"torch==1\n", "FROM y") != ref
