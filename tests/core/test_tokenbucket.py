from gantry.tokenbucket import TokenBucket


class FakeTime:
    def __init__(self):
        self.t = 0.0

    def clock(self):
        return self.t

    def sleep(self, s):
        self.t += s


def test_rate_is_held_over_time():
    ft = FakeTime()
    b = TokenBucket(rate=1000, burst=1000, clock=ft.clock, sleep=ft.sleep)
    for _ in range(10):
        b.take(500)
    # 5000 bytes at 1000 B/s with a 1000 B burst: 4 s
    assert abs(ft.t - 4.0) < 1e-9


def test_burst_passes_at_once_then_waits():
    ft = FakeTime()
    b = TokenBucket(rate=100, burst=300, clock=ft.clock, sleep=ft.sleep)
    assert b.reserve(300) == 0
    assert abs(b.reserve(50) - 0.5) < 1e-9


def test_a_request_larger_than_the_burst_waits_in_proportion():
    ft = FakeTime()
    b = TokenBucket(rate=10, burst=10, clock=ft.clock, sleep=ft.sleep)
    b.take(110)
    assert abs(ft.t - 10.0) < 1e-9


def test_unlimited():
    ft = FakeTime()
    b = TokenBucket(rate=0, clock=ft.clock, sleep=ft.sleep)
    b.take(10 ** 12)
    assert ft.t == 0
