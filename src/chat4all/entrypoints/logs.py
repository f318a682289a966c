from __future__ import annotations

import logging
import sys


def configure_logging(level: str = "INFO") -> None:
    """Connector lines go to stdout exactly as `INFO: Mensagem ...`; everything else is timestamped on stderr."""
    root = logging.getLogger()
    root.handlers.clear()
    general = logging.StreamHandler(sys.stderr)
    general.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(general)
    root.setLevel(level)

    connectors = logging.getLogger("chat4all.connectors")
    connectors.handlers.clear()
    plain = logging.StreamHandler(sys.stdout)
    plain.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    connectors.addHandler(plain)
    connectors.setLevel(logging.INFO)
    connectors.propagate = False
    for noisy in ("aiokafka", "faust", "mode", "botocore", "urllib3", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
