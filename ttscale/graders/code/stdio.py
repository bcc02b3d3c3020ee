"""Standard input / output tasks (the CodeContests and LiveCodeBench format): a program reads its input
and prints its answer; a test gives an input and the expected output.

The program's text is not run as the program's module (it would read its input at load): it is
wrapped, as a string, in a harness whose `run_stdio(INPUT)` runs it afresh as `__main__` in the
program's process, with INPUT on file descriptor 0 (`input()`, `sys.stdin`, `sys.stdin.buffer` and
`open(0)` all read it) and `sys.stdout` captured; `exit()` / `exit(0)` end a run normally, another exit
code is an error (`exit` and `quit` are there though the process starts without `site`). What it printed crosses to the tests' process as plain text and is compared there,
as LiveCodeBench compares (`grade_stdio`): line by line with surrounding whitespace stripped and
blank lines at the ends dropped; where two lines differ, token by token as decimals (1.0 equals 1.00,
no tolerance). Writes straight to file descriptor 1 (`os.write(1, ...)`) are not captured.
"""

from __future__ import annotations

from collections.abc import Sequence

from ttscale.graders.code.tasks import CodeTask

ENTRY = "run_stdio"

HARNESS = '''
def run_stdio(stdin):
    import io, os, sys, tempfile
    data = stdin.encode("utf-8") if isinstance(stdin, str) else bytes(stdin)
    source = tempfile.TemporaryFile()  # becomes fd 0: open(0) and os.read(0) see the input too
    source.write(data)
    source.flush()
    saved = None
    if source.fileno() != 0:
        try:
            saved = os.dup(0)
        except OSError:  # fd 0 was closed
            saved = None
        os.dup2(source.fileno(), 0)
    os.lseek(0, 0, os.SEEK_SET)
    captured = io.BytesIO()
    streams = sys.stdin, sys.stdout
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "rb", closefd=False), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(captured, encoding="utf-8", write_through=True)
    try:
        exec(compile(__program_text__, "<program>", "exec", dont_inherit=True),
             {"__name__": "__main__", "__builtins__": __builtins__, "exit": sys.exit, "quit": sys.exit})
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise RuntimeError(f"the program exited with {exc.code!r}") from None
    finally:
        try:
            sys.stdout.flush()
        except BaseException:
            pass
        printed = captured.getvalue()
        sys.stdin, sys.stdout = streams
        try:  # the program may have closed fd 0 itself (a file object of open(0), collected)
            if source.fileno() != 0:
                if saved is None:
                    os.close(0)
                else:
                    os.dup2(saved, 0)
                    os.close(saved)
            source.close()
        except OSError:
            pass
    return printed.decode("utf-8", errors="replace")
'''

# the tests' side: how outputs are compared (runs in the tests' process, never in the program's)
COMPARE = '''
def outputs_match(actual, expected):
    from decimal import Decimal, InvalidOperation
    if type(actual) is not str:
        return False
    def lines(text):
        return [line.strip() for line in text.strip().splitlines()]
    got, want = lines(actual), lines(expected)
    if len(got) != len(want):
        return False
    for a, b in zip(got, want):
        if a == b:
            continue
        x, y = a.split(), b.split()
        if len(x) != len(y):
            return False
        try:
            if [Decimal(t) for t in x] != [Decimal(t) for t in y]:
                return False
        except (InvalidOperation, ValueError):
            return False
    return True
'''


def wrap(program: str) -> str:
    """The program as the harness runs it: its text as a string, never executed at load."""
    return f"__program_text__ = {program!r}\n{HARNESS}"


def stdio_test(given: str, expected: str) -> str:
    return f"assert outputs_match({ENTRY}({given!r}), {expected!r})"


def stdio_task(tests: Sequence[tuple[str, str]], examples: Sequence[tuple[str, str]] = (),
               visible: int | str = "docstring") -> CodeTask:
    """tests: (input, expected output) pairs that grade; examples: the ones the statement shows
    (visible="docstring": they are the visible tests, and do not grade), or N: the first N tests."""
    if not tests:
        raise ValueError("no tests")
    graded = tuple(stdio_test(i, o) for i, o in tests)
    if visible == "docstring":
        shown: tuple[int, ...] = ()
        shown_tests = tuple(stdio_test(i, o) for i, o in examples)
        probes = tuple(f"{ENTRY}({i!r})" for i, _ in examples)
    else:
        if isinstance(visible, bool) or not isinstance(visible, int) or visible < 0:
            raise ValueError(f"visible_tests={visible!r}: docstring, or how many of the tests are visible (>= 0)")
        shown = tuple(range(min(visible, len(tests))))
        shown_tests = ()
        probes = tuple(f"{ENTRY}({tests[i][0]!r})" for i in shown)
    return CodeTask(ENTRY, "", COMPARE, graded, shown, probes, examples=shown_tests, harness="stdio")
