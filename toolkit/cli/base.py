"""`toolkit base`: bootstrap the Debian base image, no registry needed."""

from __future__ import annotations

from pathlib import Path

from toolkit.cli.app import app, options, output


@app.command("base")
def base_command() -> None:
    """Build (or reuse) the Debian base image that targets with `base: debian` start from."""
    from toolkit.base import base_tag, ensure_base
    from toolkit.config import BaseConfig
    from toolkit.paths import logs_dir

    cfg = options().load_optional()
    base_cfg = cfg.base if cfg else BaseConfig()
    root = cfg.root if cfg else Path.cwd()
    log = logs_dir(root) / f"base-{base_tag(base_cfg)}.log"
    with output.progress(
        f"base image ({base_cfg.suite}, {', '.join(base_cfg.packages)})"
    ) as update:
        image = ensure_base(base_cfg, log=log, on_progress=update)
    if image.built:
        output.success(f"built {image.ref} ({image.id[:19]}) in {image.seconds:.0f}s")
    else:
        output.success(f"{image.ref} is present ({image.id[:19]}): nothing to do")
