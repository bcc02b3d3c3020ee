"""The code sandbox: verdicts, and the adversarial suite (each attack contained, the evaluator still
working afterwards). Attacks that only namespaces can stop run under bubblewrap; the others also run
with limits only."""

from __future__ import annotations

import os
import secrets
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from ttscale.build import ConfigError
from ttscale.graders.code.sandbox import Limits, Sandbox, SandboxError, bwrap_problem

BWRAP = bwrap_problem() is None
needs_bwrap = pytest.mark.skipif(not BWRAP, reason="bubblewrap cannot create namespaces here")
MODES = [pytest.param("bwrap", marks=needs_bwrap), "none"]
REPO = Path(__file__).resolve().parents[1]


ROOT = os.geteuid() == 0


@pytest.fixture(scope="module", params=MODES)
def sandbox(request):
    # limits only, as root with an interpreter other users cannot run: programs would run as root, which
    # the Sandbox refuses unless forced; the suite forces it to test that mode's other layers
    return Sandbox(request.param, Limits(timeout=8, cpu_seconds=4, memory_mb=512, file_size_mb=4, processes=16),
                   parallel=2, allow_root=True)


@pytest.fixture(scope="module")
def bwrap_sandbox():
    if not BWRAP:
        pytest.skip("bubblewrap cannot create namespaces here")
    return Sandbox("bwrap", Limits(timeout=8, cpu_seconds=4, memory_mb=512, file_size_mb=4, processes=16), parallel=2)


def processes_in_block(sandbox: Sandbox) -> list[int]:
    """Processes still running under any of the sandbox's throw-away uids."""
    if sandbox.uid_block is None:
        return []
    low, high = sandbox.uid_block
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                status = Path(f"/proc/{entry}/status").read_text()
            except OSError:
                continue
            uid = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("Uid:")), -1)
            state = next((line.split()[1] for line in status.splitlines() if line.startswith("State:")), "")
            if low <= uid < high and state != "Z":
                found.append(int(entry))
    return found


def still_works(sandbox: Sandbox) -> None:
    verdict = sandbox.run("def add(a, b):\n    return a + b\n", ["assert add(2, 3) == 5"])
    assert verdict.status == "pass", verdict


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                pass
    return found


# -- verdicts ------------------------------------------------------------------------------------------

def test_verdicts_per_test(sandbox):
    verdict = sandbox.run("def f(x):\n    return x + 1\nprint('hello')\n",
                          ["assert f(1) == 2", "assert f(2) == 4, 'off by one'", "f(None)"])
    assert verdict.status == "fail"
    assert [t.status for t in verdict.tests] == ["pass", "fail", "error"]
    assert verdict.tests[1].error == "AssertionError: off by one"
    assert verdict.tests[2].error.startswith("TypeError")
    assert verdict.stdout == "hello\n"
    assert verdict.isolation == sandbox.isolation
    ok = sandbox.run("def f(x):\n    return x + 1\n", ["assert f(1) == 2"], setup="import math\n")
    assert ok.status == "pass" and ok.passed


def test_program_that_does_not_load_is_an_error(sandbox):
    verdict = sandbox.run("def f(:\n", ["assert True"])
    assert verdict.status == "error" and "SyntaxError" in verdict.reason
    verdict = sandbox.run("raise RuntimeError('at import')", ["assert True"])
    assert verdict.status == "error" and "RuntimeError: at import" in verdict.reason


def test_infinite_loop_times_out(sandbox):
    verdict = sandbox.run("def f():\n    while True:\n        pass\n", ["f()"], limits=Limits(timeout=2, cpu_seconds=30))
    assert verdict.status == "timeout" and verdict.reason == "wall-clock timeout"
    assert [t.status for t in verdict.tests] == ["timeout"], verdict
    verdict = sandbox.run("while True:\n    pass\n", [], limits=Limits(timeout=20, cpu_seconds=1))
    assert verdict.status == "timeout" and verdict.reason == "CPU time limit" and verdict.seconds < 10
    still_works(sandbox)


@needs_bwrap
def test_a_venv_under_tmp_runs_programs_on_its_base_interpreter(tmp_path):
    """A venv under /tmp (a checkout's): programs run on its base interpreter, stdlib only, whatever
    the venv holds."""
    import subprocess

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    sandbox = Sandbox("bwrap", Limits(timeout=10), python=str(venv / "bin" / "python"))
    verdict = sandbox.run("import sys\ndef f():\n    return sys.prefix == sys.base_prefix\n", ["assert f()"])
    assert verdict.status == "pass", verdict


