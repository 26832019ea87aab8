"""`python -m hangdoctor`: the same as the `hangdoctor` console script."""

from hangdoctor.cli.main import entry

if __name__ == "__main__":
    entry()
