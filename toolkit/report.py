"""Render comparisons: versioned JSON, Markdown for CI job summaries, text, self-contained HTML."""

from __future__ import annotations

import html
import math
import re
from dataclasses import asdict
from typing import Any

from toolkit.compare import SeriesDiff, TensorDiff, TensorSummary, worst
from toolkit.diff import EarlyEnd, Run, RunDiff, first_difference, percent
from toolkit.record import portable
from toolkit.reprocheck import ReproReport

DIFF_SCHEMA = "toolkit.diff/1"
_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
_VERDICT_TEXT = {
    "identical": "identical",
    "within_tolerance": "within tolerance",
    "diverged": "diverged",
    "failed": "could not check: a run failed",
    "not_compared": "nothing to compare",
}
_ICONS = {
    "identical": "✅",
    "within_tolerance": "🟡",
    "diverged": "❌",
    "failed": "⚠️",
    "not_compared": "⚠️",
}
_STATUS_TEXT = {"only_in_a": "only in A", "only_in_b": "only in B"}


def verdict_text(verdict: str) -> str:
    return _VERDICT_TEXT.get(verdict, verdict)


# Why runs part when no recorded input differs: what the policy cannot reach
UNCAUGHT = (
    "the same inputs, another result: randomness the policy does not control, such as a "
    "generator made without a seed (np.random.default_rng(), random.Random(), a seed from the "
    "clock), or threads the program starts itself; or an op without a deterministic kernel run "
    "with --no-strict"
)


def _same_inputs_hint(d: RunDiff) -> str | None:
    """Why two runs with the same recorded inputs diverged, as far as the record tells."""
    if d.verdict != "diverged" or d.inputs:
        return None
    if (d.early_end or d.unfinished) and all(m.shared_verdict != "diverged" for m in d.metrics):
        return None  # the same wherever both logged: a run that stopped is the difference
    if d.no_policy:  # both: with one, the policies differ, an input that is named
        return (
            "the same inputs, another result: both runs ran with --no-policy, on the libraries' "
            "defaults (generators unseeded, nondeterministic kernels allowed), where runs are "
            "expected to differ"
        )
    return UNCAUGHT


def headline(d: RunDiff) -> str:
    """The one line a person reads first."""
    text = f"{verdict_text(d.verdict)}: {d.a} vs {d.b}"
    if d.nothing_compared:  # "identical" would read as "the results match"
        text += f"; {d.nothing_compared}"
    early = d.early_end
    if d.primary and d.headline is not None:
        text += f"; {d.primary} differs by {percent(d.headline)}"
        primary = next((m for m in d.metrics if m.name == d.primary), None)
        if early and primary and d.primary in early.metrics:  # not the stopped run's last value
            text += f" at step {primary.final_step}, the last step both logged"
    if d.first_divergence:
        text += f", first at step {d.first_divergence[1]} ({d.first_divergence[0]})"
    if early:
        text += f"; {_early_text(d, early)}"
    text += "".join(f"; {how}" for how in d.unfinished)  # "; B failed, exit 1"
    beyond = [o.path for o in d.outputs if o.verdict == "diverged"]
    if d.verdict == "diverged" and beyond and all(m.verdict != "diverged" for m in d.metrics):
        # the metrics alone would not make it diverged: say what does
        metrics = worst([m.verdict for m in d.metrics]) if d.metrics else None
        text += f"; beyond tolerance: {', '.join(beyond)}"
        text += f" (metrics {verdict_text(metrics)})" if metrics else ""
    causes = d.causes()
    if causes:
        text += f"; inputs differ in: {', '.join(causes)}"
    return text


