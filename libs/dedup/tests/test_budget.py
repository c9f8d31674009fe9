import threading
import time

import pytest

from dedup.budget import ByteBudget, OverBudgetError


def test_holds_and_gives_back() -> None:
    budget = ByteBudget(100)
    with budget.hold(60):
        assert budget.in_use == 60
    assert budget.in_use == 0


def test_more_than_the_whole_budget_is_refused_at_once() -> None:
    budget = ByteBudget(100)
    with (
        pytest.raises(OverBudgetError, match="more than the whole budget of 100"),
        budget.hold(101),
    ):
        pass


def test_a_holder_waits_until_there_is_room() -> None:
    budget = ByteBudget(100)
    order: list[str] = []
    first = threading.Event()

    def second() -> None:
        with budget.hold(60):
            order.append("second")

    with budget.hold(60):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.05)
        assert budget.waiting == 1  # 60 + 60 > 100: it waits
        order.append("first")
        first.set()
    thread.join(timeout=5)
    assert order == ["first", "second"]
    assert budget.in_use == 0


def test_first_come_first_served() -> None:
    budget = ByteBudget(100)
    order: list[str] = []
    release = threading.Event()

    def take(name: str, n: int) -> None:
        with budget.hold(n):
            order.append(name)

    with budget.hold(50):
        big = threading.Thread(target=take, args=("big", 100))
        big.start()
        time.sleep(0.05)
        small = threading.Thread(target=take, args=("small", 10))
        small.start()
        time.sleep(0.05)
        # 10 bytes would fit now, but the big request came first and is not overtaken.
        assert order == []
        release.set()
    big.join(timeout=5)
    small.join(timeout=5)
    assert order == ["big", "small"]


def test_the_budget_is_given_back_when_the_holder_raises() -> None:
    budget = ByteBudget(10)
    with pytest.raises(RuntimeError), budget.hold(10):
        raise RuntimeError
    assert budget.in_use == 0
