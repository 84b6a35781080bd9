"""`toolkit config`: toolkit.yaml as toolkit reads it, every default filled in."""

from __future__ import annotations

from toolkit.cli.app import app, options, output


@app.command("config")
def config_command() -> None:
    """Print toolkit.yaml with every default filled in (itself a valid toolkit.yaml)."""
    import yaml

    from toolkit.config import resolved

    cfg = options().load()
    output.info(f"# {cfg.path} as toolkit reads it, defaults filled in")
    output.info(yaml.safe_dump(resolved(cfg), sort_keys=False).rstrip())
