"""Shipped to the workers as the job's working directory; `emoji` comes from the job's pip environment."""
import os

import emoji


def emojize(text):
    return f"{os.environ.get('GREETING', '')} {emoji.emojize(text)}".strip()


def where():
    """The worker's cwd (the unpacked working directory) and where emoji was imported from."""
    return [os.getcwd(), emoji.__file__]