def _early_text(d: RunDiff, early: EarlyEnd) -> str:
    """The run that stopped early, in the metric it logged most of: "B stopped early (failed,
    exit 1): identical to A over the 64 steps both logged, A goes on to step 127 (train_loss)"."""
    m = next(m for m in d.metrics if m.name == early.shown)
    stopped, other = _last_steps(m, early)
    how = f"{early.side} stopped early ({early.status}"
    how += f", exit {early.exit_code})" if early.exit_code is not None else ")"
    goes_on = f"{early.other} goes on to step {other} ({m.name})"
    if stopped is None:
        return f"{how} before logging any step; {early.other} logged up to step {other} ({m.name})"
    if d.first_divergence is None:  # nothing differs in value: no percentage to claim
        return (
            f"{how}: identical to {early.other} over the {_steps(m.steps_compared)} both "
            f"logged, {goes_on}"
        )
    return f"{how} at step {stopped}, {goes_on}"


def _last_steps(m: SeriesDiff, early: EarlyEnd) -> tuple[int | None, int | None]:
    """The last step of `m` in the run that stopped early, and in the other."""
    if early.side == "A":
        return m.last_step_a, m.last_step_b
    return m.last_step_b, m.last_step_a


def _steps(n: int) -> str:
    return f"{n} step{'' if n == 1 else 's'}"


def _cut_text(m: SeriesDiff, early: EarlyEnd, *, numbers: bool = True) -> str:
    """A metric the stopped run has fewer steps of: how the steps both logged compare, then
    the steps only the other run has ("identical over 64 shared steps; 64 steps only in A (B
    stopped at step 63)")."""
    shared, n = m.shared_verdict, m.steps_compared
    text = f"{verdict_text(shared)} over {n} shared step{'' if n == 1 else 's'}"
    if not n:
        text = "no shared steps"
    elif shared != "identical" and numbers:
        text += (
            f": first differs at step {m.first_differing_step}, max abs {m.max_abs:.3g}, "
            f"max rel {percent(m.max_rel)}"
        )
    stopped, _ = _last_steps(m, early)
    only = m.only_in_a if early.other == "A" else m.only_in_b
    where = f"at step {stopped}" if stopped is not None else "before logging any"
    text += f"; {_steps(only)} only in {early.other} ({early.side} stopped {where})"
    if m.first_nonfinite:
        step, a, b = m.first_nonfinite
        text += f"; {a} in A vs {b} in B at step {step} (max abs/rel over finite values only)"
    return text


def _never_logged(m: SeriesDiff) -> str | None:
    """A metric one run never logged: "only in A (B logged no loss; 3 steps)", no numbers (no
    step where values part); None for one both runs logged."""
    if m.steps_compared or bool(m.only_in_a) == bool(m.only_in_b):
        return None
    has, lacks = ("A", "B") if m.only_in_a else ("B", "A")
    return f"only in {has} ({lacks} logged no {m.name}; {_steps(m.only_in_a or m.only_in_b)})"


def diff_json(d: RunDiff) -> dict[str, Any]:
    """The versioned JSON document of a diff."""
    body = asdict(d)
    body["causes"] = d.causes()
    body["headline_text"] = headline(d)
    return {"schema": DIFF_SCHEMA, **portable(body)}  # NaN spelt as in records


