"""The tests' process: runs a problem's setup, probes and tests against the program in another process.

Started by the sandbox as `python -I -B test_runner.py TO_PROGRAM_FD FROM_PROGRAM_FD REPORT_FD`; the
job (nonce, setup, probes, tests, exports, limits) arrives on stdin.

The tests' namespace is built in this order, each later step winning: Python's builtins; the program's
names the task exports (its entry point and the names the tests use that nothing else defines), never
one that shadows a builtin or a standard-library module but the entry point itself (a task's function
may be named `max` or `copy`); the standard-library modules of IMPORTABLE that the program's top-level
imports name (read by a static parse in the grader, never from the program's globals), imported here
as real modules; then the task's trusted setup (test imports, the prompt's
helper functions, HumanEval's METADATA and `candidate = ...`).

The program's functions appear here as proxies (proxies.py): calling one sends plain-data arguments to the program's
process and returns the plain data it answers (wire.py), so the comparisons in the tests run on values
built by this process with its own operators. Mutable arguments come back as the program left them;
functions of the tests passed as arguments (callbacks) are called here when the program calls them.
Exceptions arrive as subclasses of their nearest builtin exception (`except ValueError` catches the
program's ValueError subclass), with their args; StopIteration never crosses (it would end the tests'
own loops). The program's classes are types here: calling one builds an object in the program's
process, `isinstance` asks the program. What the program returns that is not plain data comes back
as an opaque handle: it can be passed back, called, iterated, indexed, asked for attributes (each
answered by the program), and compares equal only to itself or, when both sides are the program's
objects, as the program's own `==` says.

Events go to the report fd as lines "<nonce> <json>": the program loaded (or not), each probe's value
(a hash of its full canonical form, and a short repr), each test's outcome, "gone" if the program's
process ended during the tests, and "done" last.
"""

import builtins
import importlib
import json
import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire  # noqa: E402  (mounted beside this file)
import wire_channel  # noqa: E402  (likewise)
from proxies import NEVER_CROSS, Client, Remote, RemoteType, probe_key  # noqa: E402  (likewise)

NOT_IMPORTED = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "webbrowser", "pydoc"}
# the standard-library modules a program's top-level imports (read by a static parse, never from the
# program's globals) may bring into the tests' namespace: plain libraries with no command line to run
IMPORTABLE = frozenset({
    "math", "cmath", "re", "string", "collections", "collections.abc", "itertools", "functools", "operator",
    "heapq", "bisect", "array", "copy", "datetime", "calendar", "fractions", "decimal", "numbers", "statistics",
    "random", "json", "typing", "dataclasses", "enum", "textwrap", "unicodedata", "hashlib", "struct", "time",
    "os.path", "difflib", "pprint", "reprlib", "graphlib", "zlib", "binascii", "base64"})


def _describe(exc):
    try:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    except BaseException:
        text = type(exc).__name__
    return text[:500]


