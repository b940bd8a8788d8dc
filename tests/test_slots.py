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


def test_without_a_cached_prefix_a_slot_next_to_running_ones_is_taken():
    # Running sequences in neighbouring slots decode in one pass over the weights (llama.cpp runs
    # the model once per run of consecutive sequence ids), so a new one fills a gap if it can.
    pool = SlotPool(6)
    for _ in range(6):
        take(pool, [9])
    for slot in (0, 5, 1, 4):
        pool.release(slot, [])
    running = {2: [7], 3: [7]}
    assert take(pool, [1], running)[0] == 1  # 0 is the least recently used, but 1 touches slot 2
    running[1] = [1]
    assert take(pool, [1], running)[0] == 0  # 0 and 4 touch a running slot each: the older one
    running[0] = [1]
    assert take(pool, [1], running)[0] == 4