def diff_text(d: RunDiff, *, show_all: bool = False) -> list[str]:
    """Plain lines for the terminal, ordered as a person debugs."""
    lines = [headline(d)]
    lines += [f"warning: {w}" for w in d.warnings]
    if d.nothing_compared_hint:
        lines.append(f"hint: {d.nothing_compared_hint}")
    lines.append("")
    lines.append("inputs:")
    if not d.inputs:
        lines.append("  all recorded inputs are the same")
        if hint := _same_inputs_hint(d):
            lines.append(f"  ({hint})")
    for change in d.inputs[: None if show_all else 20]:
        lines.append(f"  {change.category:<12} {change.field}: {change.a} -> {change.b}")
    if not show_all and len(d.inputs) > 20:
        lines.append(f"  ... {len(d.inputs) - 20} more (--all)")
    lines.append("")
    lines.append("metrics:")
    if not d.metrics:
        lines.append("  none: neither run logged a metric")
    for m in d.metrics:
        if m.verdict == "identical" and not show_all:
            lines.append(f"  {m.name:<16} identical over {_steps(m.steps_compared)}")
            continue
        if d.early_end and m.name in d.early_end.metrics:
            lines.append(f"  {m.name:<16} {_cut_text(m, d.early_end)}")
            continue
        if _never_logged(m):
            lines.append(f"  {m.name:<16} {_never_logged(m)}")
            continue
        first = "-" if m.first_difference is None else str(m.first_difference)
        lines.append(
            f"  {m.name:<16} {verdict_text(m.verdict)}: first differs at step {first}, "
            f"max abs {m.max_abs:.3g}, max rel {percent(m.max_rel)}{_series_extra(m)}"
        )
    lines.append("")
    lines.append("outputs:")
    if not d.outputs:
        lines.append(f"  {_no_outputs(d)}")
    for o in d.outputs:
        if o.tensors is None:
            lines.append(f"  {o.path:<24} {_status(o.status)}" + (f" ({o.note})" if o.note else ""))
            continue
        s = o.tensors.summary
        lines.append(
            f"  {o.path:<24} {verdict_text(o.verdict)}: {_tensor_count(s)}, "
            f"max abs {_num(s.max_abs)}, max rel {_num(s.max_rel)}, "
            f"max ulp {s.max_ulp if s.max_ulp is not None else '-'}{_tensor_nonfinite(s)}"
        )
        for t in o.tensors.tensors:
            if (t.dtype_a, t.shape_a) != (t.dtype_b, t.shape_b):  # one file lacks it, or
                lines.append(f"    {t.name:<22} {t.note}")  # its layout changed: no values
            elif t.verdict != "identical" or show_all:
                lines.append(
                    f"    {t.name:<22} {t.fraction_differing:.1%} differ, max abs {_num(t.max_abs)}"
                    f", ulp {t.max_ulp if t.max_ulp is not None else '-'}{_tensor_nonfinite(t)}"
                    + (f" ({t.note})" if t.note else "")
                )
    return lines


def _no_outputs(d: RunDiff) -> str:
    """Why a diff has no outputs to show: none recorded, or a record lacks them."""
    if d.outputs_skipped:
        whose = " and ".join(d.outputs_skipped)
        return f"not compared: {whose} skipped hashing outputs (Ctrl-C as the record was written)"
    return "none: neither run recorded an output"


def _tensor_count(s: TensorSummary) -> str:
    """ "12/13 tensors differ (1 shape changed, 1 only in A)": every tensor of both files,
    those whose values could not be compared (a layout or a name one file lacks) included."""
    total = s.tensors_compared + s.mismatched + s.only_in_a + s.only_in_b
    differ = s.tensors_differing + s.mismatched + s.only_in_a + s.only_in_b
    why = [
        f"{n} {what}"
        for n, what in (
            (s.mismatched, "dtype or shape changed"),
            (s.only_in_a, "only in A"),
            (s.only_in_b, "only in B"),
        )
        if n
    ]
    return f"{differ}/{total} tensors differ" + (f" ({', '.join(why)})" if why else "")


