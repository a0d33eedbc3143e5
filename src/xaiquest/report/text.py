"""How findings quote numbers and lists: one format per unit, so every sentence reads the same way."""

from __future__ import annotations

import pandas as pd


def pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def pp(value: float) -> str:
    return f"{100 * value:.2f} pp"


def num(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}f}"


def signed_pp(value: float) -> str:
    """A change in percentage points with its sign (``+1.64 pp``, ``-2.00 pp``)."""
    shown = 100 * value if abs(100 * value) >= 0.005 else 0.0  # no "-0.00"
    return f"{shown:+.2f} pp"


def ms(seconds: float) -> str:
    return f"{1000 * seconds:.2f} ms"


def plural(count: int, word: str, many: str = "") -> str:
    return f"{count} {word if count == 1 else many or word + 's'}"


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def has_columns(table: pd.DataFrame | None, *columns: str) -> bool:
    return table is not None and all(c in table.columns and table[c].notna().any() for c in columns)


def as_bool(values: pd.Series) -> pd.Series:
    """CSV booleans ("True"/"False", 1/0) as bools."""
    return values.astype(str).str.strip().str.lower().isin({"true", "1", "1.0", "yes"})


def join_and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def holders(values: pd.Series, value: float) -> str:
    """Who holds ``value`` ("a has" / "a and b share"): ranks tie often enough to matter."""
    names = [str(name) for name in values.index[values == value]]
    return f"{names[0]} has" if len(names) == 1 else f"{join_and(names)} share"
