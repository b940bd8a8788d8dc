from engine.slots import SlotPool, common_prefix_len


def test_common_prefix_len():
    assert common_prefix_len([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix_len([], [1]) == 0


def take(pool: SlotPool, prompt: list[int], live: dict | None = None) -> tuple[int, int, int]:
    return pool.acquire(prompt, live or {})


def test_takes_the_free_slot_with_the_longest_shared_prefix():
    pool = SlotPool(3)
    a, *_ = take(pool, [9])
    b, *_ = take(pool, [9])
    pool.release(a, [1, 2, 3, 4])
    pool.release(b, [1, 2, 7])
    assert take(pool, [1, 2, 3, 4, 5, 6]) == (a, 4, a)


def test_always_leaves_one_prompt_token_to_compute():
    pool = SlotPool(1)
    slot, *_ = take(pool, [5])
    pool.release(slot, [1, 2, 3])
    assert take(pool, [1, 2, 3]) == (slot, 2, slot)


def test_without_a_match_the_least_recently_used_slot_is_taken():
    pool = SlotPool(2)
    first, *_ = take(pool, [1])
    second, *_ = take(pool, [1])
    pool.release(first, [1])
    pool.release(second, [2])
    assert take(pool, [3]) == (first, 0, -1)
    assert pool.cached_tokens == 1


def test_a_prefix_held_by_a_running_slot_is_shared_into_a_free_one():
    pool = SlotPool(2)
    running, *_ = take(pool, [1])
    slot, reuse, source = take(pool, [7, 7, 7, 8], live={running: [7, 7, 7, 9, 9]})
    assert (slot != running, reuse, source) == (True, 3, running)


def test_a_disabled_cache_never_reuses():
    pool = SlotPool(1, enabled=False)
    slot, *_ = take(pool, [1])
    pool.release(slot, [1, 2, 3])
    assert take(pool, [1, 2, 3, 4]) == (slot, 0, -1) and pool.cached_tokens == 0
