#!/usr/bin/env python3
"""Generates libdel/_ffi.py (ctypes declarations) from the public C header.

    gen_ffi.py [--header include/del.h] [--output bindings/python/libdel/_ffi.py]

Reads include/del.h and the headers it includes, in order, and emits the
#define constants, enums, opaque handle types, callback types and every
DEL_API prototype. The parser only understands the small C subset the header
style guide allows (SPEC section 3); anything else is an error, so a header
change that the bindings cannot express fails the build instead of producing
a silently wrong binding. Output is deterministic: `make check` regenerates it
and diffs against the committed file.

Standard library only; runs on any Python >= 3.8.
"""

import argparse
import os
import re
import sys

# Macros whose value is not a constant; everything else named DEL_* that has a
# value must be an integer, float or string literal.
IGNORED_MACROS = {"DEL_API"}
# Conditions the generator evaluates as "not defined": it reads the header as
# a C (not C++) client of the library sees it.
UNDEFINED_MACROS = {"__cplusplus", "DEL_BUILDING_LIBRARY"}

SCALARS = {
    "void": None,
    "char": "ctypes.c_char",
    "int": "ctypes.c_int",
    "unsigned": "ctypes.c_uint",
    "unsigned int": "ctypes.c_uint",
    "long": "ctypes.c_long",
    "float": "ctypes.c_float",
    "double": "ctypes.c_double",
    "size_t": "ctypes.c_size_t",
    "int8_t": "ctypes.c_int8",
    "uint8_t": "ctypes.c_uint8",
    "int16_t": "ctypes.c_int16",
    "uint16_t": "ctypes.c_uint16",
    "int32_t": "ctypes.c_int32",
    "uint32_t": "ctypes.c_uint32",
    "int64_t": "ctypes.c_int64",
    "uint64_t": "ctypes.c_uint64",
}


class GenError(Exception):
    pass


def fail(where, msg):
    raise GenError("%s: %s" % (where, msg))


def strip_comments(text, where):
    out = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                fail(where, "unterminated string literal")
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                fail(where, "unterminated comment")
            # Keep line numbers stable for error messages.
            out.append("\n" * text.count("\n", i, j) + " ")
            i = j + 2
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        else:
            out.append(c)
            i += 1
    return "".join(out)


class Model:
    """What the headers declare, in declaration order."""

    def __init__(self):
        self.constants = []   # (name, python literal)
        self.enums = []       # (type name, [(member, value)])
        self.opaque = []      # type names
        self.callbacks = []   # (name, restype, [(ptype, pname)])
        self.functions = []   # (name, restype, [(ptype, pname)])
        self.defined = set()  # every macro seen, for #ifdef
        self.enum_names = set()
        self.seen_names = set()

    def claim(self, name, where):
        if name in self.seen_names:
            fail(where, "'%s' is declared twice" % name)
        self.seen_names.add(name)


def parse_define(line, model, where):
    m = re.match(r"#\s*define\s+([A-Za-z_]\w*)(\(?)\s*(.*)$", line)
    if not m:
        fail(where, "cannot parse '%s'" % line)
    name, paren, value = m.group(1), m.group(2), m.group(3).strip()
    model.defined.add(name)
    if not name.startswith("DEL_") or name in IGNORED_MACROS or value == "":
        return
    if paren:
        fail(where, "function-like macro '%s' is not allowed in the API" % name)
    if re.fullmatch(r"-?(0[xX][0-9a-fA-F]+|\d+)[uUlL]*", value):
        literal = str(int(value.rstrip("uUlL"), 0))
    elif re.fullmatch(r"-?\d+\.\d*([eE][-+]?\d+)?[fF]?", value):
        literal = repr(float(value.rstrip("fF")))
    elif re.fullmatch(r'"([^"\\]|\\.)*"', value):
        literal = value
    else:
        fail(where, "macro '%s' has a value the bindings cannot express: %s" % (name, value))
    model.claim(name, where)
    model.constants.append((name, literal))


