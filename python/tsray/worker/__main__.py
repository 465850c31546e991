"""``python -m tsray.worker``: run a Python worker for the node named in the environment."""

from tsray.worker.runtime import main

raise SystemExit(main())
