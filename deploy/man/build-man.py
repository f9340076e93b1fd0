#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# A man page from its scdoc source: lines "%include FILE" (relative to the
# source) are replaced by that file, then scdoc renders it.
#   build-man.py SCDOC IN.scd OUT     render to OUT
#   build-man.py --expand IN.scd      the expanded source on stdout (tests)
import os
import subprocess
import sys


def expand(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("%include "):
                name = line.split(None, 1)[1].strip()
                out.append(expand(os.path.join(os.path.dirname(path), name)))
            else:
                out.append(line)
    return "".join(out)


def main():
    if sys.argv[1] == "--expand":
        sys.stdout.write(expand(sys.argv[2]))
        return 0
    scdoc, src, dst = sys.argv[1:4]
    text = expand(src)
    with open(dst, "wb") as f:
        return subprocess.run([scdoc], input=text.encode("utf-8"), stdout=f).returncode


if __name__ == "__main__":
    sys.exit(main())
