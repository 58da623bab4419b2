"""Argument types for ``lobes.detect`` that refuse bad values in the parser,
with a message in the option's own unit, instead of an error from deep in
the model (a 0.001 s window is shorter than the encoder's first kernel)."""

import argparse
import math

# Shortest window scored: the SSL front-end's first convolution spans 400
# samples (25 ms at 16 kHz) and its frames are 20 ms apart; 0.1 s gives a
# head a handful of frames. Hops may be shorter, never 0.
MIN_WINDOW_S = 0.1
MIN_HOP_S = 0.01


def seconds(option, minimum):
    """An argparse type: a finite number of seconds, at least ``minimum``.

    Example
    -------
    >>> seconds("--window", 0.1)("2")
    2.0
    >>> seconds("--window", 0.1)("0.001")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: --window must be at least 0.1 seconds, got 0.001
    """

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} takes seconds, got {text!r}") from None
        if not math.isfinite(value) or value < minimum:
            raise argparse.ArgumentTypeError(f"{option} must be at least {minimum} seconds, got {text}")
        return value

    return parse


def finite_number(text):
    """An argparse type: a finite number (``nan`` and ``inf`` decide nothing).

    Example
    -------
    >>> finite_number("-0.5")
    -0.5
    >>> finite_number("nan")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected a finite number, got 'nan'
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _int_at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
        return value

    return parse


positive_int = _int_at_least(1)
non_negative_int = _int_at_least(0)
