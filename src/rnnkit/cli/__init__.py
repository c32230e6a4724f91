"""The ``rnnkit`` command: thin, it parses arguments and calls the library."""
