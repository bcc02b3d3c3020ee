"""Plain data over a pipe, between the program's process and the tests' process.

Standalone on purpose (no ttscale import): the sandbox mounts this file beside its two scripts.

`encode` turns a value into a flat table of nodes (JSON-able, at most three levels deep whatever the
value's nesting, so a 10,000-deep list costs no recursion on either side): None, bool, int, float (nan
and infinities too), complex, str, bytes, bytearray, list, tuple, dict, set, frozenset, range, Fraction,
Decimal, and collections' Counter, OrderedDict, defaultdict (of a builtin factory) and deque. Shared and
cyclic containers stay shared and cyclic. Subclasses become their base type (an `int` subclass with
`__eq__` always True is sent as its integer); numpy scalars and arrays become Python numbers and lists.
Anything else becomes a *handle* (`register` decides what it refers to). `decode` builds only those
plain types back — never an object of the sender's making — so whatever the program does to its own
interpreter, the tests' process compares plain values with its own, unpatched operators.

Bounds: a message line is at most MAX_MESSAGE bytes (wire_channel.py sends and reads the lines), a table
at most MAX_NODES nodes. wire_tables.py holds what the tests' process does with a table besides decoding it.
"""

import builtins
import collections

MAX_MESSAGE = 16 << 20  # bytes in one message line (configure() ties it to the run's memory)
MAX_NODES = 1 << 20  # nodes in one encoded value (likewise)


