"""A time budget for `bench run --budget 30m`: each cell's measuring window is planned from the time left.

`bench run` without a timing flag uses the same planning as a deadline over the standard preset
(``ceiling``): every cell gets exactly the standard window while the run is on course to end within
:data:`DEFAULT_DEADLINE_S`, and the cells left get shorter ones only when it is not (a slow or busy host),
never before :data:`MIN_LEARNED` cells have shown what the fixed costs are.

What a cell costs splits in two: a fixed part the suite cannot shorten (starting a worker, building,
compiling, exporting, the first call and the comparison with the reference) and the timing engine's
warmup and samples, which it can. Before each cell is sent, the budget estimates the fixed part of every
cell still to run (the mean of that target's cells so far, else the median of all cells so far, else
:data:`FIRST_GUESS_S`), subtracts it from the time left, and gives the cell an equal share of the rest
as its measuring allowance (:meth:`suite.engine.TimingConfig.for_allowance`). The stop rule still ends a
cell early when its samples settle, and whatever a cell leaves goes to the ones after it; a cell that
overruns takes it from them. When the fixed part alone exceeds the time left, every cell gets the
shortest window (0.1 s) and the run ends late: :meth:`Budget.summary` says by how much and why.
"""
from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass, field

from suite.engine import TimingConfig

DEFAULT_DEADLINE_S = 14 * 60  # `bench run`'s default: the standard preset, within 14 minutes (see the docstring)
MIN_LEARNED = 20  # with a ceiling, no cell is cut before this many cells' fixed costs are known
FIRST_GUESS_S = 2.0  # fixed cost assumed for a cell before any has run (worker start, build, verify)
_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``1.5h``, ``1h30m`` or a bare number of seconds -> seconds.

    Raises:
        ValueError: one line saying what is expected.
    """
    s = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        total = float(s)
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", s)
        if not parts or "".join(n + u for n, u in parts) != s:
            raise ValueError(f"--budget {text!r}: expected a duration such as 90s, 30m, 1h or 1h30m")
        total = sum(float(n) * _UNITS[u] for n, u in parts)
    if total <= 0:
        raise ValueError(f"--budget {text!r}: expected a duration above zero")
    return total


@dataclass
class Budget:
    """Plans each timed cell's measuring window so that the run ends within ``seconds``.

    Attributes:
        seconds: the whole run's budget, counted from ``started`` (exports included).
        pending: keys of the timed cells not finished yet -> target id.
    """

    seconds: float
    cells: list
    started: float = field(default_factory=time.monotonic)
    ceiling: TimingConfig | None = None  # a deadline over a preset: no cell gets more than this config

    def __post_init__(self) -> None:
        self.pending = {c.key: c.target.id for c in self.cells if c.status is None and c.timed}
        self._fixed: dict[str, list[float]] = {}  # target id -> fixed seconds of its finished cells
        self._began: dict[tuple, float] = {}
        self.shortened: list[float] = []  # with a ceiling: the windows (s) of cells cut below it

    def _estimate(self, target: str) -> float:
        mine = self._fixed.get(target)
        if mine:
            return sum(mine) / len(mine)
        every = [x for xs in self._fixed.values() for x in xs]
        # the median, not the mean: a few compiling targets (torch.compile: ~10 s a cell) would otherwise make
        # every target not seen yet look as slow (a default run replayed with the mean cut 147 of 290 windows,
        # some to 0.1 s, and ended 2 minutes early; with the median the shortest window was 0.49 s)
        return statistics.median(every) if every else FIRST_GUESS_S

    def allowance(self, now: float | None = None) -> float:
        """Seconds of measuring each pending cell may have if the run is to end on time."""
        now = time.monotonic() if now is None else now
        left = self.seconds - (now - self.started)
        if not self.pending:
            return 0.0
        fixed = sum(self._estimate(t) for t in self.pending.values())
        return max(left - fixed, 0.0) / len(self.pending)

    def config_for(self, cell) -> TimingConfig:
        """The timing config of ``cell``, about to be sent (also starts its clock)."""
        self._began[cell.key] = time.monotonic()
        planned = TimingConfig.for_allowance(self.allowance())
        top = self.ceiling
        if top is None:
            return planned
        learned = sum(len(v) for v in self._fixed.values())
        if learned < MIN_LEARNED or planned.warmup_s + planned.max_time >= top.warmup_s + top.max_time:
            return top  # time enough (or too little known yet to cut anything): exactly the preset
        cut = TimingConfig(warmup_s=min(planned.warmup_s, top.warmup_s), min_warmup_calls=planned.min_warmup_calls,
                           min_samples=planned.min_samples, min_time=min(planned.min_time, top.min_time),
                           max_time=min(planned.max_time, top.max_time))
        self.shortened.append(cut.max_time)
        return cut

    def finished(self, cell, record: dict) -> None:
        """Learns the fixed cost of a finished cell (its wall time outside the timing engine)."""
        target = self.pending.pop(cell.key, None)
        began = self._began.pop(cell.key, None)
        if target is None or began is None:
            return
        elapsed = time.monotonic() - began
        self._fixed.setdefault(target, []).append(max(elapsed - (record.get("measure_s") or 0.0), 0.0))

    def summary(self, now: float | None = None) -> str:
        """One line: the budget, the time taken, and what the fixed costs came to (with a ceiling: how many
        cells got a shorter window than it)."""
        now = time.monotonic() if now is None else now
        took = now - self.started
        if self.ceiling is not None:
            late = "" if took <= self.seconds else f"; the run still took {took:.0f} s"
            if not self.shortened:
                return f"every timed cell got the full window ({self.ceiling.max_time:g} s cap){late}"
            return (f"{len(self.shortened)} timed cell(s) got a shorter window than the {self.ceiling.max_time:g} s "
                    f"cap (down to {min(self.shortened):.2f} s) so that the run ends within {self.seconds / 60:g} "
                    f"min{late}")
        fixed = sum(x for xs in self._fixed.values() for x in xs)
        verdict = "within budget" if took <= self.seconds else \
            f"over budget by {took - self.seconds:.0f} s (the cells' fixed costs - worker start, build, " \
            f"compile, verify - came to {fixed:.0f} s)"
        return f"budget {self.seconds:.0f} s: run took {took:.0f} s, {verdict}"
