"""What the tests' process does with a decoded table besides building its value: a mutated argument
written back into the tests' own objects, and a hash of a value's canonical form (probe keys).

Standalone on purpose (no ttscale import): the sandbox mounts this file beside wire.py.
"""

import collections

import wire


def update_in_place(original, new) -> None:
    """Make the mutable containers of `original` hold what `new` holds (an argument the program
    mutated): lists, dicts, sets, bytearrays and deques keep their identity, nested ones too."""
    seen = set()
    stack = [(original, new)]
    while stack:
        old, fresh = stack.pop()
        if id(old) in seen or type(old) is not type(fresh):
            continue
        seen.add(id(old))
        if isinstance(old, list):
            merged = []
            for k, item in enumerate(fresh):
                if k < len(old) and _mutable(old[k]) and type(old[k]) is type(item):
                    stack.append((old[k], item))
                    merged.append(old[k])
                else:
                    merged.append(item)
            old[:] = merged
        elif isinstance(old, dict):
            merged = {}
            for key, item in fresh.items():
                if key in old and _mutable(old[key]) and type(old[key]) is type(item):
                    stack.append((old[key], item))
                    merged[key] = old[key]
                else:
                    merged[key] = item
            old.clear()
            old.update(merged)
        elif isinstance(old, (set, collections.deque)):
            old.clear()
            (old.update if isinstance(old, set) else old.extend)(fresh)
        elif isinstance(old, bytearray):
            old[:] = fresh


def _mutable(value) -> bool:
    return isinstance(value, (list, dict, set, bytearray, collections.deque))


def digest(table) -> str:
    """A hash of a value's canonical form (from its table): equal plain values of the same types hash
    alike (sets and dicts whatever their order, an OrderedDict in its order); every digit of a large
    number counts."""
    import hashlib  # only probes need it (about 4 ms of the tests' process start-up)

    out = [None] * len(table)
    for at in wire.postorder(table, lambda i: True, cyclic="skip"):
        node = table[at]
        if type(node) is not list:
            text = f"{type(node).__name__}:{node!r}"
        else:
            tag, kids = node[0], wire.kids_of(node)
            parts = [out[c] if out[c] is not None else "cycle" for c in kids]
            if tag == "=":
                out[at] = parts[0]
                continue
            if tag == "ddv":  # the default value is not part of the value (a defaultdict equals a dict)
                tag, parts = "dd", parts[1:]
            if tag in ("s", "fs"):
                parts.sort()
            elif tag in wire.MAPPINGS and tag != "od":  # an OrderedDict's order counts, as in its `==`
                pairs = sorted(zip(parts[0::2], parts[1::2]))
                parts = [p for pair in pairs for p in pair]
            head = [tag] + [str(x) for x in node[1:len(node) - len(kids)]]
            if tag == "nt":  # a namedtuple equals the tuple of its values
                head = ["t"]
            elif node[0] == "ddv":
                head = ["dd", "None"]
            if tag == "h":
                head = ["h", str(node[2])]  # opaque: its type only
            text = "|".join(head) + "(" + ",".join(parts) + ")"
        out[at] = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    return out[0]
