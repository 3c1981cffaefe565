"""Terminal tables for `bench verify` and `bench run`."""
from __future__ import annotations

import json
import shutil
import sys
from collections import Counter

from suite.plan import not_installed, profile_unavailable


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    fmt = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def _wrapped_table(header: list[str], rows: list[list[str]], width: int | None = None) -> str:
    """:func:`_table`, its target columns grouped by framework and cut into blocks that fit ``width``
    characters (by default the terminal's), each block repeating the row labels; a framework's routes stay
    in one block where they fit. 25 targets in one table were ~700 characters wide. Output that goes to a
    file or a pipe stays one table, a row per line, for scripts that read it (whatever $COLUMNS says: tools
    that capture output often set it)."""
    if width is None:
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else 1 << 30
    from suite.publish.common import target_family
    from suite.targets.info import parse_target_id

    fam = {i: target_family({"target": header[i]}) for i in range(1, len(header))}
    families = list(dict.fromkeys(fam.values()))
    # native targets first within a framework: torch:eager, torch:compile, then torch>onnx@...
    order = sorted(fam, key=lambda i: (families.index(fam[i]), parse_target_id(header[i]).format != "native"))
    col_w = {i: max(len(str(r[i])) for r in [header] + rows) + 2 for i in order}
    label_w = max(len(str(r[0])) for r in [header] + rows)
    room = max(width - label_w, 1)
    blocks: list[list[int]] = [[]]
    for family in families:
        cols = [i for i in order if fam[i] == family]
        used = sum(col_w[i] for i in blocks[-1])
        if blocks[-1] and used + sum(col_w[i] for i in cols) > room:
            blocks.append([])  # the whole framework to a new block rather than split across two
        for i in cols:
            if blocks[-1] and sum(col_w[j] for j in blocks[-1]) + col_w[i] > room:
                blocks.append([])  # a framework wider than the terminal: cut it where it must be
            blocks[-1].append(i)
    pick = lambda r, cols: [r[0]] + [r[i] for i in cols]  # noqa: E731
    return "\n\n".join(_table(pick(header, cols), [pick(r, cols) for r in rows]) for cols in blocks)


def _row_label(rec: dict, with_profile: bool) -> str:
    params = " ".join(f"{k}={v}" for k, v in json.loads(rec["params"]).items())
    mode = " train" if rec.get("mode") == "train" else ""
    return f"{rec['workload']} [{params}]{mode}" + (f" @{rec['profile']}" if with_profile else "")


def _not_installed(r: dict) -> bool:
    return not_installed(r["status"], r.get("status_reason"))


def _other_kind(r: dict) -> bool:
    """The target is not a route of the cell's workload (a graph target on a source: model, or the reverse)."""
    from suite.sources import not_a_route

    return not_a_route(r)


def _matrix(records: list[dict], cell_text, with_profile: bool) -> tuple[list[str], list[list[str]]]:
    # a target that is no route of any workload shown gets no column, and its cell is blank in the rows of a
    # workload it is no route of (those cells are one line per workload under "Not passing")
    routes = {r["target"] for r in records if not _other_kind(r)}
    targets = [t for t in dict.fromkeys(r["target"] for r in records) if t in routes or not routes]
    # a target not installed here (every cell of it skipped for that) gets no column either: one line under
    # "Not passing" says which and how to install it
    installed = [t for t in targets if not all(_not_installed(r) for r in records if r["target"] == t)]
    targets = installed or targets
    rows: dict[str, dict[str, str]] = {}
    groups: dict[str, list[dict]] = {}
    for r in records:
        label = _row_label(r, with_profile)
        groups.setdefault(label, []).append(r)
    for label, recs in groups.items():
        # a target that is no route of this row's workload (its column is another workload's route): blank
        rows[label] = cell_text([r for r in recs if not _other_kind(r)])
    return ["workload"] + targets, [[label] + [texts.get(t, "") for t in targets] for label, texts in rows.items()]


def _fmt_err(x) -> str:
    return f"{x:.1e}" if x is not None else "-"


def verify_table(records: list[dict], width: int | None = None) -> str:
    """Workload × target: status and max abs error; reasons of non-pass cells listed below."""
    def texts(recs):
        out = {}
        for r in recs:
            s = r["status"]
            out[r["target"]] = f"{s} {_fmt_err(r.get('max_abs_err'))}" if s in ("pass", "fail") else s
        return out

    # Cells of profiles not available here are summarised under "Not passing", not given rows.
    shown = [r for r in records if not _profile_skipped(r)] or records
    header, rows = _matrix(shown, texts, len({r["profile"] for r in shown}) > 1)
    return _wrapped_table(header, rows, width) + _reasons(records)


