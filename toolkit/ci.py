"""CI pipelines rendered from toolkit.yaml: GitHub Actions and GitLab CI, as text.

Both run the same three stages: the lock drift gate (`toolkit lock --check`), the experiment
once per target (targets with `gpus` on GPU runners, the others on ordinary ones), each run
exported as a bundle (a failed run's too), and a repro-check that runs the control target once
more and compares it with every bundle there is, even when some target's job failed; the
Markdown report goes to the job summary (GitHub) or an artifact (GitLab), names the targets
without a bundle, and the pipeline fails when results diverge beyond tolerance or a target has
no run to compare.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from toolkit.config import CONFIG_FILE, DEBIAN_BASE, Config, TargetConfig
from toolkit.errors import ConfigError
from toolkit.scaffold import quoted

GITHUB_WORKFLOW = Path(".github/workflows/toolkit.yml")
GITLAB_PIPELINE = Path(".gitlab-ci.yml")

DEFAULT_INSTALL = "pip install repro-toolkit"
HOSTED_RUNNER = "ubuntu-latest"
GITHUB_GPU_RUNNER = ("self-hosted", "gpu")
GITLAB_GPU_TAGS = ("gpu",)

# Pinned to major-version tags; bump them here.
CHECKOUT = "actions/checkout@v4"
SETUP_PYTHON = "actions/setup-python@v5"
UPLOAD_ARTIFACT = "actions/upload-artifact@v4"
DOWNLOAD_ARTIFACT = "actions/download-artifact@v4"
DIND_SERVICE = "docker:28-dind"


@dataclass(frozen=True)
class CiOptions:
    """What the pipeline installs, where GPU jobs run, and the repro-check tolerances."""

    install: str = DEFAULT_INSTALL
    gpu_runner: tuple[str, ...] = ()  # empty: the platform's default (GITHUB_GPU_RUNNER, ...)
    rtol: float | None = None
    atol: float | None = None


def check_layout(cfg: Config, kind: str) -> None:
    """A pipeline's steps run `toolkit` at the repository's root, which must hold the project's
    toolkit.yaml: GitHub and GitLab read a pipeline only there. ConfigError otherwise."""
    from toolkit.source import repository_root

    if cfg.path.name != CONFIG_FILE:
        raise ConfigError(
            f"{cfg.path.name}: the {kind} workflow's steps run toolkit with {CONFIG_FILE}",
            hint=f"rename {cfg.path.name} to {CONFIG_FILE}, then run `toolkit ci {kind}` again",
        )
    top = repository_root(cfg.root)
    if top is not None and top != cfg.root.resolve():
        raise ConfigError(
            f"the project is in {cfg.root}, not at the repository's root ({top}): "
            f"{kind} reads a workflow only at the root, and its steps run toolkit there",
            hint="toolkit ci writes workflows for a project at the root of its repository",
        )


def control_target(cfg: Config) -> TargetConfig:
    """The target the compare job runs itself: the first without GPUs, else the first."""
    targets = _targets(cfg)
    return next((t for t in targets if not t.gpus), targets[0])


def render_github(cfg: Config, options: CiOptions | None = None) -> str:
    """The GitHub Actions workflow (.github/workflows/toolkit.yml)."""
    opts = options or CiOptions()
    targets = _targets(cfg)
    control = control_target(cfg)
    gpu_runner = opts.gpu_runner or GITHUB_GPU_RUNNER

    def runner(target: TargetConfig) -> list[str]:
        return list(gpu_runner) if target.gpus else [HOSTED_RUNNER]

    lines = [
        *_header(cfg, "toolkit ci github"),
        "# Fork pull requests are not a trigger on purpose: GPU jobs run on self-hosted runners.",
        "name: toolkit",
        "",
        "on:",
        "  push:",
        "  workflow_dispatch:",
        "",
        "permissions:",
        "  contents: read",
        "",
        "concurrency:",
        "  group: toolkit-${{ github.ref }}",
        "  cancel-in-progress: true",
        "",
        "defaults:",
        "  run:",
        "    shell: bash  # bash -eo pipefail: any failing command fails the step",
        "",
        "jobs:",
        "  lock-check:",
        "    name: lockfiles are current",
        f"    runs-on: {HOSTED_RUNNER}",
        "    steps:",
        *_github_setup(cfg, opts),
        "      - name: Lock drift gate",
        "        run: toolkit lock --check",
        "",
        "  run:",
        "    name: run on ${{ matrix.target }}",
        "    needs: lock-check",
        "    runs-on: ${{ matrix.runner }}",
        "    strategy:",
        "      fail-fast: false",
        "      matrix:",
        "        include:",
    ]
    for target in targets:
        lines += [
            f"          - target: {_q(target.name)}",
            f"            runner: {_flow(runner(target))}",
            f"            debian_base: {_bool(target.base == DEBIAN_BASE)}",
        ]
    lines += [
        "    steps:",
        *_github_setup(cfg, opts),
        "      - name: Check this machine",
        "        run: toolkit doctor",
        "      - name: Base image from Debian packages (no registry)",
        "        if: matrix.debian_base",
        "        run: |",
        *_indent(_BASE_SCRIPT, 10),
        "      - name: Build the image",
        "        run: toolkit build --target ${{ matrix.target }}",
        "      - name: Run the experiment",
        "        id: run",
        "        run: toolkit run --target ${{ matrix.target }}",
        "      # A failed run is recorded too: bundled, it can be shown and diffed elsewhere. Not",
        "      # when the run never started (a failed build): there is no run to bundle.",
        "      - name: Bundle the run record",
        "        id: export",
        "        if: ${{ !cancelled() && steps.run.outcome != 'skipped' }}",
        "        run: |",
        *_indent(_export_script("${{ matrix.target }}"), 10),
        f"      - uses: {UPLOAD_ARTIFACT}",
        "        if: ${{ !cancelled() && steps.export.outcome == 'success' }}",
        "        with:",
        "          name: run-${{ matrix.target }}",
        "          path: run-${{ matrix.target }}.tar.gz",
        "          if-no-files-found: error",
        "",
        "  repro-check:",
        f"    name: repro-check against {control.name}",
        "    needs: run",
        "    # Also when a target's job failed: the others are compared, and the report names the",
        "    # targets without a run. Not when the lock check failed (no target ran).",
        "    if: ${{ !cancelled() && needs.run.result != 'skipped' }}",
        f"    runs-on: {_flow(runner(control))}",
        "    steps:",
        *_github_setup(cfg, opts),
        "      # Outside the checkout: untracked files there would count as a code change.",
        f"      - uses: {DOWNLOAD_ARTIFACT}",
        "        with:",
        "          pattern: run-*",
        "          path: ${{ runner.temp }}/bundles",
        "          merge-multiple: true",
        "      - name: Any run to compare? (no bundle at all is said before building anything)",
        "        run: |",
        *_indent(
            [
                f"if {_none_arrived(targets, '$RUNNER_TEMP/bundles')}; then"
                f' {_nothing_to_compare([t.name for t in targets])} >> "$GITHUB_STEP_SUMMARY";'
                " exit 2; fi"
            ],
            10,
        ),
    ]
    if control.base == DEBIAN_BASE:
        lines += [
            "      - name: Base image from Debian packages (no registry)",
            "        run: |",
            *_indent(_BASE_SCRIPT, 10),
        ]
    report = "$RUNNER_TEMP/repro-check.md"
    lines += [
        f"      - name: Build the {control.name} image",
        f"        run: toolkit build --target {control.name}",
        "      - name: Compare every run (fails when results diverge or a target has no run)",
        "        run: |",
        *_indent(
            _compare_script(
                control,
                opts,
                [t.name for t in targets],
                folder="$RUNNER_TEMP/bundles",
                report=report,
                publish=f'cat "{report}" >> "$GITHUB_STEP_SUMMARY"',
            ),
            10,
        ),
    ]
    return "\n".join(lines) + "\n"


def render_gitlab(cfg: Config, options: CiOptions | None = None) -> str:
    """The GitLab CI pipeline (.gitlab-ci.yml)."""
    opts = options or CiOptions()
    targets = _targets(cfg)
    control = control_target(cfg)
    gpu_tags = opts.gpu_runner or GITLAB_GPU_TAGS
    plain = [t for t in targets if not t.gpus]
    gpus = [t for t in targets if t.gpus]

    lines = [
        *_header(cfg, "toolkit ci gitlab"),
        "# Jobs without `tags` build and run images with Docker-in-Docker (a privileged runner);",
        "# GPU jobs go to runners with these tags whose jobs reach the host's Docker Engine and",
        "# its NVIDIA runtime (a shell executor, or a docker executor with the socket mounted).",
        "stages: [lock, run, compare]",
        "",
        ".toolkit:",
        f"  image: python:{cfg.python}-bookworm",
        "  before_script:",
        '    - python3 -m venv "/tmp/toolkit-venv-$CI_JOB_ID"  # outside the checkout',
        '    - . "/tmp/toolkit-venv-$CI_JOB_ID/bin/activate"',
        f"    - {_q(opts.install)}",  # one entry: a `\\` line continuation stays one command
        "  after_script:  # a shell executor's /tmp outlives the job",
        '    - rm -rf "/tmp/toolkit-venv-$CI_JOB_ID"',
        "",
        ".toolkit-engine:",
        "  extends: .toolkit",
        "  services:",
        f"    - {DIND_SERVICE}",
        "  variables:",
        "    DOCKER_HOST: tcp://docker:2375",
        '    DOCKER_TLS_CERTDIR: ""',
        "",
        *(
            [".toolkit-gpu:", "  extends: .toolkit", f"  tags: {_flow(list(gpu_tags))}", ""]
            if gpus
            else []
        ),
        "lock-check:",
        "  stage: lock",
        "  extends: .toolkit",
        "  script:",
        "    - toolkit lock --check",
    ]
    jobs = (("run", plain, ".toolkit-engine"), ("run-gpu", gpus, ".toolkit-gpu"))
    for job, group, template in jobs:
        if not group:
            continue
        lines += [
            "",
            f"{job}:",
            "  stage: run",
            f"  extends: {template}",
            "  parallel:",
            "    matrix:",
            f"      - TARGET: {_flow([t.name for t in group])}",
            "  script:",
            "    - toolkit doctor",
        ]
        debian = [t.name for t in group if t.base == DEBIAN_BASE]
        if debian == [t.name for t in group]:
            lines += ["    - |", *_indent(_BASE_SCRIPT, 6)]
        elif debian:
            lines += [
                "    - |",
                f'      case " {" ".join(debian)} " in *" $TARGET "*)',
                *_indent(_BASE_SCRIPT, 8),
                "        ;;",
                "      esac",
            ]
        lines += [
            '    - toolkit build --target "$TARGET"',
            "    - |",
            *_indent(_run_and_export_script("$TARGET"), 6),
            "  artifacts:",
            "    when: always  # a failed run's bundle too",
            '    name: "run-$TARGET"',
            '    paths: ["run-$TARGET.tar.gz"]',
            "    expire_in: 30 days",
        ]
    needs = ["run"] * bool(plain) + ["run-gpu"] * bool(gpus)
    lines += [
        "",
        "repro-check:",
        "  stage: compare",
        f"  extends: {'.toolkit-gpu' if control.gpus else '.toolkit-engine'}",
        f"  needs: {_flow(needs)}",
        # Also when a target's job failed: the others are compared, and the report names the
        # targets without a run. GitLab runs it after a failed lock check too (it cannot tell a
        # skipped need from a failed one): with no bundle at all, it says so before any build.
        "  when: always",
        "  script:",
        "    - |",
        "      # no bundle at all: said before building anything",
        f"      if {_none_arrived(targets, '.')}; then"
        f" {_nothing_to_compare([t.name for t in targets])} > repro-check.md;"
        " cat repro-check.md; exit 2; fi",
    ]
    if control.base == DEBIAN_BASE:
        lines += ["    - |", *_indent(_BASE_SCRIPT, 6)]
    lines += [
        f"    - toolkit build --target {control.name}",
        "    - |",
        # Bundles arrive in the checkout; moved out, they do not count as a code change.
        '      bundles="$(mktemp -d)"',
        "      for bundle in run-*.tar.gz; do"
        ' if [ -e "$bundle" ]; then mv "$bundle" "$bundles"/; fi; done',  # none: stays literal
        *_indent(
            _compare_script(
                control,
                opts,
                [t.name for t in targets],
                folder="$bundles",
                report="$bundles/report.md",
                publish='cp "$bundles/report.md" repro-check.md',
            ),
            6,
        ),
        "  artifacts:",
        "    when: always",
        '    expose_as: "repro-check report"',
        "    paths: [repro-check.md]",
        "    expire_in: 30 days",
    ]
    return "\n".join(lines) + "\n"


# --- shell snippets (POSIX sh: GitLab images may lack bash) --------------------------------------

_BASE_SCRIPT = [
    "# debootstrap and `toolkit base` need root; the base image is reused by later builds.",
    "# Ubuntu runners lack Debian's archive key, which debootstrap checks the packages with.",
    'as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -E "$@"; fi; }',
    "keyring=/usr/share/keyrings/debian-archive-keyring.gpg",
    'if ! command -v debootstrap >/dev/null || [ ! -e "$keyring" ]; then',
    "  as_root apt-get update -qq",
    "  as_root apt-get install -y -qq debootstrap debian-archive-keyring",
    "fi",
    'as_root "$(command -v toolkit)" base',
    'as_root chown -R "$(id -u):$(id -g)" .toolkit',
]


def _export_script(target: str) -> list[str]:
    return [f'toolkit runs export latest "run-{target}.tar.gz"']


def _run_and_export_script(target: str) -> list[str]:
    """GitLab: the run, then its bundle even when the run failed; the run's exit code counts.

    In the script, not after_script, which runs when the build failed too (no run to bundle),
    without the venv, and whose failures do not fail the job."""
    return [
        "status=0",
        f'toolkit run --target "{target}" || status=$?',
        # the last line decides (GitLab may report only a block's last command): an export
        # that fails after a run that succeeded fails the job
        f'toolkit runs export latest "run-{target}.tar.gz" || [ "$status" -ne 0 ] || status=1',
        'if [ "$status" -ne 0 ]; then exit "$status"; fi',
    ]


INCOMPLETE = "❌ repro-check incomplete: no run bundle from"
NO_BUNDLE = "no run bundle (its job failed before a run was recorded, or did not run)"


def _none_arrived(targets: Sequence[TargetConfig], folder: str) -> str:
    """A shell test: no target's run bundle is in `folder`."""
    return " && ".join(f'[ ! -e "{folder}/run-{t.name}.tar.gz" ]' for t in targets)


