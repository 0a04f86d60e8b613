"""An MDA for fetchmail: writes standard input to DIR/N.eml."""
import os
import sys

d = sys.argv[1]
n = len([x for x in os.listdir(d) if x.endswith(".eml")]) + 1
with open(os.path.join(d, f"{n}.eml"), "wb") as f:
    f.write(sys.stdin.buffer.read())
