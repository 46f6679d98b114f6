"""The TSP (Lua) subset of the virtual 2601B: loops, arithmetic, variables, errors."""

from __future__ import annotations

import pytest

from instruments.emulator.bench.tsp import MAX_LOOP, Namespace, TspError, run_chunk


@pytest.fixture
def names() -> Namespace:
    printed: list[tuple] = []
    ns = Namespace(functions={"print": lambda *a: printed.append(a)})
    ns.printed = printed  # type: ignore[attr-defined]
    return ns


def test_a_numeric_for_loop_runs_like_lua(names: Namespace) -> None:
    """Lua steps the variable while it has not passed the limit: 0, 0.1, ... runs 11 times
    although 10 * 0.1 rounds below 1; the variable is local to the loop."""
    run_chunk("for i = 0, 1, 0.1 do print(i) end", names)
    assert len(names.printed) == 11
    run_chunk("for j = 3, 1, -1 do\n  print(j)\nend\nfor k = 2, 1 do print(k) end", names)
    assert names.printed[11:] == [(3.0,), (2.0,), (1.0,)]
    assert "i" not in names.variables and "j" not in names.variables


def test_arithmetic_precedence_parentheses_and_comments(names: Namespace) -> None:
    run_chunk("x = 2 -- a comment\ny = -(x + 1) * 3 - 4 / 2\nprint(y, 10 - -2, 1/0)", names)
    assert names.printed == [(-11.0, 12.0, float("inf"))]
    assert names.variables == {"x": 2.0, "y": -11.0}


@pytest.mark.parametrize(
    ("chunk", "code"),
    [
        ("for i = 1, 3 do print(i)", -285),  # no 'end'
        ("for = 1, 2 do end", -285),
        ("x = nil + 1", -286),
        ("x = 'a' * 2", -286),
        ("for i = 1, 2, 0 do end", -286),
        (f"for i = 1, {MAX_LOOP + 1} do end", -286),
    ],
)
def test_bad_chunks_fail_with_the_instrument_codes(names: Namespace, chunk: str, code: int) -> None:
    with pytest.raises(TspError) as info:
        run_chunk(chunk, names)
    assert info.value.code == code
