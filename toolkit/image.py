"""Target images: render the Dockerfile, hash every input into the tag, build hermetically."""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from toolkit import __version__, base, engine
from toolkit.config import Config, TargetConfig
from toolkit.errors import BuildError, UserError
from toolkit.paths import RUN_BUNDLE_TOP, STATE_DIR, check_destination, written_whole

IMAGE_UID = 1000  # the image's user; `run` maps the host uid over it
LABEL = "io.toolkit"
TEMPLATE = Path(__file__).resolve().parent.parent / "docker" / "Dockerfile.tmpl"


@dataclass(frozen=True)
class BuildPlan:
    """Everything that decides an image, and the tag those inputs hash to."""

    target: str
    base_ref: str  # names its content: the base's input-hash tag, or a registry digest
    lockfile: Path
    lock_hash: str
    dockerfile: str
    content_hash: str
    ref: str  # <project>-<target>:<content hash>


@dataclass(frozen=True)
class BuiltImage:
    """The outcome of `toolkit build` for one target."""

    ref: str
    id: str
    built: bool  # False: the tag existed, nothing was done
    seconds: float
    log: Path | None


def render_dockerfile(base_ref: str, target: str, uid: int = IMAGE_UID) -> str:
    """The Dockerfile for a target: pure text, from the template in docker/."""
    template = _template_text()
    return template.format(base=base_ref, target=target, uid=uid, toolkit_version=__version__)


def content_hash(base_ref: str, lock_bytes: bytes, dockerfile: str) -> str:
    """The tag of an image: sha256 over base, lockfile, Dockerfile and toolkit version.

    The base counts by its reference, which names its content (the input hash of a bootstrapped
    base, or a registry digest), not by the local image id: a teammate who imports the image
    and bootstraps the same base, or has none, finds the image current.
    """
    digest = hashlib.sha256()
    for part in (base_ref.encode(), lock_bytes, dockerfile.encode(), __version__.encode()):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:20]


def image_repository(cfg: Config, target: str) -> str:
    return f"{cfg.name}-{target}"


def plan(cfg: Config, target: TargetConfig) -> BuildPlan:
    """Resolve the base and lockfile of a target and compute its content-addressed tag."""
    if not target.lockfile.is_file():
        raise UserError(
            f"no lockfile for target {target.name}: {target.lockfile}",
            hint=f"run `toolkit lock --target {target.name}`",
        )
    lock_bytes = target.lockfile.read_bytes()
    base_ref = base.base_ref(target, cfg.base)
    dockerfile = render_dockerfile(base_ref, target.name)
    chash = content_hash(base_ref, lock_bytes, dockerfile)
    return BuildPlan(
        target=target.name,
        base_ref=base_ref,
        lockfile=target.lockfile,
        lock_hash=hashlib.sha256(lock_bytes).hexdigest(),
        dockerfile=dockerfile,
        content_hash=chash,
        ref=f"{image_repository(cfg, target.name)}:{chash}",
    )


def labels(cfg: Config, p: BuildPlan, base_id: str) -> dict[str, str]:
    """OCI and toolkit labels: what the image was built from."""
    from toolkit.source import source_state

    source = source_state(cfg.root, cfg.not_code())
    found = {
        f"{LABEL}.project": cfg.name,
        f"{LABEL}.target": p.target,
        f"{LABEL}.content-hash": p.content_hash,
        f"{LABEL}.lock-hash": p.lock_hash,
        f"{LABEL}.base-digest": base_id,
        f"{LABEL}.base-ref": p.base_ref,
        f"{LABEL}.version": __version__,
        "org.opencontainers.image.title": f"{cfg.name} ({p.target})",
        "org.opencontainers.image.base.name": p.base_ref,
        "org.opencontainers.image.base.digest": base_id,
    }
    if source.commit:
        found["org.opencontainers.image.revision"] = source.commit + (
            "-dirty" if source.dirty else ""
        )
    return found


