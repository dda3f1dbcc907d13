"""Agent use of several tools, as the SDK's tool-use-multiple example."""

import math

import engine as lms


def add(a: int, b: int) -> int:
    """Given two numbers a and b, returns the sum of them."""
    return a + b


def is_prime(n: int) -> bool:
    """Given a number n, returns True if n is a prime number."""
    if n < 2:
        return False
    return all(n % d for d in range(2, math.isqrt(n) + 1))


model = lms.llm("qwen2.5-7b-instruct-1m")
model.act(
    "Is the result of 12345 + 45668 a prime? Think step by step.",
    [add, is_prime],
    on_message=print,
)
