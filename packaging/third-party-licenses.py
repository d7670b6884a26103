#!/usr/bin/env python3
"""Writes THIRD-PARTY-LICENSES.txt for the crates linked into `xray` for one target.

usage: third-party-licenses.py TARGET OUTPUT

Which crates: `cargo tree -e normal,no-proc-macro --target TARGET`, i.e. the real
feature resolution for that platform, without dev- and build-dependencies and without
proc-macros (they run in the compiler and leave no code in the binary).
Which texts: every license/notice file the crate ships in its source directory
(~/.cargo/registry/src/...); for a crate that ships none, the standard text of each
license in its SPDX expression, from packaging/licenses/<SPDX-ID>.txt; then the
notices of the Rust standard library and musl (packaging/licenses/toolchain.txt). A license id
with neither is an error, so a new dependency cannot slip through without its text.
"""
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
LICENSE_FILE = re.compile(r"^(LICEN[CS]E|COPYING|COPYRIGHT|NOTICE|UNLICENSE)([-._].*)?$", re.I)


def cargo(*args):
    return subprocess.run(["cargo", *args], check=True, capture_output=True, text=True).stdout


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: third-party-licenses.py TARGET OUTPUT")
    target, output = sys.argv[1], sys.argv[2]
    tree = cargo("tree", "--locked", "--offline", "--target", target, "-e", "normal,no-proc-macro",
                 "--prefix", "none", "-f", "{p}")
    linked = set()
    for line in tree.splitlines():
        m = re.match(r"^(\S+) v(\S+)(.*)$", line.strip())
        if m and not m.group(3).strip().startswith("(/"):  # "(/path)": our own crate
            linked.add((m.group(1), m.group(2)))

    meta = json.loads(cargo("metadata", "--locked", "--offline", "--format-version", "1",
                            "--filter-platform", target))
    pkgs = {(p["name"], p["version"]): p for p in meta["packages"]}
    missing = sorted(f"{n} {v}" for n, v in linked if (n, v) not in pkgs)
    if missing:
        sys.exit(f"third-party-licenses: not in cargo metadata: {missing}")

    errors, out, by_text = [], [], {}
    out.append("THIRD-PARTY SOFTWARE NOTICES AND INFORMATION\n\n"
               "The xray binary is built from xray-relay (Apache-2.0, see LICENSE) and the\n"
               f"following {len(linked)} Rust crates, statically linked. Each crate's license\n"
               "terms follow, as shipped in the crate or, where it ships none, the standard\n"
               "text of the license it declares.\n")
    out.append("\n".join(f"  {n} {v}  ({pkgs[(n, v)].get('license') or 'see text'})"
                         for n, v in sorted(linked)) + "\n")
    for n, v in sorted(linked):
        p = pkgs[(n, v)]
        crate_dir = os.path.dirname(p["manifest_path"])
        files = sorted(f for f in os.listdir(crate_dir)
                       if LICENSE_FILE.match(f) and os.path.isfile(os.path.join(crate_dir, f)))
        if p.get("license_file"):
            lf = os.path.normpath(os.path.join(crate_dir, p["license_file"]))
            rel = os.path.relpath(lf, crate_dir)
            if os.path.isfile(lf) and rel not in files:
                files.append(rel)
        texts = []
        for f in files:
            with open(os.path.join(crate_dir, f), encoding="utf-8", errors="replace") as fh:
                texts.append((f, fh.read().strip()))
        if not texts:
            expr = p.get("license") or ""
            ids = sorted(set(re.findall(r"[A-Za-z0-9.+-]+", expr)) - {"OR", "AND", "WITH"})
            if not ids:
                errors.append(f"{n} {v}: no license file and no license expression")
            for i in ids:
                std = os.path.join(HERE, "licenses", f"{i.rstrip('+')}.txt")
                if os.path.isfile(std):
                    with open(std, encoding="utf-8") as fh:
                        texts.append((f"standard text of {i} (the crate ships no license file)",
                                      fh.read().strip()))
                else:
                    errors.append(f"{n} {v}: no license file in the crate and no {std}")
        for name, text in texts:
            by_text.setdefault(text, []).append(f"{n} {v} ({name})")
    # Identical texts (the Apache-2.0 text, mostly) are printed once, after the list
    # of every crate and file that carries it, so each crate's terms are all there.
    for text, users in by_text.items():
        out.append("=" * 79 + "\nThe following text is the license of, or a notice from:\n"
                   + "".join(f"  {u}\n" for u in users) + "-" * 79 + f"\n\n{text}\n")
    with open(os.path.join(HERE, "licenses", "toolchain.txt"), encoding="utf-8") as fh:
        out.append("=" * 79 + "\n" + fh.read())
    if errors:
        sys.exit("third-party-licenses: " + "\n  ".join(["missing license texts:", *errors]))
    with open(output, "w", encoding="utf-8") as fh:
        fh.write("\n".join(out))
    print(f"third-party-licenses: {output}: {len(linked)} crates")


if __name__ == "__main__":
    main()
