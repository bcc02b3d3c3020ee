"""The code sandbox, fourth review (#36): each defence with a wrong program of its kind that must not
pass, and each false failure fixed with a correct program of its kind that must pass (hand-made)."""

from __future__ import annotations

import pytest

from ttscale.graders.code.sandbox import Limits, Sandbox, bwrap_problem
from ttscale.graders.code.tasks import mbpp_task

BWRAP = bwrap_problem() is None
needs_bwrap = pytest.mark.skipif(not BWRAP, reason="bubblewrap cannot create namespaces here")
MODES = [pytest.param("bwrap", marks=needs_bwrap), "none"]
LIMITS = Limits(timeout=15, cpu_seconds=8, memory_mb=512, file_size_mb=4, processes=16)


@pytest.fixture(scope="module", params=MODES)
def sandbox(request):
    return Sandbox(request.param, LIMITS, parallel=2, allow_root=True)


def run_task(sandbox, task, program):
    return sandbox.run(program, task.tests, task.setup, probes=task.probes, program_setup=task.program_setup,
                       exports=task.exports)


# -- wrong programs that must not pass ------------------------------------------------------------------

FORGER = ("import os, sys\n"
          "def is_prime(n):\n"
          "    os.write(int(sys.argv[2]), b'{\"stop\": true}\\n')  # a reply of its own: 'the iterator ended'\n"
          "    return {answer}\n")


@pytest.mark.parametrize("test, answer", [
    ("assert all(map(is_prime, [2, 3, 5, 7]))", "False"),
    ("assert not any(map(is_prime, [4, 6, 8]))", "True"),
    ("for r in map(is_prime, [11, 13]):\n    assert r", "False"),
    ("assert list(filter(is_prime, [4, 5])) == []", "True"),
])
def test_a_forged_end_of_iteration_is_a_protocol_error(sandbox, test, answer):
    verdict = sandbox.run(FORGER.replace("{answer}", answer), [test])
    assert verdict.status != "pass", verdict
    assert "protocol" in (verdict.tests[0].error or ""), verdict
    # a real iterator of the program still ends as iterators do
    assert sandbox.run("def evens(n):\n    yield from range(0, n, 2)\n", ["assert list(evens(5)) == [0, 2, 4]"]).status == "pass"


@pytest.mark.parametrize("name, test, right", [
    ("max", "assert max([4, 9, 2]) == (9, 1)", "def max(xs):\n    best = 0\n    for i, x in enumerate(xs):\n"
                                                 "        if x > xs[best]:\n            best = i\n    return xs[best], best\n"),
    ("sorted", "assert sorted('b a c') == ['a', 'b', 'c']", "def sorted(s):\n    return __builtins__['sorted'](s.split()) "
                                                          "if isinstance(__builtins__, dict) else __builtins__.sorted(s.split())\n"),
    ("copy", "assert copy([1, 2], 2) == [1, 2, 1, 2]", "def copy(xs, k):\n    return xs * k\n"),
    ("select", "assert select([5, 6, 7], 1) == 6", "def select(xs, i):\n    return xs[i]\n"),
])
def test_an_entry_point_named_like_a_builtin_or_module_is_the_programs(sandbox, name, test, right):
    task = mbpp_task([test], entry_point=name)
    assert run_task(sandbox, task, right).status == "pass"
    assert run_task(sandbox, task, f"def {name}(*args):\n    return 0\n").status == "fail"  # never the builtin's answer


def test_outputs_that_are_not_plain_data_are_keyed_by_content(sandbox):
    def key(program):
        return sandbox.run(program, [], probes=["halves([2, 4, 6])"]).probes[0]

    right = key("def halves(xs):\n    return [x // 2 for x in xs]\n")
    lazy_wrong = [key("def halves(xs):\n    return (x - 1 for x in xs)\n"),
                  key("def halves(xs):\n    return map(lambda x: x * 2, xs)\n"),
                  key("def halves(xs):\n    return {x: 0 for x in xs}.keys()\n")]
    assert len({right, *lazy_wrong}) == 4  # three wrong lazy values never share one key
    lazy_same = [key("def halves(xs):\n    return map(lambda x: x // 2, xs)\n"),
                 key("def halves(xs):\n    return iter([x // 2 for x in xs])\n")]
    assert lazy_same[0] == key("def halves(xs):\n    return map(lambda x: x // 2, xs)\n")  # same contents, same key
    objects = [key("class Half:\n    pass\ndef halves(xs):\n    return Half()\n") for _ in range(2)]
    assert objects[0] != objects[1]  # an object says nothing of its behaviour: no shared vote


