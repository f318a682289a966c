class DuplicateKey(Exception):
    """A repository refused a row whose unique key already exists; the unit of work must be discarded."""


class DuplicateMessage(DuplicateKey):
    """A message with this id is already stored."""