def _nothing_to_compare(targets: Sequence[str]) -> str:
    """The report when no target left a bundle: a shell group that prints it."""
    said = ["### repro-check could not compare: no target has a run bundle", ""]
    said += [f"- {target}: {NO_BUNDLE}" for target in targets]
    return "{ " + " ".join(f'echo "{line}";' if line else "echo;" for line in said) + " }"


def _compare_script(
    control: TargetConfig,
    opts: CiOptions,
    targets: Sequence[str],
    *,
    folder: str,
    report: str,
    publish: str,
) -> list[str]:
    """repro-check against the bundle of every target that has one (`folder`/run-<target>.tar.gz):
    the report, which names the targets without one, is published, then the exit code counts:
    repro-check's, or 2 (could not check, as repro-check says of a failed run) when a target
    has no bundle."""
    tolerance = "".join(
        f" --{name} {value!r}"  # as given: `:g` would round to 6 digits
        for name, value in (("rtol", opts.rtol), ("atol", opts.atol))
        if value is not None
    )
    errors = f"{report}.err"
    bundle = f"{folder}/run-$target.tar.gz"
    return [
        # one target at a time: a target whose job failed before a run was recorded has none,
        # and an unmatched glob would stay literal in sh
        f'targets="{" ".join(targets)}"',
        "set --",
        'missing=""',
        f'for target in $targets; do if [ -e "{bundle}" ]; then'
        f' set -- "$@" --against "{bundle}"; else missing="$missing $target"; fi; done',
        f'if [ "$#" -eq 0 ]; then {_nothing_to_compare(targets)} > "{report}"; cat "{report}";'
        f" {publish}; exit 2; fi",
        "status=0",
        f'toolkit repro-check --target {control.name} --runs 2 "$@"{tolerance} --markdown \\',
        f'  > "{report}" 2> "{errors}" || status=$?',
        f'cat "{errors}" >&2',
        # what it said on stderr belongs in the summary: why nothing was compared, and the
        # runs from elsewhere that were left out
        # (one line each: GitLab runs each script entry as a command of its own)
        f'if [ ! -s "{report}" ]; then {{ echo "### repro-check could not compare (exit'
        f' $status)"; echo; echo "~~~"; tail -n 20 "{errors}"; echo "~~~"; }}'
        f' > "{report}"; else sed -n "s/^\\(.* left out: .*\\)$/- \\1/p" "{errors}"'
        f' >> "{report}"; fi',
        # a target without a run fails the job: the report says so first, whatever it says
        f'if [ -n "$missing" ]; then {{ echo "### {INCOMPLETE}$missing"; echo; cat "{report}";'
        f' for target in $missing; do echo "- $target: {NO_BUNDLE}"; done; }} > "{report}.new";'
        f' mv "{report}.new" "{report}"; fi',
        f'cat "{report}"',
        publish,
        'if [ -n "$missing" ]; then status=2; fi',
        'exit "$status"',
    ]