def eval_condition(directive, arg, model, where):
    arg = arg.strip()
    if directive == "ifdef":
        return arg in model.defined and arg not in UNDEFINED_MACROS
    if directive == "ifndef":
        return not (arg in model.defined and arg not in UNDEFINED_MACROS)
    m = re.fullmatch(r"(!?)\s*defined\s*\(?\s*([A-Za-z_]\w*)\s*\)?", arg)
    if not m:
        fail(where, "unsupported #%s condition '%s'" % (directive, arg))
    value = m.group(2) in model.defined and m.group(2) not in UNDEFINED_MACROS
    return not value if m.group(1) else value


def preprocess(path, model, visited, chunks):
    """Appends (text, where) chunks of declarations, following includes."""
    real = os.path.realpath(path)
    if real in visited:
        return
    visited.add(real)
    rel = os.path.relpath(path)
    try:
        with open(path, encoding="utf-8") as f:
            raw = f.read()
    except OSError as e:
        raise GenError("%s: cannot read (%s)" % (rel, e.strerror))
    text = strip_comments(raw, rel)
    lines = text.replace("\\\n", " ").split("\n")
    # Stack of (this branch active, some branch already taken, parent active).
    stack = []
    active = True
    body = []
    body_start = 1
    for lineno, line in enumerate(lines, 1):
        where = "%s:%d" % (rel, lineno)
        s = line.strip()
        if not s.startswith("#"):
            if active:
                body.append(line)
            else:
                body.append("")
            continue
        m = re.match(r"#\s*(\w+)\s*(.*)$", s)
        directive, arg = (m.group(1), m.group(2)) if m else ("", "")
        if directive in ("if", "ifdef", "ifndef"):
            cond = active and eval_condition(directive, arg, model, where)
            stack.append((cond, cond, active))
            active = cond
        elif directive == "elif":
            if not stack:
                fail(where, "#elif without #if")
            _, taken, parent = stack.pop()
            cond = parent and not taken and eval_condition("if", arg, model, where)
            stack.append((cond, taken or cond, parent))
            active = cond
        elif directive == "else":
            if not stack:
                fail(where, "#else without #if")
            _, taken, parent = stack.pop()
            cond = parent and not taken
            stack.append((cond, True, parent))
            active = cond
        elif directive == "endif":
            if not stack:
                fail(where, "#endif without #if")
            _, _, active = stack.pop()
        elif not active:
            pass
        elif directive == "define":
            parse_define(s, model, where)
        elif directive == "include":
            inc = re.fullmatch(r'"([^"]+)"', arg)
            if inc:
                # Flush what came before so declarations keep header order.
                chunks.append(("\n".join(body), rel, body_start))
                body = []
                body_start = lineno + 1
                preprocess(os.path.join(os.path.dirname(path), inc.group(1)),
                           model, visited, chunks)
            elif not re.fullmatch(r"<[\w./]+>", arg):
                fail(where, "cannot parse '%s'" % s)
        elif directive in ("undef", "error", "pragma"):
            fail(where, "#%s is not expected in the public header" % directive)
        else:
            fail(where, "unknown directive '%s'" % s)
        if directive != "include":
            body.append("")
    if stack:
        fail(rel, "unterminated #if")
    chunks.append(("\n".join(body), rel, body_start))


def split_statements(text, rel, start):
    """Splits at top-level ';', yielding (statement, where)."""
    depth = 0
    cur = []
    line = start
    stmt_line = None
    for c in text:
        if c == "\n":
            line += 1
        if stmt_line is None and not c.isspace():
            stmt_line = line
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth < 0:
                fail("%s:%d" % (rel, line), "unbalanced '}'")
        if c == ";" and depth == 0:
            yield " ".join("".join(cur).split()), "%s:%d" % (rel, stmt_line)
            cur = []
            stmt_line = None
        else:
            cur.append(c)
    rest = " ".join("".join(cur).split())
    if rest:
        fail("%s:%d" % (rel, stmt_line), "declaration without ';': %s" % rest)