def diff_markdown(d: RunDiff) -> str:
    """Markdown that fits a CI job summary."""
    out = [f"### {_ICONS[d.verdict]} {html.escape(headline(d))}", ""]
    out += [f"> warning: {w}" for w in d.warnings]
    if d.nothing_compared_hint:
        out.append(f"> hint: {html.escape(d.nothing_compared_hint)}")
    out += ["", "| input | field | A | B |", "|---|---|---|---|"]
    out += [_row(c.category, c.field, _code(c.a), _code(c.b)) for c in d.inputs[:40]]
    if not d.inputs:
        out.append("| - | all recorded inputs are the same | | |")
        if hint := _same_inputs_hint(d):
            out += ["", f"> {hint}"]
    out += [
        "",
        "| metric | verdict | first differing step | max abs | max rel |",
        "|---|---|---|---|---|",
    ]
    for m in d.metrics:
        step = first_difference(m, d.early_end)
        first = "-" if step is None else str(step)
        numbers = (f"{m.max_abs:.3g}", percent(m.max_rel))
        if _never_logged(m):
            verdict, first, numbers = _never_logged(m) or "", "-", ("-", "-")
        elif d.early_end and m.name in d.early_end.metrics:
            verdict = _cut_text(m, d.early_end, numbers=False)
        else:
            verdict = f"{verdict_text(m.verdict)}{_series_extra(m)}"
        out.append(_row(m.name, verdict, first, *numbers))
    out += [
        "",
        "| output | verdict | tensors differing | max abs | max ulp |",
        "|---|---|---|---|---|",
    ]
    for o in d.outputs:
        if o.tensors is None:
            out.append(_row(o.path, _status(o.status), o.note or "", "", ""))
        else:
            s = o.tensors.summary
            out.append(
                _row(
                    o.path,
                    verdict_text(o.verdict),
                    _tensor_count(s),
                    _num(s.max_abs),
                    str(s.max_ulp),
                )
            )
    return "\n".join(out) + "\n"


def _row(*cells: str) -> str:
    """One row of a Markdown table, each cell's text kept in its cell."""
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _cell(text: str) -> str:
    """Text for a Markdown table cell: a `|` (a metrics pattern's `loss|cost`) or a line break
    would end the cell or the row. GitHub takes `\\|` as a `|` in a code span too."""
    return " ".join(text.splitlines()).replace("|", "\\|")


def _code(text: str) -> str:
    """Text as a Markdown code span, whatever backticks it holds: a fence of a length that
    none of its runs of backticks has, and a space inside each end where one is needed."""
    if not text:
        return ""  # `` is no code span, but two backticks shown as they are
    runs = {len(run) for run in re.findall(r"`+", text)}
    fence = "`" * next(n for n in range(1, len(runs) + 2) if n not in runs)
    # a span drops one space each side where it has both: a pad each side, which it drops,
    # keeps a backtick off the fence and the text's own spaces in
    ends = (text[0], text[-1])
    pad = " " if "`" in ends or (ends == (" ", " ") and text.strip()) else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def diff_html(d: RunDiff, a: Run, b: Run) -> str:
    """One self-contained HTML page: headline, metric curves, deviation vs step, tensor table."""
    sections = [f"<h1>{html.escape(headline(d))}</h1>"]
    sections += [f"<p class=warn>warning: {html.escape(w)}</p>" for w in d.warnings]
    if d.nothing_compared_hint:
        sections.append(f"<p class=warn>hint: {html.escape(d.nothing_compared_hint)}</p>")
    sections.append("<h2>inputs</h2>")
    sections.append(
        _table(["input", "field", "A", "B"], [[c.category, c.field, c.a, c.b] for c in d.inputs])
        if d.inputs
        else "<p>all recorded inputs are the same</p>"
    )
    if not d.inputs and (hint := _same_inputs_hint(d)):
        sections.append(f"<p>{html.escape(hint)}</p>")
    for m in d.metrics:
        sa, sb = _series(a, m.name), _series(b, m.name)
        if _never_logged(m):
            verdict = _never_logged(m) or ""
        elif d.early_end and m.name in d.early_end.metrics:
            verdict = _cut_text(m, d.early_end)
        else:
            verdict = verdict_text(m.verdict)
        sections.append(f"<h2>{html.escape(m.name)}: {html.escape(verdict)}</h2>")
        sections.append(
            svg_plot(
                {a.label: sa, b.label: sb},
                title=f"{m.name} per step",
                marker=first_difference(m, d.early_end),
            )
        )
        bb = dict(sb)
        deviation = [(s, abs(v - bb[s])) for s, v in sa if s in bb and _finite_pair(v, bb[s])]
        sections.append(
            svg_plot(
                {"|A - B|": deviation},
                title=f"{m.name}: deviation per step",
                marker=first_difference(m, d.early_end),
            )
        )
    rows = []
    for o in d.outputs:
        for t in o.tensors.tensors if o.tensors else ():
            rows.append(
                [
                    o.path,
                    t.name,
                    f"{t.dtype_a}/{t.dtype_b}",
                    f"{t.fraction_differing:.2%}",
                    _num(t.max_abs),
                    _num(t.max_rel),
                    str(t.max_ulp),
                    verdict_text(t.verdict),
                ]
            )
        if o.tensors is None:
            rows.append([o.path, "", "", "", "", "", "", o.note or _status(o.status)])
    sections.append("<h2>outputs</h2>")
    sections.append(
        _table(
            ["file", "tensor", "dtype", "differing", "max abs", "max rel", "max ulp", "verdict"],
            rows,
        )
    )
    return _page("toolkit diff", "\n".join(sections))


