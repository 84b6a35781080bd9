"""`toolkit build`, `toolkit images`, `toolkit image export|import|push|pull`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from toolkit.cli.app import TargetOption, TargetsOption, app, options, output

if TYPE_CHECKING:
    from toolkit import image

image_app = typer.Typer(help="Share images with teammates: archive files or a registry.")
app.add_typer(image_app, name="image")


@app.command("build")
def build_command(
    target: TargetsOption = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Rebuild even if the tag exists.")
    ] = False,
) -> None:
    """Build the hermetic, content-addressed image of a target from its lockfile."""
    build_targets(target, no_cache=no_cache)


def build_targets(names: list[str] | None, *, no_cache: bool = False, stderr: bool = False) -> None:
    """Build the images of the targets `names` (the default target's without); each result
    line on stderr with `stderr`, where stdout carries something else (`run --build`: the
    experiment's output)."""
    from toolkit import image
    from toolkit.paths import logs_dir

    cfg = options().load()
    for tgt in [cfg.target(name) for name in names] if names else [cfg.default_target()]:
        name = tgt.name
        if not tgt.base_is_pinned:
            output.warn(
                f"target {name}: base {tgt.base} is not pinned by digest, so builds on other "
                "machines or days may start from other bytes; use NAME@sha256:<digest>"
            )

        with output.progress(f"build {name}") as update:
            built = image.build(
                cfg,
                tgt,
                on_progress=update,
                log_dir=logs_dir(cfg.root),
                no_cache=no_cache,
            )
        if built.built:
            output.success(
                f"{name}: built {built.ref} in {built.seconds:.0f}s (log: {built.log})",
                stderr=stderr,
            )
        else:
            output.success(f"{name}: {built.ref} is up to date, nothing to build", stderr=stderr)


@app.command("images")
def images_command() -> None:
    """List the project's images: target, tag, size, created, lock hash, current or stale."""
    from toolkit import image

    cfg = options().load()
    rows = image.project_images(cfg)
    if not rows:
        output.info("no images yet: run `toolkit build`")
        return
    output.table(
        ["target", "image", "size", "created", "lock", "status"],
        [
            [
                r.target,
                r.ref,
                f"{r.size / 1e6:.0f} MB",
                r.created[:19].replace("T", " "),
                r.lock_hash[:12],
                "current" if r.current else "stale",
            ]
            for r in rows
        ],
    )


@image_app.command("export")
def export_command(
    file: Annotated[Path, typer.Argument(help="Archive to write (.tar.gz).")],
    target: TargetOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace FILE if it exists.")] = False,
) -> None:
    """Write a target's current image to a compressed archive a teammate can import."""
    from toolkit import image

    cfg = options().load()
    tgt = cfg.target(target)
    with output.progress(f"export {tgt.name} to {file}"):
        image_id = image.export_image(cfg, tgt, file, replace=force)
    output.success(f"wrote {file} ({file.stat().st_size / 1e6:.0f} MB, image {image_id[:19]})")


@image_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="Archive from `image export`.")],
) -> None:
    """Load an image archive, check its labels, and tag it by its content hash."""
    from toolkit import image

    with output.progress(f"import {file}"):
        imported = image.import_image(options().load_optional(), file)
    _adopted("imported", imported)


@image_app.command("push")
def push_command(
    repository: Annotated[str, typer.Argument(help="Registry repository, e.g. reg:5000/team/x.")],
    target: TargetOption = None,
) -> None:
    """Push a target's current image; prints the digest teammates pull by."""
    from toolkit import image

    cfg = options().load()
    tgt = cfg.target(target)
    with output.progress(f"push {tgt.name} to {repository}"):
        pinned = image.push_image(cfg, tgt, repository)
    output.success(f"pushed: {pinned}")
    output.info(f"teammates run: toolkit image pull {pinned}")


@image_app.command("pull")
def pull_command(
    ref: Annotated[str, typer.Argument(help="REPOSITORY@sha256:<digest> from `image push`.")],
) -> None:
    """Pull a pushed image by digest, check its labels, and tag it by its content hash."""
    from toolkit import image

    with output.progress(f"pull {ref}"):
        pulled = image.pull_image(options().load_optional(), ref)
    _adopted("pulled", pulled)


def _adopted(done: str, found: image.ImportedImage) -> None:
    """An image brought in: a success when `toolkit run` will use it, else a warning why not."""
    line = f"{done} {found.ref} ({found.id[:19]}), {found.state}"
    if found.current:
        output.success(line)
    else:
        output.warn(line)
