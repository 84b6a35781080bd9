"""pip-compile's failures, read into one short line (from real pip output)."""

from __future__ import annotations

from toolkit import piptools

TRACEBACK = [
    "Traceback (most recent call last):",
    '  File "/x/resolvelib/resolution.py", line 434, in resolve',
    "    self._add_to_criteria(self.state.criteria, r, parent=None)",
    "pip._vendor.resolvelib.resolvers.exceptions.ResolutionImpossible: [...]",
]

NOT_FOUND = [
    "  Looking in links: /tmp/w",
    "  ERROR: Could not find a version that satisfies the requirement nosuchpkg "
    "(from versions: none)",
    *TRACEBACK,
    "pip._internal.exceptions.DistributionNotFound: No matching distribution found for nosuchpkg",
]

CONFLICT = [
    "  ERROR: Cannot install numpy==2.1.0 and tinytorch==2.13.0 because these package versions "
    "have conflicting dependencies.",
    "",
    "  The conflict is caused by:",
    "      The user requested numpy==2.1.0",
    "      tinytorch 2.13.0 depends on numpy>=2.2",
    "",
    "  To fix this you could try to:",
    *TRACEBACK,
    "pip._internal.exceptions.DistributionNotFound: ResolutionImpossible: for help visit https://pip",
]

INVALID = [
    *TRACEBACK,
    "pip._internal.exceptions._base.InstallationError: Invalid requirement: 'num py>=2': "
    "Expected semicolon (after name with no version specifier) or end",
    "    num py>=2",
    "        ^ (from line 2 of requirements.in)",
]

DNS = (
    "  WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) "
    "after connection broken by 'NameResolutionError(\"HTTPSConnection(host='download.pytorch.org'"
    ", port=443): Failed to resolve 'download.pytorch.org' ([Errno -2] Name or service not "
    "known)\")': /whl/cpu/torch/"
)
TIMEOUT = (
    "  WARNING: Retrying (Retry(total={n}, connect=None, read=None, redirect=None, status=None)) "
    "after connection broken by 'ConnectTimeoutError(<HTTPSConnection(host='mirror.internal', "
    "port=443)>, 'Connection to mirror.internal timed out. (connect timeout=15)')': /simple/torch/"
)
REFUSED = (
    "  WARNING: Retrying (Retry(total=4, ...)) after connection broken by 'NewConnectionError("
    "'<HTTPConnection object at 0x7f>: Failed to establish a new connection: [Errno 111] "
    "Connection refused')': /simple/tinytorch/"
)


# a lockfile with one sha256 edited by hand (real pip output, from pip-compile or pip download)
HASH_MISMATCH = [
    *TRACEBACK[:2],
    "pip._internal.exceptions.hashes.HashMismatch: THESE PACKAGES DO NOT MATCH THE HASHES FROM "
    "THE REQUIREMENTS FILE. If you have updated the package versions, please update the hashes. "
    "Otherwise, examine the package contents carefully; someone may have tampered with them.",
    "    alpha==1.0 from file:///tmp/w/alpha-1.0-py3-none-any.whl (from -r requirements.in "
    "(line 1)):",
    "        Expected sha256 00002d9dd1016d740c954a3a500cd1a9e4c52ff15aab527589a0502dbf7b43e8",
    "             Got        00d02d9dd1016d740c954a3a500cd1a9e4c52ff15aab527589a0502dbf7b43e8",
]


def test_hash_mismatch_says_how_to_recompute_the_hashes() -> None:
    failure = piptools.explain(HASH_MISMATCH, "cpu")
    assert failure.kind == "hash"
    assert failure.message == "downloaded files do not match the hashes in the lockfile: alpha==1.0"
    # plain `toolkit lock` keeps the lockfile's hashes: only --upgrade-package recomputes them
    assert failure.hint is not None
    assert failure.hint.startswith("the lockfile (edited by hand?) or a file on the index")
    assert failure.hint.endswith("`toolkit lock --target cpu --upgrade-package alpha==1.0`")


def test_no_matching_distribution() -> None:
    failure = piptools.explain(NOT_FOUND)
    assert failure.kind == "not-found"
    assert failure.message == "no matching distribution for nosuchpkg (versions found: none)"


def test_conflict_names_the_cause() -> None:
    failure = piptools.explain(CONFLICT)
    assert failure.kind == "conflict"
    assert failure.message == (
        "conflicting requirements: The user requested numpy==2.1.0; "
        "tinytorch 2.13.0 depends on numpy>=2.2"
    )


def test_invalid_requirement_names_file_and_line() -> None:
    failure = piptools.explain(INVALID)
    assert failure.kind == "invalid"
    assert failure.message.startswith("requirements.in line 2: invalid requirement 'num py>=2'")


def test_unreachable_index_wins_over_what_it_caused() -> None:
    failure = piptools.explain([DNS, *NOT_FOUND])
    assert (failure.kind, failure.host) == ("unreachable", "download.pytorch.org")
    assert failure.message == "cannot reach download.pytorch.org: host name not resolved"


def test_unknown_failures_show_the_last_error_line() -> None:
    failure = piptools.explain(["Usage: pip-compile", "Error: No such option: --frobnicate"])
    assert (failure.kind, failure.message) == ("other", "No such option: --frobnicate")


def test_network_failures_stop_at_once_unless_retrying_can_help() -> None:
    assert piptools.network_failure(DNS, final_only=True) == "host name not resolved"
    assert piptools.network_failure(REFUSED, final_only=True) == "connection refused"
    assert piptools.network_failure(TIMEOUT.format(n=3), final_only=True) is None
    assert piptools.network_failure(TIMEOUT.format(n=0), final_only=True) == "connection timed out"
    assert piptools.network_failure("  Collecting numpy<3,>=2", final_only=True) is None


def test_unreachable_hint_points_at_the_declared_source_and_mirrors() -> None:
    sources = piptools.Sources(
        (
            piptools.Source(
                "https://download.pytorch.org/whl/cpu",
                "targets.cpu.index.url",
                "index",
                "https://download.pytorch.org/whl/cpu",
            ),
        )
    )
    hint = piptools.unreachable_hint(piptools.explain([DNS]), sources)
    assert hint is not None
    assert "targets.cpu.index.url" in hint
    assert "TOOLKIT_MIRRORS='https://download.pytorch.org/whl/cpu=/path/to/wheels'" in hint
    assert piptools.unreachable_hint(piptools.explain(NOT_FOUND), sources) is None
