"""(being written)"""

CELLS: tuple = ()