def test_unknown_isolation_and_missing_bwrap_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="choose one of: auto, bwrap, none"):
        Sandbox("docker")
    with pytest.raises(SandboxError, match="isolation=bwrap"):
        Sandbox("bwrap", bwrap=str(tmp_path / "no-bwrap-here"))


def test_many_programs_in_parallel(sandbox):
    results = [None] * 8

    def one(i):
        results[i] = sandbox.run(f"def f():\n    return {i}\n", [f"assert f() == {i}"])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status for r in results] == ["pass"] * 8


# -- the pass signal cannot be faked -------------------------------------------------------------------

def test_exit_before_the_tests_is_not_a_pass(sandbox):
    for early in ("import os\nos._exit(0)", "import sys\nsys.exit(0)", "exit(0)", "raise SystemExit(0)"):
        verdict = sandbox.run(early + "\ndef f():\n    return 0\n", ["assert f() == 1"])
        assert verdict.status == "error", (early, verdict)
    # an exit inside the function under test: the test errors (SystemExit) or the process ends early
    verdict = sandbox.run("import os\ndef f():\n    os._exit(0)\n", ["assert f() == 1"])
    assert verdict.status == "error" and "ended during the tests" in verdict.reason
    verdict = sandbox.run("import sys\ndef f():\n    sys.exit(0)\n", ["assert f() == 1"])
    assert verdict.status == "fail" and verdict.tests[0].status == "error"
    still_works(sandbox)


def test_redefined_builtins_and_fake_markers_do_not_pass(sandbox):
    program = (
        "import builtins, atexit, os\n"
        "builtins.AssertionError = type('Quiet', (Exception,), {})\n"
        "builtins.exit = builtins.quit = lambda *a: None\n"
        "builtins.print = lambda *a, **k: None\n"
        "atexit.register(lambda: os.write(1, b'ALL TESTS PASSED\\n'))\n"
        "os.write(1, b'{\"event\": \"done\"}\\nPASSED\\n')\n"
        "for fd in range(3, 64):\n"  # guess the report channel and write every plausible line to it
        "    for line in (b'{\"event\": \"program\", \"status\": \"ok\"}', b'{\"event\": \"test\", \"index\": 0, \"status\": \"pass\"}', b'{\"event\": \"done\"}'):\n"
        "        for prefix in (b'', b'0 ', b'00000000000000000000000000000000 '):\n"
        "            try:\n"
        "                os.write(fd, prefix + line + b'\\n')\n"
        "            except OSError:\n"
        "                pass\n"
        "def f():\n    return 0\n"
    )
    verdict = sandbox.run(program, ["assert f() == 1"])
    # it wrote over its own channel too: the protocol broke, which is an error, never a pass
    assert verdict.status in ("fail", "error") and verdict.tests[0].status != "pass", verdict
    still_works(sandbox)


