#!/usr/bin/env python3
"""Every public header is installed, and no installed header includes one
that is not.

include/meson.build lists the installed headers by hand (ksafe_headers).
A header added to include/ksafe/ but not to that list builds and passes
every in-tree test, yet a user's program that includes it, or includes a
header that includes it, fails to compile against the installed library.

    check-installed.py <source root>
"""
import pathlib
import re
import sys


def main():
    root = pathlib.Path(sys.argv[1])
    listing = (root / "include" / "meson.build").read_text()
    m = re.search(r"ksafe_headers\s*=\s*files\((.*?)\)", listing, re.S)
    if not m:
        print("include/meson.build: no ksafe_headers = files(...) list")
        return 1
    installed = set(re.findall(r"'ksafe/([^']+\.h)'", m.group(1)))
    present = {p.name for p in (root / "include" / "ksafe").glob("*.h")}
    bad = 0
    for name in sorted(present - installed):
        print(f"include/ksafe/{name} is not in ksafe_headers "
              "(include/meson.build): it would not be installed")
        bad += 1
    for name in sorted(installed - present):
        print(f"ksafe_headers lists ksafe/{name}, which does not exist")
        bad += 1
    for name in sorted(installed & present):
        text = (root / "include" / "ksafe" / name).read_text()
        # "stats.h" beside it, or <ksafe/stats.h>
        for inc in re.findall(r'#\s*include\s*(?:"([^"/]+\.h)"|<ksafe/([^>]+)>)',
                              text):
            inc = inc[0] or inc[1]
            if inc not in installed:
                print(f"installed ksafe/{name} includes ksafe/{inc}, "
                      "which is not installed")
                bad += 1
    if not bad:
        print(f"{len(installed)} headers, all installed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