def ctype_of(decl, model, where, is_return=False):
    """Maps a C type (no name) to a ctypes expression; None for void."""
    t = re.sub(r"\bconst\b", " ", decl)
    t = re.sub(r"\b(enum|struct)\s+", "", t)
    stars = t.count("*")
    base = " ".join(t.replace("*", " ").split())
    if base in model.enum_names:
        inner = base
    elif base in model.opaque:
        if stars == 0:
            fail(where, "opaque type '%s' used by value" % base)
        inner = "ctypes.c_void_p"
        stars -= 1
    elif any(cb[0] == base for cb in model.callbacks):
        inner = base
    elif base in SCALARS:
        inner = SCALARS[base]
        if base == "void":
            if stars == 0:
                return None
            inner = "ctypes.c_void_p"
            stars -= 1
        elif base == "char" and stars >= 1:
            inner = "ctypes.c_char_p"
            stars -= 1
    else:
        fail(where, "unknown type '%s'" % decl.strip())
    for _ in range(stars):
        inner = "ctypes.POINTER(%s)" % inner
    return inner


def split_decl(decl, where):
    """'const int64_t *shape' -> ('const int64_t *', 'shape')."""
    m = re.fullmatch(r"(.*?)([A-Za-z_]\w*)\s*(\[\s*\d*\s*\])?", decl.strip())
    if not m or not m.group(1).strip():
        fail(where, "parameter '%s' needs a type and a name" % decl.strip())
    ptype = m.group(1)
    if m.group(3):
        ptype += "*"
    return ptype, m.group(2)


def parse_params(text, model, where):
    text = text.strip()
    if text == "void":
        return []
    if text == "":
        fail(where, "empty parameter list: write (void)")
    params = []
    for p in text.split(","):
        if "(" in p or "..." in p:
            fail(where, "parameter '%s' is not expressible (use a typedef'd callback)" % p.strip())
        ptype, pname = split_decl(p, where)
        ct = ctype_of(ptype, model, where)
        if ct is None:
            fail(where, "parameter '%s' has type void" % pname)
        params.append((ct, pname))
    return params


def parse_enum(stmt, model, where):
    m = re.fullmatch(r"typedef enum (\w+) \{(.*)\} (\w+)", stmt)
    if not m:
        fail(where, "enums must read 'typedef enum name { ... } name;'")
    tag, body, name = m.groups()
    if tag != name:
        fail(where, "enum tag '%s' differs from typedef name '%s'" % (tag, name))
    model.claim(name, where)
    members = []
    nxt = 0
    known = {}
    for item in [x.strip() for x in body.split(",")]:
        if not item:
            continue
        em = re.fullmatch(r"([A-Za-z_]\w*)(?:\s*=\s*(.+))?", item)
        if not em:
            fail(where, "cannot parse enum member '%s'" % item)
        value = nxt
        if em.group(2) is not None:
            v = em.group(2).strip()
            if re.fullmatch(r"[-+]?\s*(0[xX][0-9a-fA-F]+|\d+)", v):
                value = int(v.replace(" ", ""), 0)
            elif v in known:
                value = known[v]
            else:
                fail(where, "enum value '%s = %s' is not an integer literal" % (em.group(1), v))
        model.claim(em.group(1), where)
        members.append((em.group(1), value))
        known[em.group(1)] = value
        nxt = value + 1
    if not members:
        fail(where, "enum '%s' has no members" % name)
    model.enums.append((name, members))
    model.enum_names.add(name)


def parse_statement(stmt, model, where):
    if stmt.startswith('extern "C"'):
        fail(where, 'extern "C" outside an #ifdef __cplusplus block')
    if stmt.startswith("typedef enum"):
        parse_enum(stmt, model, where)
        return
    m = re.fullmatch(r"typedef struct (\w+) (\w+)", stmt)
    if m:
        if m.group(1) != m.group(2):
            fail(where, "struct tag '%s' differs from typedef name '%s'" % m.groups())
        model.claim(m.group(2), where)
        model.opaque.append(m.group(2))
        return
    if stmt.startswith("typedef struct") or "{" in stmt:
        fail(where, "public structs are not allowed: %s" % stmt[:60])
    m = re.fullmatch(r"typedef (.+?)\(\s*\*\s*(\w+)\s*\)\s*\((.*)\)", stmt)
    if m:
        name = m.group(2)
        model.claim(name, where)
        restype = ctype_of(m.group(1), model, where, is_return=True)
        params = parse_params(m.group(3), model, where)
        model.callbacks.append((name, restype, params))
        return
    m = re.fullmatch(r"DEL_API (.+?)\b(\w+)\s*\((.*)\)", stmt)
    if m:
        name = m.group(2)
        model.claim(name, where)
        restype = ctype_of(m.group(1), model, where, is_return=True)
        params = parse_params(m.group(3), model, where)
        model.functions.append((name, restype, params))
        return
    fail(where, "cannot parse declaration: %s" % stmt)