def build(
    cfg: Config,
    target: TargetConfig,
    *,
    on_progress: Callable[[str], None],
    log_dir: Path,
    no_cache: bool = False,
) -> BuiltImage:
    """Build a target's image unless its content tag exists."""
    import shutil
    import tempfile

    from toolkit import piptools, wheelhouse

    started = time.monotonic()
    p = plan(cfg, target)
    stale = _lock_not_current(cfg, target)
    if stale is not None:
        raise stale
    existing = engine.image(p.ref)
    if existing is not None and not no_cache:
        return BuiltImage(p.ref, existing.id, False, time.monotonic() - started, None)

    base_id = base.require_base(target, cfg.base).id
    log = log_dir / f"build-{target.name}.log"
    log.write_text(f"# toolkit build {p.ref}\n{p.dockerfile}\n", encoding="utf-8")
    pins = wheelhouse.read_pins(p.lockfile.read_text(encoding="utf-8"))  # none: the base alone
    house = wheelhouse_dir(cfg)
    needed = wheelhouse.missing(pins, house)
    if needed:
        on_progress(f"downloading {len(needed)} wheels into {house}")
        piptools.download_wheels(cfg, target, p.lockfile, house, log)
    scratch = cfg.root / STATE_DIR / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    context = Path(tempfile.mkdtemp(prefix=f"build-{target.name}-", dir=scratch))
    try:
        on_progress("verifying wheel hashes against the lockfile")
        wheelhouse.collect(pins, house, context / "wheels")
        shutil.copyfile(p.lockfile, context / "requirements.lock")
        (context / "Dockerfile").write_text(p.dockerfile, encoding="utf-8")
        outcome = _engine_build(context, p, labels(cfg, p, base_id), log, on_progress, no_cache)
    finally:
        shutil.rmtree(context, ignore_errors=True)
        # The install stage is left behind untagged, holding every wheel; a later build of
        # the same tag never happens, and a changed lockfile invalidates that stage anyway.
        engine.prune_dangling("io.toolkit.stage=install")
    assert outcome.image_id is not None
    return BuiltImage(p.ref, outcome.image_id, True, time.monotonic() - started, log)


def wheelhouse_dir(cfg: Config) -> Path:
    """The shared wheelhouse: wheels are reused across builds and targets, checked by hash."""
    path = cfg.root / STATE_DIR / "wheelhouse"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _engine_build(
    context: Path,
    p: BuildPlan,
    image_labels: dict[str, str],
    log: Path,
    on_progress: Callable[[str], None],
    no_cache: bool,
) -> engine.BuildOutcome:
    started = time.monotonic()
    with log.open("a", encoding="utf-8") as log_file:

        def on_line(line: str) -> None:
            log_file.write(line + "\n")
            if line.startswith("Step ") and " : LABEL " not in line:
                on_progress(f"[{time.monotonic() - started:4.0f}s] {line[:90]}")

        outcome = engine.build(context, p.ref, image_labels, on_line=on_line, no_cache=no_cache)
        if outcome.error:
            log_file.write(f"ERROR: {outcome.error}\n")
    if outcome.error:
        hint = f"failing step: {outcome.failed_step}" if outcome.failed_step else None
        if "no space left" in outcome.error:
            hint = "the disk is full: free space (`docker system prune`) and build again"
        tail = _tail(log, 8)
        raise BuildError(f"building {p.ref} failed: {outcome.error}\n{tail}", hint=hint, log=log)
    return outcome


def _tail(path: Path, lines: int) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join("    " + line for line in text[-lines:])


def _template_text() -> str:
    if TEMPLATE.is_file():
        return TEMPLATE.read_text(encoding="utf-8")
    from importlib import resources

    return resources.files("toolkit").joinpath("Dockerfile.tmpl").read_text(encoding="utf-8")


@dataclass(frozen=True)
class ProjectImage:
    """One of the project's images, as `toolkit images` lists it."""

    target: str
    ref: str
    id: str
    size: int
    created: str
    lock_hash: str
    current: bool  # built from today's lockfile, base and Dockerfile