def run_table(records: list[dict], width: int | None = None) -> str:
    """Workload × target: median latency (ms) or status; `*` marks the fastest target of each row."""
    def texts(recs):
        timed = {r["target"]: r["latency_median_s"] for r in recs if r.get("latency_median_s")}
        best = min(timed, key=timed.get) if timed else None
        out = {}
        for r in recs:
            t = r["target"]
            if t in timed:
                flag = ("!" if r.get("unstable") else "") + ("~" if r.get("noisy") else "")
                out[t] = f"{timed[t] * 1e3:.3f}ms{flag}" + (" *" if t == best else "")
            else:
                out[t] = r["status"]
        return out

    # Cells of profiles not available here are summarised under "Not passing", not given rows.
    shown = [r for r in records if not _profile_skipped(r)] or records
    header, rows = _matrix(shown, texts, True)
    legend = ("\n(* fastest target of the row; ! spread too high to trust; ~ noisy: measured while the host was "
              "busy or changing speed, not comparable; times are medians)")
    return _wrapped_table(header, rows, width) + legend + _reasons(records)


def _profile_skipped(r: dict) -> bool:
    return profile_unavailable(r["status"], r.get("status_reason"), r["profile"])


def _reasons(records: list[dict]) -> str:
    lines = []
    seen = set()
    for r in records:
        if r["status"] in ("pass",):
            continue
        reason = (r.get("status_reason") or "").strip().splitlines()
        first = reason[0] if reason else ""
        key = (r["workload"], r["target"], r["profile"], r["status"], first)
        if key in seen or _profile_skipped(r) or _other_kind(r) or _not_installed(r):
            continue
        seen.add(key)
        lines.append(f"  {r['status']:<13} {r['workload']} {r['target']} @{r['profile']}: {first}")
    missing: dict[str, list[dict]] = {}  # not installed here: one line per reason, not one per cell
    for r in records:
        if _not_installed(r) and not _profile_skipped(r):
            missing.setdefault(r["status_reason"].strip().splitlines()[0], []).append(r)
    for reason, rs in missing.items():
        targets = ", ".join(dict.fromkeys(r["target"] for r in rs))
        lines.append(f"  skipped       {len(rs)} cell{'s' if len(rs) > 1 else ''} of {targets}: {reason}")
    other = [r for r in records if _other_kind(r) and not _profile_skipped(r)]
    on_graphs = [r for r in other if "; " not in r["status_reason"]]  # the ONNX-file routes on graph workloads
    if on_graphs:
        lines.append(f"  unsupported   {len(on_graphs)} cells of {', '.join(sorted({r['target'] for r in on_graphs}))}: "
                     f"these routes run an ONNX file given as a source: workload, not a graph")
    for wl, n in Counter(r["workload"] for r in other if "; " in r["status_reason"]).items():
        example = next(r["status_reason"] for r in other if r["workload"] == wl and "; " in r["status_reason"])
        lines.append(f"  unsupported   {n} cells of {wl}: targets that are not routes out of its framework "
                     f"({example.split('; ', 1)[1]})")
    skipped_profiles = Counter(r["profile"] for r in records if _profile_skipped(r))
    for prof, n in skipped_profiles.items():
        reason = next(r["status_reason"] for r in records if r["profile"] == prof and r["status"] == "skipped")
        lines.append(f"  skipped       {n} cells @{prof}: {reason}")
    return ("\n\nNot passing:\n" + "\n".join(lines)) if lines else ""


def noisy_summary(records: list[dict], remeasure: int) -> str:
    """One line on the cells timed on a noisy host and their re-measurements; "" when there were none."""
    noisy = [r for r in records if r.get("noisy")]
    again = [r for r in records if (r.get("attempts") or 1) > 1]
    if not noisy and not again:
        return ""
    kinds = Counter(part.split(":")[0] for r in noisy for part in (r.get("noisy_reason") or "").split("; ") if part)
    line = f"noisy: {len(noisy)} cell(s) still noisy"
    if kinds:
        line += f" ({', '.join(f'{k}: {n}' for k, n in kinds.most_common())})"
    if again:
        line += (f"; {len(again)} timed again (--remeasure {remeasure}), {len(again) - sum(bool(r.get('noisy')) for r in again)}"
                 f" of them clean then")
    return line + "; noisy cells are marked ~ and never count as a regression or an improvement"


def status_counts(records: list[dict]) -> str:
    from suite.verify import summarise

    return summarise(Counter(r["status"] for r in records))