def test_an_ordered_dicts_key_keeps_its_order(sandbox):
    keys = [sandbox.run("from collections import OrderedDict\n"
                        f"def table():\n    return OrderedDict({pairs})\n", [], probes=["table()"]).probes[0]
            for pairs in ("[('x', 1), ('y', 2)]", "[('y', 2), ('x', 1)]", "[('x', 1), ('y', 2)]")]
    assert keys[0] != keys[1] and keys[0] == keys[2]
    plain = [sandbox.run(f"def table():\n    return dict({pairs})\n", [], probes=["table()"]).probes[0]
             for pairs in ("[('x', 1), ('y', 2)]", "[('y', 2), ('x', 1)]")]
    assert plain[0] == plain[1]  # a dict's order is not part of its value


def test_vsock_sockets_are_denied(sandbox):
    program = ("import socket\n"
               "def families():\n"
               "    out = []\n"
               "    for family in (40, socket.AF_UNIX):  # AF_VSOCK, then an ordinary one\n"
               "        try:\n"
               "            socket.socket(family, socket.SOCK_STREAM).close()\n"
               "            out.append('opened')\n"
               "        except OSError as exc:\n"
               "            out.append(exc.errno)\n"
               "    return out\n")
    assert sandbox.run(program, [], probes=["families()"]).probe_values == ["[1, 'opened']"]  # EPERM


# -- correct programs that must pass ----------------------------------------------------------------

CORRECT = {
    "defaultdict with a lambda": (
        "from collections import defaultdict\n"
        "def positions(word):\n    found = defaultdict(lambda: [])\n    for i, ch in enumerate(word):\n"
        "        found[ch].append(i)\n    return found\n",
        ["p = positions('noon')\nassert p['o'] == [1, 2] and p['x'] == [] and p['y'] == []\n"
         "p['x'].append(5)\nassert p['y'] == [] and p == {'n': [0, 3], 'o': [1, 2], 'x': [5], 'y': []}"]),
    "a namedtuple": (
        "from collections import namedtuple\nSpan = namedtuple('Span', ['start', 'end'])\n"
        "def widen(s, k):\n    return Span(s[0] - k, s[1] + k)\n",
        ["w = widen((3, 5), 1)\nassert w.start == 2 and w.end == 6 and w == (2, 6) and w._fields == ('start', 'end')"]),
    "dates, times and durations": (
        "import datetime\ndef due(start, days):\n    return start + datetime.timedelta(days=days)\n"
        "def gap(a, b):\n    return b - a\ndef opening(h):\n    return datetime.time(h, 15)\n",
        ["import datetime\nassert due(datetime.date(2023, 12, 30), 3) == datetime.date(2024, 1, 2)",
         "import datetime\nassert gap(datetime.datetime(2024, 3, 1, 8), datetime.datetime(2024, 3, 2, 9, 30)) == "
         "datetime.timedelta(days=1, hours=1, minutes=30)",
         "import datetime\nassert opening(9) == datetime.time(9, 15)"]),
    "a callback's own exception": (
        "def parse_all(convert, items):\n    out = []\n    for item in items:\n        try:\n"
        "            out.append(convert(item))\n        except ValueError:\n            out.append(-1)\n    return out\n",
        ["assert parse_all(int, ['4', 'four', '2']) == [4, -1, 2]", "assert parse_all(float, ['x']) == [-1]"]),
    "a builtin type as an argument": (
        "def of_type(items, kind):\n    return [x for x in items if isinstance(x, kind)]\n",
        ["assert of_type([1, 'b', 2.5, 7], int) == [1, 7]", "assert of_type([(1,), [2]], list) == [[2]]"]),
}


@pytest.mark.parametrize("name", sorted(CORRECT))
def test_correct_programs_of_new_kinds_pass(sandbox, name):
    program, tests = CORRECT[name]
    entry = [line.split()[1].split("(")[0] for line in program.splitlines() if line.startswith("def ")][0]
    task = mbpp_task(tests, entry_point=entry)
    assert run_task(sandbox, task, program).status == "pass", (name, run_task(sandbox, task, program))


