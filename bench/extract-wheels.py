#!/usr/bin/env python3
"""Extracts wheels into one folder, merging folders that several wheels write into (as `pip install --target`
does not: the nvidia-cutlass-dsl wheels all write `nvidia_cutlass_dsl/`), and prints the PYTHONPATH to use: the
folder and, when present, `nvidia_cutlass_dsl/python_packages` and `nvidia_cutlass_dsl/dsl_packages` (the
wheels' .pth files, which name them, are not read from a PYTHONPATH folder).

Usage: export PYTHONPATH=$(python3 bench/extract-wheels.py DEST WHEEL...):$PYTHONPATH
"""
import os
import sys
import zipfile


def main(argv):
    if len(argv) < 3:
        raise SystemExit("usage: extract-wheels.py DEST WHEEL...")
    destination, wheels = argv[1], argv[2:]
    os.makedirs(destination, exist_ok=True)
    for wheel in wheels:
        try:
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(destination)
        except (OSError, zipfile.BadZipFile) as error:
            raise SystemExit(f"extract-wheels.py: {wheel}: {error}")
    paths = [destination] + [os.path.join(destination, "nvidia_cutlass_dsl", name)
                             for name in ("python_packages", "dsl_packages")
                             if os.path.isdir(os.path.join(destination, "nvidia_cutlass_dsl", name))]
    print(":".join(os.path.abspath(p) for p in paths))


if __name__ == "__main__":
    main(sys.argv)