@dataclass(frozen=True)
class ImportedImage:
    """An image loaded from an archive or pulled, and tagged after its labels checked out."""

    ref: str  # as this project runs it, when it was built from this project's current inputs
    id: str
    project: str  # the project that built it
    target: str
    current: bool  # `toolkit run` uses it
    state: str  # what it is to this project, in words: "current for this project", ...


def project_images(cfg: Config) -> list[ProjectImage]:
    """Every image of this project in the engine (built here, or imported and tagged for it),
    newest first."""
    current = {}
    for tgt in cfg.targets.values():
        with contextlib.suppress(UserError):  # no lockfile or no base yet: nothing is current
            current[tgt.name] = plan(cfg, tgt).content_hash
    found = []
    for img in engine.images(f"{LABEL}.content-hash"):
        target = img.labels.get(f"{LABEL}.target", "?")
        chash = img.labels.get(f"{LABEL}.content-hash", "")
        # Another project's image from the same inputs, imported, carries this project's tag.
        ours = [t for t in img.tags if t.startswith(f"{image_repository(cfg, target)}:")]
        if img.labels.get(f"{LABEL}.project") != cfg.name and not ours:
            continue
        tags = ours or list(img.tags)
        ref = next((t for t in tags if t.endswith(chash)), tags[0] if tags else img.id)
        found.append(
            ProjectImage(
                target=target,
                ref=ref,
                id=img.id,
                size=img.size,
                created=img.created,
                lock_hash=img.labels.get(f"{LABEL}.lock-hash", ""),
                current=current.get(target) == chash,
            )
        )
    return sorted(found, key=lambda i: i.created, reverse=True)


def current_image(cfg: Config, target: TargetConfig) -> tuple[str, engine.ImageInfo]:
    """The tag today's inputs hash to and its image; UserError pointing to `toolkit build`."""
    ref = plan(cfg, target).ref
    found = engine.image(ref)
    if found is None:
        stale = None  # a lockfile that needs `toolkit lock` first would fail the build
        with contextlib.suppress(UserError):  # requirements.in unreadable: the build says so
            stale = _lock_not_current(cfg, target)
        raise stale or UserError(
            f"no image for target {target.name} ({ref})",
            hint=f"run `toolkit build --target {target.name}` "
            "(`toolkit run --build` builds it first)",
        )
    return ref, found


def _lock_not_current(cfg: Config, target: TargetConfig) -> UserError | None:
    """The error to give when the target's lockfile does not match its inputs; else None."""
    from toolkit import lock

    found = lock.status(cfg, target.name)
    if found.state == "current":
        return None
    return UserError(
        f"lockfile {found.lockfile.name} of target {target.name}: {found.reason}",
        hint=f"run `toolkit lock --target {target.name}`, then `toolkit build --target "
        f"{target.name}`",
    )


def export_image(cfg: Config, target: TargetConfig, dest: Path, *, replace: bool = False) -> str:
    """Write the target's current image to a gzip-compressed archive (an existing file only
    if `replace`); returns the image id."""
    import gzip

    check_destination(dest, "image.tar.gz", replace=replace)
    _, found = current_image(cfg, target)
    with (
        written_whole(dest) as partial,
        partial.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) as gz,
    ):
        engine.save(found.id, gz.write)  # by id: the archive carries no tag, import applies one
    return found.id


def import_image(cfg: Config | None, source: Path) -> ImportedImage:
    """Load an exported archive, check its toolkit labels, then tag it by its content hash."""
    if source.is_dir():
        raise UserError(
            f"{source} is a folder, not an image archive",
            hint="name the file `toolkit image export` wrote, e.g. image.tar.gz",
        )
    if not source.is_file():
        raise UserError(f"{source}: no such file")
    if _is_run_bundle(source):
        raise UserError(
            f"{source} is a run bundle (toolkit runs export), not an image archive",
            hint=f"use `toolkit runs import {source}`",
        )
    before = engine.all_images()
    with source.open("rb") as handle:
        try:
            image_id = engine.load(handle)
        except Exception as exc:  # the engine rejects a corrupt or truncated archive
            if isinstance(exc, UserError):
                raise
            raise UserError(f"{source}: not a loadable image archive ({exc})") from None
    return _adopt_loaded(cfg, image_id, str(source), before)