# -- containment ----------------------------------------------------------------------------------

def test_the_tests_process_imports_nothing_on_the_programs_word(sandbox, tmp_path):
    import os

    scripts = sandbox._scripts
    before = set(os.listdir(scripts))
    program = ("import importlib\n"
               "runner = importlib.import_module('json.tool')  # a module with a command line, as a global\n"
               "shell = __import__('shutil')\n"
               "def f():\n    return 1\n")
    verdict = sandbox.run(program, ["assert f() == 1", "assert 'runner' not in globals() and 'shell' not in globals()",
                                    "import os\nassert os.getcwd() != " + repr(scripts)])
    assert verdict.status == "pass", verdict
    assert set(os.listdir(scripts)) == before  # nothing landed beside the scripts
    declared = sandbox.run("import math as m\nfrom os import path\nimport subprocess\ndef f():\n    return 1\n",
                           ["assert m.sqrt(9) == 3 and path.join('a', 'b') == 'a/b'", "assert 'subprocess' not in globals()"])
    assert declared.status == "pass", declared  # top-level imports of the allow-list only


def test_a_flood_of_output_is_read_up_to_a_bound():
    import resource

    flood = Sandbox("auto", Limits(timeout=8, cpu_seconds=8, memory_mb=512, output_drain_mb=2), parallel=1, allow_root=True)
    before = resource.getrusage(resource.RUSAGE_SELF)
    verdict = flood.run("import sys\ndef f():\n    while True:\n        sys.stdout.write('y' * 65536)\n", ["f()"])
    after = resource.getrusage(resource.RUSAGE_SELF)
    assert verdict.status != "pass" and verdict.status != "timeout", verdict  # its pipe closed: the write failed
    assert "BrokenPipe" in (verdict.tests[0].error or ""), verdict
    assert (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime) < 2.0  # not 8 s of draining
    quiet = flood.run("def f():\n    print('a line')\n    return 2\n", ["assert f() == 2"])
    assert quiet.status == "pass" and "a line" in quiet.stdout


def test_a_runs_cgroup_is_sized_from_its_own_limits():
    sandbox = Sandbox("none", Limits(timeout=20, cpu_seconds=10, memory_mb=1024), parallel=1, allow_root=True)
    if sandbox._cgroups is None:
        pytest.skip("no cgroups here")
    program = ("def limit():\n"
               "    for line in open('/proc/self/cgroup'):\n"
               "        _, kinds, path = line.strip().split(':', 2)\n"
               "        if kinds in ('memory', ''):\n"
               "            for name in ('memory.limit_in_bytes', 'memory.max'):\n"
               "                for base in ('/sys/fs/cgroup/memory', '/sys/fs/cgroup'):\n"
               "                    try:\n"
               "                        return int(open(base + path + '/' + name).read())\n"
               "                    except (OSError, ValueError):\n"
               "                        pass\n")
    verdict = sandbox.run(program, [], probes=["limit()"], limits=Limits(timeout=20, cpu_seconds=10, memory_mb=384))
    if verdict.probe_values == ["None"]:
        pytest.skip("the cgroup's limit is not readable from inside")
    assert verdict.probe_values == [str(384 << 20)], verdict  # the run's 384 MB, not the sandbox's 1024


def test_numpy_arrays_cross_as_arrays_and_test_imports_of_numpy_load(sandbox):
    pytest.importorskip("numpy")
    program = ("import numpy as np\n"
               "def board(n):\n    return np.eye(n, dtype=int)\n"
               "def trace_of(a):\n    return int(np.trace(a))\n")
    tests = ["b = board(3)\nassert b.shape == (3, 3) and (b == np.eye(3)).all() and b.dtype.kind == 'i'",
             "assert trace_of(np.ones((4, 4))) == 4"]
    task = mbpp_task(tests, entry_point="board", test_imports=["import numpy as np"])
    verdict = run_task(sandbox, task, program)
    assert verdict.status == "pass", verdict
    assert run_task(sandbox, task, "import numpy as np\ndef board(n):\n    return np.zeros((n, n))\n"
                    "def trace_of(a):\n    return 0\n").status == "fail"