def svg_plot(
    lines: dict[str, list[tuple[int, float]]],
    *,
    title: str,
    marker: int | None = None,
    width: int = 720,
    height: int = 260,
) -> str:
    """An inline SVG line chart of (step, value) series, with an optional vertical marker."""
    points = [(x, y) for series in lines.values() for x, y in series if math.isfinite(y)]
    if not points:
        return f"<p>{html.escape(title)}: no finite values</p>"
    left, right, top, bottom = 60, 10, 24, 28
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<text x="{left}" y="14" font-size="13">{html.escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{width - left - right}" '
        f'height="{height - top - bottom}" fill="none" stroke="#ccc"/>',
        f'<text x="4" y="{top + 10}" font-size="11">{y1:.4g}</text>',
        f'<text x="4" y="{height - bottom}" font-size="11">{y0:.4g}</text>',
        f'<text x="{left}" y="{height - 8}" font-size="11">step {x0}</text>',
        f'<text x="{width - right - 70}" y="{height - 8}" font-size="11">step {x1}</text>',
    ]
    if marker is not None:
        parts.append(
            f'<line x1="{sx(marker):.1f}" x2="{sx(marker):.1f}" y1="{top}" '
            f'y2="{height - bottom}" stroke="#d62728" stroke-dasharray="4 3"/>'
        )
        parts.append(
            f'<text x="{sx(marker) + 4:.1f}" y="{top + 12}" font-size="11" '
            f'fill="#d62728">first divergence: step {marker}</text>'
        )
    for i, (label, series) in enumerate(lines.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in series if math.isfinite(y))
        dash = ' stroke-dasharray="6 3"' if i % 2 else ""
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.5"{dash} '
            f'points="{path}"><title>{html.escape(label)}</title></polyline>'
        )
        parts.append(
            f'<text x="{width - right - 250}" y="{top + 14 + 14 * i}" font-size="11" '
            f'fill="{colour}">{html.escape(label)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _page(title: str, body: str) -> str:
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1000px}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ddd;padding:3px 8px;"
        "font-size:13px;text-align:left}th{background:#f4f4f4}.warn{color:#b35c00}"
        "h1{font-size:20px}h2{font-size:16px;margin-top:1.5em}"
    )
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>\n{body}\n</body></html>\n"
    )


