"""``python -m ftlab.models build-tiny [FOLDER]``: pre-train ftlab's tiny model from its recipe (``ftlab.models.tiny``)
into FOLDER, by default the copy ftlab ships (``ftlab/models/tiny_pretrained``: run it in a source checkout, then
commit the folder; tests/test_tiny_shipped.py checks that a rebuild reproduces it)."""

import sys
from pathlib import Path

from ftlab.models import tiny


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "build-tiny" or len(argv) > 2:
        print(__doc__, file=sys.stderr)
        return 2
    target = tiny.rebuild(Path(argv[1]) if len(argv) == 2 else tiny.SHIPPED)
    print(f"saved in {target}: {', '.join(sorted(p.name for p in target.iterdir()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