# --- helpers ----------------------------------------------------------------------------------


def _targets(cfg: Config) -> list[TargetConfig]:
    if not cfg.targets:
        raise ConfigError(
            f"{cfg.path}: no targets: a pipeline runs the experiment once per target",
            hint="add `targets: {cpu: {}}` (toolkit init writes one)",
        )
    if cfg.experiment is None:
        raise ConfigError(
            f"{cfg.path}: no experiment: a pipeline runs experiment.command",
            hint="add `experiment: {command: python train.py}`",
        )
    return list(cfg.targets.values())


def _header(cfg: Config, command: str) -> list[str]:
    return [
        f"# Written by `{command}` from toolkit.yaml (project {cfg.name}): lock drift gate, the",
        "# experiment on every target, and a repro-check across them. Regenerate after changing",
        f"# targets: `{command} --force`.",
    ]


def _github_setup(cfg: Config, opts: CiOptions) -> list[str]:
    return [
        f"      - uses: {CHECKOUT}",
        f"      - uses: {SETUP_PYTHON}",
        "        with:",
        f"          python-version: {_q(cfg.python)}",
        "      - name: Install toolkit",
        "        run: |",
        *_indent(opts.install.splitlines(), 10),
    ]


def _indent(lines: Sequence[str], spaces: int) -> list[str]:
    return [" " * spaces + line if line.strip() else "" for line in lines]


def _q(text: str) -> str:
    """A double-quoted YAML scalar: target names like `true` or `1.0` stay strings."""
    return quoted(text)


def _flow(items: Sequence[str]) -> str:
    return "[" + ", ".join(_q(item) for item in items) + "]"


def _bool(value: bool) -> str:
    return "true" if value else "false"
