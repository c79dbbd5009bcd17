"""``python -m edgepose.cli``: the same CLI as the ``edgepose`` script."""

from . import app

if __name__ == "__main__":
    app()
