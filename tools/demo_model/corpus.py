"""Pretraining text: Python sources (with their docstrings) and package documentation found on this machine.

Nothing is downloaded and nothing of it is committed. The selection is deterministic: files are keyed by
(root kind, path relative to the root), sorted, shuffled with the seed, and taken until the size cap, with
no single top-level package contributing more than a share of the cap.
"""

import os
import random
import site
import sysconfig

SKIP_DIRS = {"__pycache__", "test", "tests", "testing", "site-packages", "dist-packages", "node_modules",
             ".git", "_vendor", "vendored"}
TEXT_EXT = (".py", ".md", ".rst", ".txt")
SKIP_NAMES = ("LICENSE", "LICENCE", "COPYING", "AUTHORS", "NOTICE", "RECORD", "top_level", "entry_points",
              "requirements", "CITATION")


def roots():
    """(kind, path) of the stdlib and the site-packages directories, existing ones, deduplicated."""
    out, seen = [], set()
    paths = sysconfig.get_paths()
    cands = [("stdlib", paths.get("stdlib"))]
    cands += [("site", p) for p in [paths.get("purelib"), paths.get("platlib")] + list(site.getsitepackages())]
    for kind, p in cands:
        if p and os.path.isdir(p):
            rp = os.path.realpath(p)
            if rp not in seen:
                seen.add(rp)
                out.append((kind, rp))
    return out


def _wanted(name):
    if name.endswith(TEXT_EXT):
        return not name.upper().startswith(tuple(s.upper() for s in SKIP_NAMES))
    return name == "METADATA"  # *.dist-info/METADATA: package descriptions, mostly prose


def list_files():
    """Sorted list of (key, realpath, size); key = 'kind:relative/path'."""
    files, seen = [], set()
    for kind, root in roots():
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
            for name in sorted(filenames):
                if not _wanted(name):
                    continue
                path = os.path.join(dirpath, name)
                try:
                    real = os.path.realpath(path)
                    size = os.path.getsize(real)
                except OSError:
                    continue
                if real in seen or size < 256 or size > 256 * 1024:
                    continue
                seen.add(real)
                files.append((f"{kind}:{os.path.relpath(path, root)}", real, size))
    files.sort()
    return files


def _package(key):
    kind, rel = key.split(":", 1)
    top = rel.split(os.sep, 1)[0]
    top = top.split("-", 1)[0].removesuffix(".py").lower()  # numpy-2.4.dist-info -> numpy
    return f"{kind}:{top}"


def _clean(text):
    """None for text that looks generated or binary-ish rather than written by people."""
    lines = text.splitlines()
    if not lines:
        return None
    if sum(len(l) > 300 for l in lines) > 0.01 * len(lines):
        return None
    if text.count("\x00"):
        return None
    return text.strip() + "\n"


def select(seed, max_bytes, package_share=0.12, val_fraction=0.01):
    """Returns (train_texts, val_texts, info). Deterministic for a given installation and seed."""
    files = list_files()
    order = list(range(len(files)))
    random.Random(seed).shuffle(order)
    cap = max(int(max_bytes * package_share), 1)
    per_pkg, texts, keys, total = {}, [], [], 0
    for i in order:
        key, real, size = files[i]
        pkg = _package(key)
        if per_pkg.get(pkg, 0) + size > cap:
            continue
        try:
            with open(real, "r", encoding="utf-8") as f:
                text = _clean(f.read())
        except (UnicodeDecodeError, OSError):
            continue
        if text is None:
            continue
        per_pkg[pkg] = per_pkg.get(pkg, 0) + len(text)
        texts.append(text)
        keys.append(key)
        total += len(text)
        if total >= max_bytes:
            break
    n_val = max(1, int(len(texts) * val_fraction))
    top = sorted(per_pkg.items(), key=lambda kv: -kv[1])
    info = {
        "roots": [k for k, _ in roots()],
        "candidate_files": len(files),
        "files": len(texts),
        "val_files": n_val,
        "chars": total,
        "packages": len(per_pkg),
        "largest_packages_chars": dict(top[:15]),
    }
    return texts[n_val:], texts[:n_val], info