def _not_dumpable():
    """Same-user processes (the program, without namespaces) cannot open this one's fds or memory."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except Exception:
        pass


def _stdlib(name):
    top = name.split(".", 1)[0]
    return top in getattr(sys, "stdlib_module_names", ()) and top not in NOT_IMPORTED and not top.startswith("_")


def namespace_for(client, hello, exports, entry=None, modules=None):
    """The tests' globals before the setup runs (see the module doc). The entry point (`entry`, the
    first export) is always the program's, even when it is named like a builtin or a module (`max`,
    `copy`): the tests call the task's function; the shadowing rules keep the program's other names out."""
    namespace = {"__name__": "__tests__", "__builtins__": builtins}
    shadowed = set(dir(builtins))
    for name, info in dict(hello.get("names") or {}).items():
        name = str(name)
        if name != entry and ((exports is not None and name not in exports) or name in shadowed or _stdlib(name)):
            continue
        try:
            kind = info.get("kind")
            if kind == "callable":
                namespace[name] = Remote(client, {"name": name}, "function")
            elif kind == "class":
                base = getattr(builtins, str(info.get("base")), None) if info.get("base") else None
                if isinstance(base, type) and issubclass(base, Exception) and str(info.get("base")) not in NEVER_CROSS:
                    namespace[name] = client.exception_class(name, base)
                else:
                    namespace[name] = RemoteType(name, (), {"_remote": Remote(client, {"name": name}, "class")})
            elif kind == "value":
                namespace[name] = wire.decode(info.get("value"), client.resolve)
        except (wire.WireError, RecursionError, AttributeError, TypeError, ValueError):
            continue
    for alias, module in dict(modules or {}).items():
        if str(module) in IMPORTABLE and str(alias).isidentifier() and str(alias) != entry:
            try:
                namespace[str(alias)] = importlib.import_module(str(module))
            except BaseException:
                continue
    return namespace


def main():
    to_program, from_program, report_fd = (int(a) for a in sys.argv[1:4])
    _not_dumpable()
    job = json.loads(sys.stdin.buffer.read())
    sys.stdin.close()
    nonce = job["nonce"].encode()
    limits = job.get("limits") or {}
    sys.path.extend(str(path) for path in job.get("site") or ())  # the packages programs may use (numpy)
    wire.configure(limits.get("memory_bytes"))
    for name, key in (("RLIMIT_AS", "memory_bytes"), ("RLIMIT_CPU", "cpu_seconds")):
        if limits.get(key):
            resource.setrlimit(getattr(resource, name), (int(limits[key]), int(limits[key]) + (1 if name == "RLIMIT_CPU" else 0)))

    def report(**event):
        os.write(report_fd, nonce + b" " + json.dumps(event).encode() + b"\n")

    client = Client(wire_channel.Channel(from_program, to_program), progress=lambda n: report(event="calls", n=n))
    try:
        hello = client.channel.receive()
        if type(hello) is not dict or type(hello.get("loaded")) is not bool:
            raise wire.WireError("the program wrote over its channel before loading")
    except (EOFError, OSError, wire.WireError) as exc:
        report(event="program", status="gone", error=f"{type(exc).__name__}: {exc}"[:300])
        report(event="done")
        return
    if not hello["loaded"]:
        report(event="program", status="error", error=str(hello.get("error"))[:500])
        report(event="done")
        return
    exports = job.get("exports")
    namespace = namespace_for(client, hello, None if exports is None else set(exports),
                              str(exports[0]) if exports else None, job.get("modules"))
    seccomp = hello.get("seccomp")
    report(event="program", status="ok", seccomp=seccomp if seccomp is True or seccomp is None else str(seccomp)[:300])
    try:
        if job.get("setup"):
            exec(compile(job["setup"], "<setup>", "exec", dont_inherit=True), namespace)
    except BaseException as exc:
        report(event="setup", status="error", error=_describe(exc))
        report(event="done")
        return
    for index, expression in enumerate(job.get("probes") or ()):  # values on given inputs: execution voting
        try:
            value = eval(compile(expression, f"<probe {index}>", "eval", dont_inherit=True), namespace)
            key = probe_key(value)
            try:
                shown = repr(value)[:1000]
            except BaseException:
                shown = f"<{type(value).__name__}>"
            report(event="probe", index=index, key=key, value=shown)
        except BaseException as exc:
            report(event="probe", index=index, error=type(exc).__name__)
    for index, test in enumerate(job.get("tests") or ()):
        try:
            exec(compile(test, f"<test {index}>", "exec", dont_inherit=True), namespace)
        except AssertionError as exc:
            report(event="test", index=index, status="fail", error=_describe(exc))
        except BaseException as exc:
            report(event="test", index=index, status="error", error=_describe(exc))
        else:
            report(event="test", index=index, status="pass")
    if client.gone:
        report(event="gone", error=client.gone)
    else:
        try:
            client.channel.send({"op": "exit"})
        except OSError:
            pass
    report(event="done")


if __name__ == "__main__":
    main()