def _is_run_bundle(source: Path) -> bool:
    """Whether `source` is what `toolkit runs export` writes: its first member says so."""
    import tarfile
    import zlib
    from pathlib import PurePosixPath

    try:
        with tarfile.open(source, "r:*") as archive:
            first = archive.next()
    except (OSError, EOFError, tarfile.TarError, zlib.error):
        return False  # not a tar archive at all: the engine says what it is not
    return first is not None and PurePosixPath(first.name).parts[:1] == (RUN_BUNDLE_TOP,)


def _adopt_loaded(
    cfg: Config | None, image_id: str, origin: str, before: dict[str, tuple[str, ...]]
) -> ImportedImage:
    """`_adopt` an image just loaded or pulled; one it refuses goes again, unless the engine
    had it before (`before`: `engine.all_images()` taken first)."""
    try:
        return _adopt(cfg, image_id, origin)
    except BaseException:
        with contextlib.suppress(Exception):  # the refusal is the error to show
            engine.discard_loaded(image_id, before)
        raise


def _adopt(cfg: Config | None, image_id: str, origin: str) -> ImportedImage:
    """Check a loaded image's toolkit labels, then tag it `<project>-<target>:<content hash>`:
    this project's name when it was built from this project's current inputs."""
    found = engine.image(image_id)
    assert found is not None
    project = found.labels.get(f"{LABEL}.project")
    target = found.labels.get(f"{LABEL}.target")
    chash = found.labels.get(f"{LABEL}.content-hash")
    if not (project and target and chash):
        raise UserError(f"{origin}: the image has no toolkit labels; toolkit did not build it")
    current, state = _standing(cfg, project, target, chash)
    ref = f"{project}-{target}:{chash}"
    if cfg is not None and current:
        # The content hash covers all that makes the image (base, lockfile, Dockerfile, toolkit
        # version), not the project's name: another project's image is this one's as it is.
        ref = f"{image_repository(cfg, target)}:{chash}"
    engine.tag(image_id, ref)
    return ImportedImage(ref, image_id, project, target, current, state)


def _standing(cfg: Config | None, project: str, target: str, chash: str) -> tuple[bool, str]:
    """Whether an image with these labels is current for this project, and what it is, in words."""
    if cfg is None:
        return False, "not checked against a project (no toolkit.yaml here)"
    other = f"an image of project {project}, not of this project ({cfg.name})"
    if target not in cfg.targets:
        if project != cfg.name:
            return False, other
        return False, f"target {target} is not in toolkit.yaml ({', '.join(cfg.targets)})"
    try:
        today = plan(cfg, cfg.targets[target]).content_hash
    except UserError as exc:
        return False, f"not checked against this project: {exc.message}"
    if today == chash:
        if project != cfg.name:
            return (
                True,
                f"built by project {project} from the same inputs: current for this project",
            )
        return True, "current for this project"
    if project != cfg.name:
        return False, other
    return False, "stale: not built from this project's current lockfile, base and toolkit version"


def push_image(cfg: Config, target: TargetConfig, repository: str) -> str:
    """Push the target's current image as repository:<content hash>; returns repository@digest."""
    ref, found = current_image(cfg, target)
    digest = engine.push(found.id, repository, ref.rpartition(":")[2])
    return f"{repository}@{digest}"


def pull_image(cfg: Config | None, ref: str) -> ImportedImage:
    """Pull a pushed image by digest, check its toolkit labels, tag it by its content hash."""
    hint = "pull what `toolkit image push` printed: REPOSITORY@sha256:<digest>"
    if "@sha256:" not in ref:
        raise UserError(f"{ref} is not pinned by digest", hint=hint)
    digest = ref.rpartition("@")[2]
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise UserError(f"{ref}: invalid digest {digest} (sha256: and 64 hex digits)", hint=hint)
    before = engine.all_images()
    return _adopt_loaded(cfg, engine.pull(ref), ref, before)