def configure(memory_bytes) -> None:
    """Tie the caps to the run's memory limit (a quarter of it per message line, a node per 64
    bytes of it), never below the defaults: a 4-million-item list fits a 1 GB run. Each of the
    sandbox's two processes calls it once, with its limits, before its first message."""
    global MAX_MESSAGE, MAX_NODES
    if memory_bytes:
        MAX_MESSAGE = max(16 << 20, int(memory_bytes) // 4)
        MAX_NODES = max(1 << 20, int(memory_bytes) // 64)
_SMALL_INT = 1 << 62
_FACTORIES = {"int": int, "float": float, "str": str, "list": list, "dict": dict, "set": set, "tuple": tuple,
              "bool": bool, "frozenset": frozenset, "bytes": bytes}
MUTABLE_TAGS = ("l", "d", "s", "ba", "ctr", "od", "dd", "ddv", "dq")  # containers decoded empty, then filled
MAPPINGS = ("d", "ctr", "od", "dd", "ddv")
_DATETIMES = ("date", "datetime", "time")
MAX_FIELDS = 256  # fields of a namedtuple sent over the wire


class WireError(Exception):
    """A message that is not plain data (or too large)."""


def _leaf(value, kind):
    """The node of a value without children, or None when it has children (or is not plain data)."""
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return value if -_SMALL_INT < value < _SMALL_INT else ["i", hex(value)]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return _leaf(int.__index__(value), int)
    if isinstance(value, float):
        number = float.__float__(value)
        if number != number or number in (float("inf"), float("-inf")):
            return ["f", repr(number)]
        return number
    if isinstance(value, complex):
        return ["c", repr(complex.real.__get__(value)), repr(complex.imag.__get__(value))]
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bytes):
        return ["b", bytes(value).hex()]
    if kind is range:
        return ["r", value.start, value.stop, value.step]
    module = getattr(kind, "__module__", "")
    if kind is type and getattr(builtins, getattr(value, "__name__", ""), None) is value:
        return ["ty", value.__name__]  # a builtin type as an argument (`isinstance(x, t)` works there)
    if module == "datetime" and kind.__name__ in _DATETIMES:
        return ["dt", kind.__name__, value.isoformat()]
    if module == "datetime" and kind.__name__ == "timedelta":
        return ["td", value.days, value.seconds, value.microseconds]
    if module == "fractions" and kind.__name__ == "Fraction":  # by name: importing them costs ~4 ms a process
        return ["q", hex(value.numerator), hex(value.denominator)]
    if module == "decimal" and kind.__name__ == "Decimal":
        return ["dec", str(value)]
    return None


def encode(value, register):
    """A flat table of nodes for `value` (node 0 is the value); `register(obj) -> int` gives handles
    for what is not plain data."""
    nodes = []
    memo = {}  # id -> node index, for containers (aliasing and cycles kept)
    keep = []  # objects made here (numpy's lists), alive until the table is done
    stack = []

    def index(item):
        kind = type(item)
        leaf = _leaf(item, kind)
        if leaf is not None or item is None:
            nodes.append(leaf)
        else:
            known = memo.get(id(item))
            if known is not None:
                return known
            memo[id(item)] = len(nodes)
            keep.append(item)
            nodes.append(None)
            stack.append((item, len(nodes) - 1))
        if len(nodes) > MAX_NODES:
            raise WireError(f"a value of over {MAX_NODES} parts")
        return len(nodes) - 1

    index(value)
    while stack:
        item, at = stack.pop()
        nodes[at] = _node(item, index, register, keep)
    return nodes


def _node(item, index, register, keep):
    if isinstance(item, bytearray):
        return ["ba", bytes(item).hex()]
    if isinstance(item, tuple):
        fields = getattr(type(item), "_fields", None)
        if (type(item) is not tuple and isinstance(fields, tuple) and len(fields) == tuple.__len__(item)
                and len(fields) <= MAX_FIELDS and all(type(f) is str for f in fields)):  # a namedtuple keeps its fields
            return ["nt", str(type(item).__name__)[:100], " ".join(fields), *[index(v) for v in tuple.__iter__(item)]]
        return ["t", *[index(v) for v in tuple.__iter__(item)]]
    if isinstance(item, list):
        return ["l", *[index(v) for v in list.__iter__(item)]]
    if isinstance(item, collections.deque):
        return ["dq", item.maxlen, *[index(v) for v in collections.deque.__iter__(item)]]
    if isinstance(item, dict):
        if isinstance(item, collections.Counter):
            tag = ["ctr"]
        elif isinstance(item, collections.defaultdict):
            factory = item.default_factory
            name = next((n for n, f in _FACTORIES.items() if f is factory), None)
            tag = ["dd", name]
            if factory is not None and name is None:  # `defaultdict(lambda: 0)`: its default value, made once here
                try:
                    default = factory()
                except Exception:  # noqa: BLE001  (a factory that fails: a defaultdict without one)
                    default = _NO_DEFAULT
                if default is not _NO_DEFAULT:
                    keep.append(default)
                    tag = ["ddv", index(default)]
        elif isinstance(item, collections.OrderedDict):
            tag = ["od"]
        else:
            tag = ["d"]
        out = tag
        for key, val in dict.items(item):
            out.append(index(key))
            out.append(index(val))
        return out
    if isinstance(item, set):
        return ["s", *[index(v) for v in set.__iter__(item)]]
    if isinstance(item, frozenset):
        return ["fs", *[index(v) for v in frozenset.__iter__(item)]]
    if getattr(type(item), "__module__", "") == "numpy" and hasattr(item, "tolist"):
        plain = item.tolist()
        keep.append(plain)
        if type(item).__name__ == "ndarray" and _DTYPE.fullmatch(str(item.dtype)):  # an array stays an array
            return ["np", str(item.dtype), [int(n) for n in item.shape], index(plain)]
        return ["="] + [index(plain)]  # a numpy scalar: an alias of another node
    ident = register(item)  # an id, or (id, type name)
    if isinstance(ident, tuple):
        return ["h", int(ident[0]), str(ident[1])[:100]]
    return ["h", ident, getattr(type(item), "__name__", "object")[:100]]


_NO_DEFAULT = object()


def kids_of(node):
    tag = node[0]
    if tag in ("t", "l", "s", "fs", "d", "ctr", "od", "=", "ddv"):
        return node[1:]
    if tag in ("dq", "dd"):
        return node[2:]
    if tag == "nt":
        return node[3:]
    if tag == "np":
        return node[3:4]
    return ()


def _entries(node):
    """A mapping node's key and value nodes (a `ddv` node's first child is its default value)."""
    children = kids_of(node)
    return children[1:] if node[0] == "ddv" else children


def _namedtuple(name: str, fields: str, count: int):
    """A namedtuple class of this process for the sender's (name and fields checked; never its code)."""
    names = fields.split()
    if len(names) != count or len(names) > MAX_FIELDS or not name.isidentifier():
        raise WireError("a namedtuple whose fields do not match its values")
    return collections.namedtuple(name, names)  # (raises ValueError on a bad field name: a WireError)


_DTYPE = __import__("re").compile(r"bool|u?int(8|16|32|64)|float(16|32|64)|complex(64|128)|<U\d{1,6}")


def _nested(table, at: int, resolve):
    """The nested list of numbers (or strings) at node `at`, built straight from the table (an array's
    contents: lists and leaves only), without recursion."""
    def leaf(i):
        node = table[i]
        if type(node) is list:
            if node[0] == "l":
                raise WireError("an array's list inside an array's list")
            return _made(node, resolve)
        return node

    if type(table[at]) is not list or table[at][0] != "l":
        return leaf(at)
    root: list = []
    stack = [(at, root)]
    seen = 0
    while stack:
        i, out = stack.pop()
        for child in table[i][1:]:
            seen += 1
            if seen > MAX_NODES:
                raise WireError("an array of too many parts")
            node = table[child]
            if type(node) is list and node[0] == "l":
                inner: list = []
                out.append(inner)
                stack.append((child, inner))
            else:
                out.append(leaf(child))
    return root


def _array(dtype: str, shape, plain):
    """A numpy array of this process (its dtype and shape checked) when numpy is importable here, else
    the plain nested list."""
    try:
        import numpy
    except ImportError:
        return plain
    if not _DTYPE.fullmatch(dtype) or type(shape) is not list or not all(type(n) is int and n >= 0 for n in shape):
        raise WireError("an array with a bad dtype or shape")
    array = numpy.array(plain, dtype=dtype)
    if list(array.shape) != shape:
        array = array.reshape(shape) if array.size == int(numpy.prod(shape)) else array
    return array


def _made(node, resolve):
    """The object of a node without children (or an empty container), by its tag."""
    tag = node[0]
    if tag == "i":
        return int(node[1], 16)
    if tag == "f":
        return float(node[1])
    if tag == "c":
        return complex(float(node[1]), float(node[2]))
    if tag == "b":
        return bytes.fromhex(node[1])
    if tag == "ba":
        return bytearray.fromhex(node[1])
    if tag == "r":
        return range(*(int(x) for x in node[1:4]))
    if tag == "q":
        from fractions import Fraction

        return Fraction(int(node[1], 16), int(node[2], 16))
    if tag == "dec":
        from decimal import Decimal

        return Decimal(str(node[1]))
    if tag == "h":
        return resolve(int(node[1]), str(node[2]))
    if tag == "l":
        return []
    if tag in ("d",):
        return {}
    if tag == "s":
        return set()
    if tag == "ctr":
        return collections.Counter()
    if tag == "od":
        return collections.OrderedDict()
    if tag == "dd":
        return collections.defaultdict(_FACTORIES[node[1]] if node[1] is not None else None)
    if tag == "ddv":
        return collections.defaultdict(None)  # its factory is set once its default value is built
    if tag == "dq":
        return collections.deque(maxlen=None if node[1] is None else int(node[1]))
    if tag == "ty":
        kind = getattr(builtins, str(node[1]), None)
        if not isinstance(kind, type):
            raise WireError(f"{node[1]!r} is not a builtin type")
        return kind
    if tag == "dt":
        import datetime

        if node[1] not in _DATETIMES:
            raise WireError(f"unknown datetime kind {node[1]!r}")
        return getattr(datetime, node[1]).fromisoformat(str(node[2]))
    if tag == "td":
        import datetime

        return datetime.timedelta(days=int(node[1]), seconds=int(node[2]), microseconds=int(node[3]))
    raise WireError(f"unknown wire tag {tag!r}")


def decode(table, resolve):
    """The value of `encode`'s table; `resolve(id, type_name)` turns a handle into an object."""
    try:
        return _decode(table, resolve)
    except WireError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, ArithmeticError, RecursionError, AttributeError) as exc:
        raise WireError(f"malformed value: {type(exc).__name__}: {exc}"[:300]) from None