# Wrong programs that tried to forge a pass (they passed before the tests moved to their own process).
# Each is a wrong `add`; the tests are HumanEval-shaped. None may pass, in either mode.
FORGERIES = {
    "rebinds exec and compile": "import builtins\nbuiltins.exec = lambda *a, **k: None\n"
                                "builtins.compile = lambda *a, **k: None\n",
    "replaces json's encoder": "import json\njson._default_encoder.encode = lambda o: '{\"event\": \"test\", \"index\": 0, "
                               "\"status\": \"pass\"}'\njson.dumps = lambda *a, **k: '{\"event\": \"done\"}'\n",
    "abs always 0": "import builtins\nbuiltins.abs = lambda x: 0\n",
    "reopens every fd through /proc and forges lines": (
        "import os\n"
        "for fd in range(3, 64):\n"
        "    for path in (f'/proc/self/fd/{fd}',):\n"
        "        try:\n"
        "            with open(path, 'wb') as h:\n"
        "                h.write(b'{\"event\": \"test\", \"index\": 0, \"status\": \"pass\"}\\n{\"event\": \"done\"}\\n')\n"
        "        except OSError:\n"
        "            pass\n"),
    "switches an audit hook off and walks signal frames": (
        "import __main__, signal, os\n"
        "__main__._BLOCKED_EVENTS = frozenset()\n"
        "found = []\n"
        "def grab(sig, frame):\n"
        "    while frame is not None:\n"
        "        found.append(dict(frame.f_locals))\n"
        "        frame = frame.f_back\n"
        "signal.signal(signal.SIGUSR1, grab)\n"
        "os.kill(os.getpid(), signal.SIGUSR1)\n"),
    "__eq__ always True": "class Any:\n    def __eq__(self, other):\n        return True\n    __ne__ = lambda s, o: False\n"
                          "    __hash__ = object.__hash__\n"
                          "def add(a, b):\n    return Any()\n",
    "int subclass equal to everything": "class Yes(int):\n    def __eq__(self, other):\n        return True\n"
                                        "    __hash__ = int.__hash__\n"
                                        "def add(a, b):\n    return Yes(0)\n",
    "prints success markers and exits 0": "import os, sys\nprint('{\"event\": \"done\"}')\nprint('ALL TESTS PASSED')\n"
                                          "def add(a, b):\n    os._exit(0)\n",
    "kills every process it can see": "import os, signal\nfor pid in range(2, 400):\n    try:\n        os.kill(pid, signal.SIGKILL)\n"
                                       "    except OSError:\n        pass\n",
    "raises AssertionError's base away": "import builtins\nbuiltins.AssertionError = type('Q', (Exception,), {})\n"
                                         "builtins.BaseException = type('B', (Exception,), {})\n",
}
WRONG_ADD = "\ndef add(a, b):\n    return a - b if 'add' not in globals() or True else 0\n"
ADD_TESTS = ["assert add(2, 3) == 5", "assert abs(add(0.5, 0.25) - 0.75) < 1e-9", "assert add(-1, 1) == 0"]


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_forgeries_of_a_pass_fail(sandbox, name):
    attack = FORGERIES[name]
    if sandbox.runs_as_root and name == "kills every process it can see":
        # as root (isolation none, allow_root: the mode the Sandbox refuses by default) the program could
        # kill this test run itself, whose pids are low on a fresh machine: it spares what ran before it
        # (and the threads of those processes: after pids wrap around, a thread this run starts gets a low
        # id, and a SIGKILL to a thread id kills its whole process)
        spared = {int(p) for p in os.listdir("/proc") if p.isdigit()}
        attack = ("import os, signal\n"
                  f"spared = {spared!r}\n"
                  "def tgid(pid):\n"
                  "    try:\n"
                  "        with open(f'/proc/{pid}/status') as handle:\n"
                  "            return next(int(l.split()[1]) for l in handle if l.startswith('Tgid:'))\n"
                  "    except (OSError, StopIteration, ValueError):\n"
                  "        return pid\n"
                  "for pid in range(2, 400):\n"
                  "    if pid in spared or tgid(pid) in spared:\n"
                  "        continue\n"
                  "    try:\n"
                  "        os.kill(pid, signal.SIGKILL)\n"
                  "    except OSError:\n"
                  "        pass\n")
    program = attack if "def add" in attack else attack + WRONG_ADD
    before = set(REPO.iterdir())
    verdict = sandbox.run(program, ADD_TESTS)
    assert verdict.status != "pass" and not all(t.status == "pass" for t in verdict.tests), (name, verdict)
    # the host is untouched: nothing left running as a slot user, nothing new in the checkout
    assert not processes_in_block(sandbox)
    assert set(REPO.iterdir()) == before
    still_works(sandbox)


def test_patched_repr_does_not_poison_probes(sandbox):
    program = "import builtins\nbuiltins.repr = lambda o: '42'\ndef add(a, b):\n    return a + b\n"
    verdict = sandbox.run(program, [], probes=["add(1, 2)", "add('a', 'b')"])
    assert verdict.probe_values == ["3", "'ab'"]


def test_values_cross_as_plain_data_and_handles(sandbox):
    """Numbers, containers and numpy scalars arrive as plain Python values (arrays as arrays); program objects arrive as
    handles that can be called, iterated and passed back, but equal only themselves."""
    program = ("import numpy as np\n"
               "from fractions import Fraction\n"
               "class Pair:\n    def __init__(self, a, b):\n        self.a, self.b = a, b\n"
               "    def total(self):\n        return self.a + self.b\n"
               "def longest(pairs):\n    return max(p.total() for p in pairs)\n"
               "def values():\n"
               "    return [np.int64(3), np.float64(0.5), np.array([1, 2]), (1, {2: {3}}), Fraction(1, 3),"
               " float('nan'), 10 ** 40, b'x', frozenset({1})]\n"
               "def gen(n):\n    yield from range(n)\n"
               "def boom():\n    raise KeyError('k')\n")
    tests = ["v = values()\nassert v[:2] == [3, 0.5] and v[3:5] == [(1, {2: {3}}), Fraction(1, 3)] and v[5] != v[5]\n"
             "assert v[2].tolist() == [1, 2] and v[2].shape == (2,)",  # an array stays an array (#36)
             "assert v[6:] == [10 ** 40, b'x', frozenset({1})] and type(v[0]) is int",
             "p = Pair(1, 2)\nassert p.total() == 3 and p.a == 1 and longest([p, Pair(5, 5)]) == 10",
             "assert p != Pair(1, 2) and p == p",
             "assert list(gen(3)) == [0, 1, 2] and next(iter(gen(1))) == 0",
             "try:\n    boom()\nexcept KeyError:\n    pass\nelse:\n    raise AssertionError('no KeyError')"]
    verdict = sandbox.run(program, tests, setup="from fractions import Fraction\n", limits=Limits(timeout=20, cpu_seconds=10))
    assert verdict.status == "pass", verdict