def test_caps_follow_the_runs_memory(sandbox):
    program = "def many(n):\n    return list(range(n))\ndef text(n):\n    return 'ab' * n\n"
    verdict = sandbox.run(program, ["assert len(many(3_000_000)) == 3_000_000", "assert len(text(12 << 20)) == 24 << 20"],
                          limits=Limits(timeout=60, cpu_seconds=40, memory_mb=1024))
    assert verdict.status == "pass", verdict


# -- the proxy's cost (a call from the tests to the program is a pipe round trip) ------------------------

def test_many_cheap_calls_pass_at_the_default_limits():
    """200k proxied calls take longer than the default 10 s (about 20 s here; 0.05 s in one process):
    the proxy's time is not the program's, so a correct program passes; a program that never answers
    still times out."""
    sandbox = Sandbox("auto", Limits(), parallel=1, allow_root=True)
    program = "def add(a, b):\n    return a + b\n"
    verdict = sandbox.run(program, ["for i in range(200_000):\n    assert add(i, 1) == i + 1"])
    assert verdict.status == "pass", verdict
    stuck = sandbox.run("def add(a, b):\n    while True:\n        pass\n", ["assert add(1, 1) == 2"],
                        limits=Limits(timeout=2, cpu_seconds=10))
    assert stuck.status == "timeout" and stuck.seconds < 4, stuck


def test_the_allowance_for_calls_is_bounded():
    """Endless cheap calls (each allowed more than it costs) cannot stretch the deadline past
    call_allowance_max."""
    sandbox = Sandbox("auto", Limits(), parallel=1, allow_root=True)
    program = "def add(a, b):\n    return a + b\n"
    endless = "i = 0\nwhile True:\n    assert add(i, 1) == i + 1\n    i += 1"
    verdict = sandbox.run(program, [endless], limits=Limits(timeout=2, cpu_seconds=30, call_allowance_us=500,
                                                            call_allowance_max=1.5))
    assert verdict.status == "timeout", verdict
    assert 3.4 < verdict.seconds < 6, verdict  # 2 s + at most 1.5 s for its calls (+ process exit)


def test_a_runs_two_processes_share_one_cpu():
    import os

    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU here: nothing to choose")
    sandbox = Sandbox("auto", LIMITS, parallel=2, allow_root=True, pin_cpus=True)
    program = "import os\ndef cpus():\n    return sorted(os.sched_getaffinity(0))\n"
    # the test runs in the tests' process: its own affinity against the program's
    test = "import os\nassert len(cpus()) == 1 and cpus() == sorted(os.sched_getaffinity(0)), (cpus(), os.sched_getaffinity(0))"
    verdict = sandbox.run(program, [test])
    assert verdict.status == "pass", verdict
    unpinned = Sandbox("auto", LIMITS, parallel=2, allow_root=True)  # the default: not pinned
    assert unpinned.run(program, ["assert len(cpus()) > 1"]).status == "pass"


@pytest.mark.parametrize("isolation", [pytest.param("bwrap", marks=needs_bwrap), "none"])
def test_cpu_time_grows_with_the_allowance_and_counts_the_whole_tree(isolation):
    """The proxy's encoding is CPU time on both sides: 30k calls (about 2.6 s here) pass under
    cpu_seconds=1, as they do under the wall clock. The CPU watch counts a forked helper toward its
    program: a child spinning while its parent sleeps is stopped at ~1 s, not at the 20 s deadline
    (RLIMIT_CPU alone counts each process apart)."""
    sandbox = Sandbox(isolation, Limits(), parallel=1, allow_root=True)
    program = "def add(a, b):\n    return a + b\n"
    verdict = sandbox.run(program, ["for i in range(30_000):\n    assert add(i, 1) == i + 1"],
                          limits=Limits(timeout=30, cpu_seconds=1))
    assert verdict.status == "pass", verdict
    forks = "import os, time\ndef f():\n    if os.fork() == 0:\n        while True:\n            pass\n    time.sleep(30)\n"
    verdict = sandbox.run(forks, ["f()"], limits=Limits(timeout=20, cpu_seconds=1))
    assert verdict.status == "timeout" and verdict.reason == "CPU time limit" and verdict.seconds < 8, verdict
    tests_spin = sandbox.run(program, ["while True:\n    pass"], limits=Limits(timeout=20, cpu_seconds=1))
    assert tests_spin.status == "timeout" and tests_spin.reason == "CPU time limit" and tests_spin.seconds < 8
