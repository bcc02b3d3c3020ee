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

from ttscale.graders.code.sandbox import Limits, Sandbox, SandboxError, bwrap_problem

BWRAP = bwrap_problem() is None
needs_bwrap = pytest.mark.skipif(not BWRAP, reason="bubblewrap cannot create namespaces here")
MODES = [pytest.param("bwrap", marks=needs_bwrap), "none"]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", params=MODES)
def sandbox(request):
    return Sandbox(request.param, Limits(timeout=8, cpu_seconds=4, memory_mb=512, file_size_mb=4, processes=16),
                   parallel=2)


@pytest.fixture(scope="module")
def bwrap_sandbox():
    if not BWRAP:
        pytest.skip("bubblewrap cannot create namespaces here")
    return Sandbox("bwrap", Limits(timeout=8, cpu_seconds=4, memory_mb=512, file_size_mb=4, processes=16), parallel=2)


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
    assert [t.status for t in verdict.tests] == ["timeout"]
    verdict = sandbox.run("while True:\n    pass\n", [], limits=Limits(timeout=20, cpu_seconds=1))
    assert verdict.status == "timeout" and verdict.reason == "CPU time limit" and verdict.seconds < 10
    still_works(sandbox)


@needs_bwrap
def test_a_python_under_tmp_is_mounted_over_the_private_tmp(tmp_path):
    """A checkout (and its venv) under /tmp must stay visible inside, above the sandbox's own /tmp."""
    import subprocess

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    sandbox = Sandbox("bwrap", Limits(timeout=10), python=str(venv / "bin" / "python"))
    verdict = sandbox.run("import sys\ndef f():\n    return sys.prefix\n", [f"assert f() == {str(venv)!r}"])
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
    assert verdict.status == "error" and "did not report completion" in verdict.reason
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
    assert verdict.status == "fail" and verdict.tests[0].status == "fail", verdict
    still_works(sandbox)


def test_reading_the_nonce_back_out_is_blocked(sandbox):
    attempts = {
        "gc": "import gc\nobjs = gc.get_objects()\n",
        "frames": "import sys\nframe = sys._getframe(1)\n",
        "traceback frames": "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    frame = e.__traceback__.tb_frame.f_back\n",
        "trace hook": "import sys\nsys.settrace(lambda *a: None)\n",
        "ctypes": "import ctypes\nctypes.string_at(id(0), 8)\n",
        "memory file": "open('/proc/self/mem', 'rb')\n",
    }
    for name, attack in attempts.items():
        verdict = sandbox.run(attack + "def f():\n    return 0\n", ["assert f() == 1"])
        assert verdict.status == "error", (name, verdict)
    # what ordinary code needs still works: namedtuple and typing ask for frames and get a ValueError
    ok = sandbox.run("from collections import namedtuple\nfrom typing import TypeVar\nP = namedtuple('P', 'x y')\n"
                     "T = TypeVar('T')\ndef f():\n    return P(1, 2).y\n", ["assert f() == 2"])
    assert ok.status == "pass", ok


# -- resources -----------------------------------------------------------------------------------------

def test_memory_bomb(sandbox):
    verdict = sandbox.run("chunks = []\nwhile True:\n    chunks.append(bytearray(64 << 20))\n", [])
    assert verdict.status == "error" and "MemoryError" in verdict.reason
    still_works(sandbox)


def test_huge_output_is_capped(sandbox):
    verdict = sandbox.run("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n", ["assert True"])
    # Python ignores SIGXFSZ, so the write past the file-size limit raises instead of killing it
    assert verdict.status == "error" and ("File too large" in verdict.reason or "SIGXFSZ" in verdict.reason)
    assert len(verdict.stdout) <= sandbox.limits.output_tail
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