def _table(headers: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return "<p>nothing differs</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _series(run: Run, name: str) -> list[tuple[int, float]]:
    raw = run.record.get("metrics", {}).get("series", {}).get(name, [])
    return [(int(s), float(v)) for s, v in raw]


def _series_extra(m: SeriesDiff) -> str:
    """Steps logged by one run only, and the first NaN/inf that the other run does not share."""
    text = "".join(
        f", {n} step{'s' if n > 1 else ''} only in {side}"
        for side, n in (("A", m.only_in_a), ("B", m.only_in_b))
        if n
    )
    if m.first_nonfinite:
        step, a, b = m.first_nonfinite
        text += f"; {a} in A vs {b} in B at step {step} (max abs/rel over finite values only)"
    return text


def _tensor_nonfinite(t: TensorDiff | TensorSummary) -> str:
    counts = [
        f"{n} {what}" for what, n in (("NaN", t.nan_mismatches), ("inf", t.inf_mismatches)) if n
    ]
    return f", unmatched {' and '.join(counts)}" if counts else ""


def _status(status: str) -> str:
    return _STATUS_TEXT.get(status, status.replace("_", " "))


def _finite_pair(a: float, b: float) -> bool:
    return math.isfinite(a) and math.isfinite(b)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def repro_rows(r: ReproReport) -> list[list[str]]:
    """One row per comparison: role, group, runs, verdict, primary deviation, first step, causes."""
    rows = []
    kinds = {g.label: g for g in r.groups}
    for p in r.pairs:
        d = p.diff
        group = kinds[p.group]
        own = group.kind == "variation" and group.target != r.groups[0].label
        against = f"vs {group.target}" if own else "vs control"  # a variation: its own target
        rows.append(
            [
                "run-to-run" if p.role == "noise" else against,
                p.group,
                f"{_short(d.b)} vs {_short(d.a)}",
                verdict_text(d.verdict),
                percent(abs(d.headline)) if d.headline is not None else "-",
                str(d.first_divergence[1]) if d.first_divergence else "-",
                ", ".join(d.causes()) or "-",
            ]
        )
    return rows


REPRO_HEADERS = ["compare", "group", "runs", "verdict", "primary Δ", "first step", "inputs differ"]


def repro_markdown(r: ReproReport) -> str:
    """Markdown for a CI job summary."""
    icon = _ICONS.get(r.verdict, "⚠️")
    out = [
        f"### {icon} repro-check: {html.escape(r.summary)}",
        "",
        f"control: {_code(r.control)}",
        "",
    ]
    if r.pairs:  # every run failed: no table of no comparisons
        out.append("| " + " | ".join(REPRO_HEADERS) + " |")
        out.append("|" + "---|" * len(REPRO_HEADERS))
        out += [_row(*row) for row in repro_rows(r)]
    return "\n".join(out) + "\n"


def repro_html(r: ReproReport) -> str:
    """Self-contained page: summary, comparison table, every run's primary metric overlaid."""
    sections = [
        f"<h1>repro-check: {html.escape(r.summary)}</h1>",
        f"<p>control: {html.escape(r.control)}</p>",
        _table(REPRO_HEADERS, repro_rows(r)),
    ]
    metric = next((p.diff.primary for p in r.pairs if p.diff.primary), None)
    if metric:
        curves = {f"{g.label}: {run.id}": _series(run, metric) for g in r.groups for run in g.runs}
        firsts = [
            p.diff.first_divergence[1]
            for p in r.pairs
            if p.diff.first_divergence and p.diff.first_divergence[0] == metric
        ]
        sections.append(
            svg_plot(curves, title=f"{metric}, all runs", marker=min(firsts) if firsts else None)
        )
        control = r.groups[0].runs[0]
        for p in r.pairs:
            if p.diff.verdict in ("identical", "not_compared"):
                continue
            other = next(run for g in r.groups for run in g.runs if run.label == p.diff.b)
            base, series = (
                dict(_series(control if p.role == "gap" else _first_of(r, p.group), metric)),
                _series(other, metric),
            )
            deviation = [
                (s, abs(v - base[s])) for s, v in series if s in base and _finite_pair(v, base[s])
            ]
            sections.append(
                svg_plot(
                    {p.group: deviation},
                    title=f"{metric} deviation: {p.diff.b} vs {p.diff.a}",
                    marker=p.diff.first_divergence[1] if p.diff.first_divergence else None,
                )
            )
    return _page("toolkit repro-check", "\n".join(sections))


def _first_of(r: ReproReport, group: str) -> Run:
    return next(g.runs[0] for g in r.groups if g.label == group)


def _short(label: str) -> str:
    return label.split(" ")[0]