CORRECT_PROGRAMS = {  # real model outputs do these; each is right and must pass
    "numpy": "import numpy as np\ndef add(a, b):\n    return float(np.add(a, b))\n",
    "traceback.print_exc": "import traceback\ntry:\n    1 / 0\nexcept ZeroDivisionError:\n    traceback.print_exc()\n"
                           "def add(a, b):\n    return a + b\n",
    "asyncio.run": "import asyncio\nasync def _add(a, b):\n    await asyncio.sleep(0)\n    return a + b\n"
                   "def add(a, b):\n    return asyncio.run(_add(a, b))\n",
    "multiprocessing.Pool": "import multiprocessing\ndef _one(x):\n    return x\n"
                            "def add(a, b):\n    with multiprocessing.Pool(2) as pool:\n        return sum(pool.map(_one, [a, b]))\n",
    "frames and gc": "import sys, gc\nframe = sys._getframe(0)\ngc.collect()\nfrom collections import namedtuple\n"
                     "P = namedtuple('P', 'x y')\ndef add(a, b):\n    return P(a, b).x + P(a, b).y\n",
    "a main block that reads input": "def add(a, b):\n    return a + b\nif __name__ == '__main__':\n    print(add(*map(int, input().split())))\n",
}


@pytest.mark.parametrize("name", sorted(CORRECT_PROGRAMS))
def test_correct_programs_pass(sandbox, name):
    verdict = sandbox.run(CORRECT_PROGRAMS[name], ADD_TESTS, limits=Limits(timeout=30, cpu_seconds=20, memory_mb=1024))
    assert verdict.status == "pass", (name, verdict)


# -- resources -----------------------------------------------------------------------------------------

def test_memory_bomb(sandbox):
    verdict = sandbox.run("chunks = []\nwhile True:\n    chunks.append(bytearray(64 << 20))\n", [])
    assert verdict.status == "error" and "MemoryError" in verdict.reason
    still_works(sandbox)


def test_huge_output_is_cut_not_an_error(sandbox):
    """Output goes through a pipe: the tail is kept, the rest dropped; 40 MB of prints still pass."""
    program = "import sys\nfor _ in range(640):\n    sys.stdout.write('x' * 65536)\nprint('END')\ndef f():\n    return 1\n"
    verdict = sandbox.run(program, ["assert f() == 1"], limits=Limits(timeout=30, cpu_seconds=20, file_size_mb=4))
    assert verdict.status == "pass", verdict.reason
    assert verdict.stdout.endswith("END\n") and len(verdict.stdout) <= sandbox.limits.output_tail
    still_works(sandbox)


def test_busy_children_are_killed(sandbox):
    marker = f"ttscale_busy_{secrets.token_hex(4)}"
    program = ("import subprocess, sys\n"
               f"subprocess.Popen([sys.executable, '-c', 'while True: pass', '{marker}'])\n"
               f"subprocess.Popen([sys.executable, '-c', 'while True: pass', '{marker}'], start_new_session=True)\n"
               "def f():\n    return 1\n")
    verdict = sandbox.run(program, ["assert f() == 1"])
    assert verdict.status == "pass", verdict  # leaving children is not cheating; they just must not survive
    allowed = 0 if sandbox.isolation == "bwrap" or sandbox.drop_uid else 1
    deadline = time.monotonic() + 3  # SIGKILL is delivered asynchronously
    while len(processes_with(marker)) > allowed and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = processes_with(marker)
    # limits only, same user: the process group is killed; a child in its own session survives it
    assert len(survivors) <= allowed
    if survivors:
        for pid in survivors:
            os.kill(pid, 9)
    still_works(sandbox)


