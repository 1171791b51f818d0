"""What the service logs, read from its own logger: Litestar's logging set-up replaces
the root handlers, caplog's among them."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def mentioning(self, text: str) -> str:
        """Every record whose message holds `text`, with its traceback, as one text."""
        formatter = logging.Formatter()
        return "\n".join(formatter.format(r) for r in self.records if text in r.getMessage())


@contextmanager
def service_log() -> Iterator[Records]:
    records = Records()
    logger = logging.getLogger("serving")
    logger.addHandler(records)
    try:
        yield records
    finally:
        logger.removeHandler(records)
