"""``python -m vaemi.book build|prepare|check-clean|kernel``: see :mod:`vaemi.book.build`."""
from vaemi.book.build import main

if __name__ == "__main__":
    main()