def _decode(table, resolve):
    if type(table) is not list or not table or len(table) > MAX_NODES:
        raise WireError("a value is not a table of at most MAX_NODES nodes")
    n = len(table)
    missing = object()
    objs = [missing] * n
    for i, node in enumerate(table):
        if type(node) is list:
            if not node or type(node[0]) is not str:
                raise WireError("a node without a tag")
            if node[0] not in ("t", "fs", "=", "nt", "np"):
                objs[i] = _made(node, resolve)
            for child in kids_of(node):
                if type(child) is not int or not 0 <= child < n:
                    raise WireError("a node refers to no node")
        elif node is None or type(node) in (bool, int, float, str):
            objs[i] = node
        else:
            raise WireError(f"unexpected {type(node).__name__} on the wire")
    # immutable containers (and aliases) need their children first: children before parents, no recursion
    for at in postorder(table, lambda i: objs[i] is missing, cyclic="error"):
        node = table[at]
        parts = [objs[c] for c in kids_of(node)]
        if node[0] == "nt":
            objs[at] = _namedtuple(str(node[1]), str(node[2]), len(parts))(*parts)
        elif node[0] == "np":  # (its nested list is filled below, after this pass: read it from the table now)
            objs[at] = _array(str(node[1]), node[2], _nested(table, node[3], resolve))
        else:
            objs[at] = parts[0] if node[0] == "=" else (tuple(parts) if node[0] == "t" else frozenset(parts))
    for i, node in enumerate(table):  # fill the mutable containers
        if type(node) is not list or node[0] not in MUTABLE_TAGS or node[0] == "ba":
            continue
        target, children = objs[i], _entries(node)
        if node[0] == "ddv":
            default = objs[node[1]]
            target.default_factory = lambda default=default: __import__("copy").deepcopy(default)
        if node[0] in MAPPINGS:
            if len(children) % 2:
                raise WireError("a mapping with a key and no value")
            for k in range(0, len(children), 2):
                target[objs[children[k]]] = objs[children[k + 1]]
        elif node[0] == "s":
            target.update(objs[c] for c in children)
        else:
            target.extend(objs[c] for c in children)
    return objs[0]


def postorder(table, wanted, cyclic):
    """Indices of the wanted nodes, each after its wanted children (iterative depth-first search).
    A child on the current path (a cycle): cyclic="error" raises, "skip" leaves it to its ancestor."""
    state = {}  # 1: on the path, 2: done
    for start in range(len(table)):
        if not wanted(start) or state.get(start):
            continue
        stack = [(start, 0)]
        state[start] = 1
        while stack:
            at, pos = stack[-1]
            node = table[at]
            kids = kids_of(node) if type(node) is list else ()
            while pos < len(kids):
                child = kids[pos]
                pos += 1
                if not wanted(child) or state.get(child) == 2:
                    continue
                if state.get(child) == 1:
                    if cyclic == "error":
                        raise WireError("a cycle of tuples")
                    continue
                break
            else:
                stack.pop()
                state[at] = 2
                yield at
                continue
            stack[-1] = (at, pos)
            state[child] = 1
            stack.append((child, 0))
