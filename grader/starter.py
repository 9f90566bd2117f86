"""``python -m grader.starter``: write starter/ from solutions/ (the documented command; the code
lives in grader.builders.starter)."""
from .builders.starter import main

if __name__ == "__main__":
    main()
