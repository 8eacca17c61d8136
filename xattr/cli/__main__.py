"""``python -m xattr.cli ...`` is the ``xattr`` command."""

import sys

from xattr.cli import main

sys.exit(main())