def test_deleting_the_working_directory(sandbox):
    verdict = sandbox.run("import os, shutil\nshutil.rmtree(os.getcwd(), ignore_errors=True)\n"
                          "def f():\n    return 1\n", ["assert f() == 1"])
    assert verdict.status == "pass", verdict
    still_works(sandbox)


@needs_bwrap
def test_fork_bomb(bwrap_sandbox):
    verdict = bwrap_sandbox.run("import os\nwhile True:\n    os.fork()\n", ["assert True"])
    assert verdict.status in ("error", "timeout"), verdict
    assert verdict.seconds < 8
    still_works(bwrap_sandbox)


# -- isolation (namespaces) ----------------------------------------------------------------------------

@needs_bwrap
def test_writes_outside_the_working_directory_do_not_land(bwrap_sandbox, tmp_path):
    name = f"ttscale_escape_{secrets.token_hex(4)}"
    targets = [Path.home() / name, Path("/tmp") / name, REPO / name, tmp_path / name]
    program = "import os\n" + "".join(
        f"try:\n    open({str(t)!r}, 'w').write('escaped')\nexcept OSError as e:\n    print('blocked', e)\n"
        for t in targets) + "def f():\n    return 1\n"
    verdict = bwrap_sandbox.run(program, ["assert f() == 1"])
    assert verdict.status == "pass"
    assert not [t for t in targets if t.exists()]
    still_works(bwrap_sandbox)


@needs_bwrap
def test_parent_environment_is_not_readable(bwrap_sandbox, monkeypatch):
    secret = f"s3cret-{secrets.token_hex(8)}"
    monkeypatch.setenv("TTSCALE_TEST_SECRET", secret)
    program = ("import os, subprocess\n"
               "print(dict(os.environ))\n"
               "print(subprocess.run('cat /proc/*/environ', shell=True, capture_output=True).stdout)\n"
               f"print(subprocess.run('cat /proc/{os.getpid()}/environ', shell=True, capture_output=True))\n")
    verdict = bwrap_sandbox.run(program, [], limits=Limits(timeout=8, output_tail=100_000))
    assert verdict.status == "pass", verdict
    assert "TTSCALE_TEST_SECRET" not in verdict.stdout and secret not in verdict.stdout
    assert "PATH" in verdict.stdout  # it did print its environment: the scrubbed one


@needs_bwrap
def test_no_network_even_to_loopback(bwrap_sandbox):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    port = server.getsockname()[1]
    program = ("import socket\n"
               "try:\n"
               f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
               "    print('connected')\n"
               "except OSError as e:\n"
               "    print('refused', type(e).__name__)\n")
    verdict = bwrap_sandbox.run(program, [])
    assert "refused" in verdict.stdout and "connected" not in verdict.stdout
    with pytest.raises(BlockingIOError):
        server.accept()
    server.close()


@needs_bwrap
def test_cannot_signal_the_parent(bwrap_sandbox):
    program = ("import os, signal\n"
               f"for pid in (os.getppid(), {os.getpid()}, 1):\n"
               "    try:\n"
               "        os.kill(pid, signal.SIGKILL)\n"
               "    except OSError as e:\n"
               "        print('blocked', pid, type(e).__name__)\n")
    bwrap_sandbox.run(program, [])
    assert os.getpid() > 0  # still here
    still_works(bwrap_sandbox)


# -- never as root; shared resources bounded; cleanup never fails the verdict ---------------------------------

@needs_bwrap
def test_programs_never_run_as_root(bwrap_sandbox):
    verdict = bwrap_sandbox.run("import os\ndef ids():\n    return [os.getuid(), os.geteuid(), os.getgid()]\n",
                                [], probes=["ids()"])
    uids = eval(verdict.probe_values[0])
    assert 0 not in uids, verdict
    if ROOT:
        assert bwrap_sandbox.uid_block[0] <= uids[0] < bwrap_sandbox.uid_block[1]


@pytest.mark.skipif(not ROOT, reason="only root could run programs as root")
def test_limits_only_as_root_is_refused_unless_forced():
    if Sandbox("none", allow_root=True).drop_uid:
        pytest.skip("this interpreter can run as a throw-away user: nothing to refuse")
    with pytest.raises(SandboxError, match="would run generated programs as root.*allow_root"):
        Sandbox("none")
    with pytest.raises(ConfigError, match="grader.code_allow_root"):
        from ttscale.build import build_grader

        build_grader({"format": "humaneval"}, {"isolation": "none", "code_timeout": 5, "code_memory_mb": 256,
                                               "code_grouping": "program"})


