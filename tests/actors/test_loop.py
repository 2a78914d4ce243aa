"""The loop every actor runs its step in (actors/loop.py), on a clock of its own: news wakes it
early, yet it rests as long as its last step took, so a storm of news costs at most half a core."""
import pytest

from gantry.actors import loop


class Done(BaseException):
    pass


class FakeTime:
    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now

    def sleep(self, s):
        self.now += s


class Wakeup:
    """Set all the time (a storm of news), or never: then a wait runs to its end."""
    def __init__(self, fake, storm):
        self.fake, self.storm = fake, storm

    def clear(self):
        pass

    def wait(self, s):
        if not self.storm:
            self.fake.now += s
        return self.storm


def steps_at(monkeypatch, took: float, storm: bool, period: float = 0.5) -> list[float]:
    fake = FakeTime()
    monkeypatch.setattr(loop, "time", fake)
    began = []

    def step():
        began.append(fake.now)
        fake.now += took
        if len(began) == 5:
            raise Done

    with pytest.raises(Done):
        loop.run_forever(step, lambda: period, Wakeup(fake, storm))
    return [round(b - a, 6) for a, b in zip(began, began[1:])]


def test_news_wakes_the_loop_after_a_rest_as_long_as_its_step(monkeypatch):
    assert steps_at(monkeypatch, took=0.01, storm=True) == [round(0.01 + loop.MIN_REST_S, 6)] * 4
    assert steps_at(monkeypatch, took=0.3, storm=True) == [0.6] * 4   # half its time at rest
    assert steps_at(monkeypatch, took=0.01, storm=False) == [0.51] * 4   # no news: every period
    assert steps_at(monkeypatch, took=0.7, storm=False) == [1.4] * 4


def test_a_failing_step_is_retried(monkeypatch):
    fake = FakeTime()
    monkeypatch.setattr(loop, "time", fake)
    calls = []

    def step():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("redis restarting")
        raise Done

    with pytest.raises(Done):
        loop.run_forever(step, lambda: 0.5, Wakeup(fake, storm=False))
    assert len(calls) == 3



def test_each_message_wakes_the_loop_and_a_lost_subscription_is_made_again():
    import threading
    import time
    made, woken = [], threading.Event()

    class Subscription:
        def listen(self):
            yield {"data": "b1"}
            if len(made) >= 3:
                threading.Event().wait()   # a third one lasts: the thread idles from here
            raise ConnectionError("Redis restarting")

    def subscribe():
        made.append(1)
        return Subscription()
    loop.wake_on_messages(subscribe, woken, "test", retry_s=0.01)
    assert woken.wait(10)
    deadline = time.monotonic() + 10
    while len(made) < 3:
        assert time.monotonic() < deadline, made
        time.sleep(0.01)
