"""Task families: constrained program spaces with their own seed tasks, held-out set and difficulty knob."""

from .arithmetic import ArithmeticFamily
from .base import TaskFamily


__all__ = ["ArithmeticFamily", "TaskFamily"]