def test_two_sandboxes_never_share_a_slot_user():
    a, b = Sandbox("auto", parallel=4, allow_root=True), Sandbox("auto", parallel=4, allow_root=True)
    if a.uid_block is None:
        pytest.skip("programs run as this user here: no throw-away uids")
    assert a.uid_block != b.uid_block  # claimed through a lock file: never shared
    first, second = a.run_uid(), a.run_uid()
    assert first != second  # every run its own uid: a still-exiting process never counts against the next


@needs_bwrap
def test_private_tmp_and_working_folder_are_size_capped(bwrap_sandbox):
    program = ("import os\nwritten = {}\n"
               "for folder in ('/tmp', '.', '/dev/shm'):\n"
               "    n = 0\n"
               "    try:\n"
               "        with open(os.path.join(folder, 'big'), 'wb') as h:\n"
               "            for _ in range(256):\n"
               "                h.write(b'x' * (1 << 20))\n"
               "                n += 1\n"
               "    except OSError as e:\n"
               "        pass\n"
               "    written[folder] = n\n"
               "def sizes():\n    return written\n")
    limits = Limits(timeout=20, cpu_seconds=10, file_size_mb=512, memory_mb=512, tmp_mb=32)
    verdict = bwrap_sandbox.run(program, [], probes=["sizes()"], limits=limits)
    sizes = eval(verdict.probe_values[0])
    assert all(n <= 33 for n in sizes.values()), sizes  # 1 GiB asked for, 32 MiB allowed each


@needs_bwrap
def test_memory_of_the_whole_process_tree_is_bounded_by_a_cgroup(bwrap_sandbox):
    if not bwrap_sandbox.describe()["cgroups"]:
        pytest.skip(f"no cgroup here ({bwrap_sandbox.cgroup_problem}): per-process limits only")
    program = ("import os, time\n"
               "kids = []\n"
               "for _ in range(4):\n"
               "    pid = os.fork()\n"
               "    if pid == 0:\n"
               "        block = bytearray(200 << 20)\n"
               "        for i in range(0, len(block), 4096):\n"
               "            block[i] = 1\n"
               "        time.sleep(3)\n"
               "        os._exit(0)\n"
               "    kids.append(pid)\n"
               "codes = [os.waitpid(pid, 0)[1] for pid in kids]\n"
               "def add(a, b):\n    return a + b if all(c == 0 for c in codes) else None\n")
    sandbox = Sandbox("bwrap", Limits(timeout=20, cpu_seconds=10, memory_mb=256), parallel=1)
    verdict = sandbox.run(program, ["assert add(1, 2) == 3"])
    assert verdict.status != "pass", verdict  # 4 x 200 MiB in a 256 MiB tree: some child was killed


def test_cleanup_of_a_hostile_working_folder_never_loses_the_verdict(sandbox):
    program = ("import os\n"
               "path = '.'\n"
               "for _ in range(1500):\n"
               "    path = os.path.join(path, 'd')\n"
               "    os.mkdir(path)\n"
               "    os.chdir(path)\n"
               "    path = '.'\n"
               "open('f', 'w').write('x')\n"
               "os.chmod('.', 0o500)\n"
               "def add(a, b):\n    return a + b\n")
    before = set(Path(tempfile_dir()).glob("ttscale-sbx-*"))
    verdict = sandbox.run(program, ADD_TESTS, limits=Limits(timeout=30, cpu_seconds=20))
    assert verdict.status == "pass", verdict
    # no working folder holding the program's chain is left (other sandboxes — another test worker's —
    # may make and remove folders of their own meanwhile: only this program's chain is looked for)
    new = set(Path(tempfile_dir()).glob("ttscale-sbx-*")) - before - {Path(sandbox._scripts)}
    assert not [p for p in new if (p / "d").exists()], new


def tempfile_dir() -> str:
    import tempfile

    return tempfile.gettempdir()


def test_remove_tree_handles_deep_chains(tmp_path):
    from ttscale.graders.code.sandbox import remove_tree

    path = tmp_path / "top"
    path.mkdir()
    fd = os.open(path, os.O_RDONLY)
    for _ in range(5000):  # deeper than the recursion limit and PATH_MAX
        os.mkdir("d", dir_fd=fd)
        down = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = down
    os.fchmod(fd, 0o000)
    os.close(fd)
    assert remove_tree(str(path)) is None and not path.exists()
