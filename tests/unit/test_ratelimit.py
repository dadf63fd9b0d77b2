from chatnode.ratelimit import RateLimiter


def test_bucket_allows_the_burst_then_the_rate_and_says_when_to_retry() -> None:
    now = [0.0]
    limiter = RateLimiter(per_second=20, burst=50, clock=lambda: now[0])
    assert all(limiter.take("u") is None for _ in range(50))
    assert limiter.take("u") == 50  # one token takes 1/20 s
    assert limiter.take("other") is None  # per user
    now[0] += 0.05
    assert limiter.take("u") is None
    assert limiter.take("u") is not None
    now[0] += 100  # refills only up to the burst
    assert sum(limiter.take("u") is None for _ in range(60)) == 50


def test_rate_zero_turns_the_limit_off() -> None:
    limiter = RateLimiter(per_second=0, burst=1)
    assert all(limiter.take("u") is None for _ in range(1000))