def parse(header):
    model = Model()
    chunks = []
    preprocess(header, model, set(), chunks)
    for text, rel, start in chunks:
        for stmt, where in split_statements(text, rel, start):
            parse_statement(stmt, model, where)
    if not model.functions:
        fail(os.path.relpath(header), "no DEL_API function found")
    return model


def render(model, header_rel):
    out = []
    w = out.append
    w('"""ctypes declarations of the libdel C API.')
    w("")
    w("Generated by bindings/python/gen_ffi.py from %s: do not edit." % header_rel)
    w('Regenerate with `make python-gen`."""')
    w("")
    w("import ctypes")
    w("")
    w("# ---- constants (#define) ----")
    for name, literal in model.constants:
        w("%s = %s" % (name, literal))
    w("")
    w("# ---- enums (C enums are int-sized) ----")
    for name, members in model.enums:
        w("%s = ctypes.c_int" % name)
        for member, value in members:
            w("%s = %d" % (member, value))
    w("")
    w("ENUMS = {")
    for name, members in model.enums:
        w("    %r: {%s}," % (name, ", ".join("%r: %d" % (m, v) for m, v in members)))
    w("}")
    w("")
    w("# ---- opaque handles (passed as void pointers) ----")
    w("OPAQUE_TYPES = %r" % (tuple(model.opaque),))
    w("")
    w("# ---- callback types ----")
    for name, restype, params in model.callbacks:
        args = [restype or "None"] + [p[0] for p in params]
        w("%s = ctypes.CFUNCTYPE(%s)" % (name, ", ".join(args)))
        w("%s_PARAMS = %r" % (name, tuple(p[1] for p in params)))
    w("")
    w("# ---- functions: name -> (restype, ((argtype, parameter name), ...)) ----")
    w("FUNCTIONS = {")
    for name, restype, params in model.functions:
        w("    %r: (" % name)
        w("        %s," % (restype or "None"))
        w("        (%s)," % "".join("(%s, %r), " % p for p in params).rstrip())
        w("    ),")
    w("}")
    w("")
    w("")
    w("def bind(lib):")
    w('    """Sets argtypes/restype on every function of the loaded library.')
    w("")
    w("    Raises AttributeError naming the functions the library lacks (a")
    w('    library older or newer than these declarations)."""')
    w("    missing = [n for n in FUNCTIONS if not hasattr(lib, n)]")
    w("    if missing:")
    w("        raise AttributeError('libdel: the library lacks ' + ', '.join(missing))")
    w("    for name, (restype, params) in FUNCTIONS.items():")
    w("        fn = getattr(lib, name)")
    w("        fn.restype = restype")
    w("        fn.argtypes = [p[0] for p in params]")
    w("    return lib")
    w("")
    return "\n".join(out)


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--header", default=os.path.join(root, "include", "del.h"))
    ap.add_argument("--output", "-o", default=os.path.join(here, "libdel", "_ffi.py"),
                    help="file to write ('-' for stdout)")
    args = ap.parse_args(argv)
    try:
        model = parse(args.header)
    except GenError as e:
        sys.stderr.write("gen_ffi: error: %s\n" % e)
        return 1
    header_rel = os.path.relpath(os.path.abspath(args.header), root)
    if header_rel.startswith(".."):
        header_rel = os.path.basename(args.header)
    text = render(model, header_rel)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        tmp = args.output + ".tmp"
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
