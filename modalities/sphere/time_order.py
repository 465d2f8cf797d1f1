"""The order of the time steps of a folder of files: by time, across and within files.

Monthly downloads come with names that do not sort by date, with steps out of order inside a
file, or with a month downloaded twice. Items follow time whenever every file has a time
coordinate (else the files' name order, each file's own order). A time step found twice (in two
files, or twice in one) is an error naming where: a duplicated step would be trained on twice
and could sit on both sides of the held-out split.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from inrkit.errors import DataError


def _label(t) -> str:
    if isinstance(t, np.datetime64):
        return str(np.datetime_as_string(t, unit="auto"))
    return str(t)


def _rel(path: Path, root: Path) -> Path:
    return path.relative_to(root) if root in path.parents else path


def time_order(sources, root: Path) -> np.ndarray:
    """(n_steps, 2) int array of (source index, step within it) in reading order."""
    pairs = np.array([(i, t) for i, s in enumerate(sources) for t in range(s.n)], dtype=np.int64).reshape(-1, 2)
    if not len(pairs) or any(s.times is None for s in sources):
        return pairs
    times = np.concatenate([np.asarray(s.times) for s in sources if s.n])
    try:
        order = np.argsort(times, kind="stable")
        ordered = times[order]
        same = np.flatnonzero(ordered[1:] == ordered[:-1]) if len(ordered) > 1 else np.array([], np.int64)
    except TypeError:
        kinds = sorted({f"{type(s.times[0]).__module__}.{type(s.times[0]).__name__}" for s in sources if s.n})
        raise DataError(f"{root}: the files' times cannot be put in one order (they mix {', '.join(kinds)}:"
                        " different calendars?); read files of one calendar together") from None
    if len(same):
        a, b = pairs[order[same[0]]], pairs[order[same[0] + 1]]
        fa, fb = sources[a[0]].path, sources[b[0]].path
        t, n = _label(ordered[same[0]]), len(same)
        if a[0] == b[0]:
            raise DataError(f"{fa}: time {t} appears twice ({n} duplicated time step(s) in all); drop the repeats")
        raise DataError(f"{root}: time {t} is in both {_rel(fa, root)} and {_rel(fb, root)} ({n} duplicated time step(s) in all);"
                        " remove the file that repeats the others, or trim the overlap")
    return pairs[order]
