"""The consumer-group part of the store contract: claims, commits, leases, positions and seeks."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest

from tests.store.contract import LONG, SHORT, StoreContract
from triggerfish.errors import InvalidInputError, InvalidNameError
from triggerfish.store import LogClaim, Store


def offsets(claim: LogClaim | None) -> list[int]:
    assert claim is not None
    return [r.offset for r in claim.records]


class GroupContract(StoreContract):
    async def test_claims_of_a_group_are_disjoint_ranges_in_order(self, store: Store) -> None:
        await store.log.append_many("s", [b"%d" % i for i in range(1, 11)])
        first = await store.log.claim("s", "g", limit=4, lease=LONG)
        second = await store.log.claim("s", "g", limit=4, lease=LONG)
        third = await store.log.claim("s", "g", limit=4, lease=LONG)
        assert (offsets(first), offsets(second), offsets(third)) == ([1, 2, 3, 4], [5, 6, 7, 8], [9, 10])
        assert first is not None
        assert second is not None
        assert third is not None
        assert (first.stream, first.group, first.first, first.last) == ("s", "g", 1, 4)
        assert [r.data for r in first.records] == [b"1", b"2", b"3", b"4"]
        assert first.expires_at > time.time() - 60
        assert await store.log.claim("s", "g", lease=LONG) is None
        # The position moves only over contiguous committed ranges.
        assert await store.log.commit(second)
        assert await store.log.position("s", "g") == 0
        assert await store.log.commit(first)
        assert await store.log.position("s", "g") == 8
        assert await store.log.commit(third)
        assert await store.log.position("s", "g") == 10
        assert await store.log.commit(third) is False  # once
        await store.log.append("s", b"11")
        assert offsets(await store.log.claim("s", "g", lease=LONG)) == [11]

    async def test_groups_are_independent_and_start_at_the_beginning(self, store: Store) -> None:
        await store.log.append_many("s", [b"a", b"b"])
        assert await store.log.claim("empty", "g") is None
        a = await store.log.claim("s", "rules", lease=LONG)
        assert a is not None
        await store.log.commit(a)
        assert offsets(await store.log.claim("s", "archive", lease=LONG)) == [1, 2]
        assert await store.log.groups("s") == ["archive", "rules"]
        assert await store.log.position("s", "rules") == 2
        assert await store.log.position("s", "archive") == 0
        assert await store.log.position("s", "never") == 0
        assert await store.log.groups("other") == []

    async def test_a_lapsed_claim_is_taken_again_whole_and_the_old_holder_loses_it(self, store: Store) -> None:
        await store.log.append_many("s", [b"a", b"b", b"c"])
        lost = await store.log.claim("s", "g", limit=2, lease=SHORT)
        assert lost is not None
        await self.advance(SHORT * 1.5)
        await store.log.append("s", b"d")
        again = await store.log.claim("s", "g", limit=1, lease=LONG)  # the whole range, whatever the limit
        assert again is not None
        assert (again.first, again.last, offsets(again)) == (1, 2, [1, 2])
        assert again.token != lost.token
        assert await store.log.commit(lost) is False
        assert await store.log.extend_claim(lost, LONG) is None
        assert await store.log.release_claim(lost) is False
        assert await store.log.commit(again)
        assert offsets(await store.log.claim("s", "g", lease=LONG)) == [3, 4]

    async def test_a_lapsed_claim_nobody_took_can_still_be_committed(self, store: Store) -> None:
        await store.log.append("s", b"a")
        claim = await store.log.claim("s", "g", lease=SHORT)
        assert claim is not None
        await self.advance(SHORT * 1.5)
        assert await store.log.commit(claim)
        assert await store.log.position("s", "g") == 1
        assert await store.log.claim("s", "g") is None

    async def test_extend_keeps_a_claim_and_release_gives_it_back(self, store: Store) -> None:
        await store.log.append_many("s", [b"a", b"b"])
        claim = await store.log.claim("s", "g", limit=1, lease=SHORT)
        assert claim is not None
        extended = await store.log.extend_claim(claim, LONG)
        assert extended is not None
        assert extended.expires_at > claim.expires_at
        assert (extended.first, extended.token, offsets(extended)) == (1, claim.token, [1])
        await self.advance(SHORT * 1.5)
        assert offsets(await store.log.claim("s", "g", lease=LONG)) == [2]  # not the extended one
        assert await store.log.release_claim(extended)
        assert await store.log.commit(extended) is False
        back = await store.log.claim("s", "g", lease=LONG)
        assert (offsets(back), back is not None and back.token != claim.token) == ([1], True)

    async def test_a_waiting_claim_gets_a_later_append_promptly(self, store: Store) -> None:
        claimer = asyncio.ensure_future(store.log.claim("s", "g", lease=LONG, wait=10.0))
        await asyncio.sleep(0.05)
        assert not claimer.done()
        started = time.monotonic()
        await store.log.append("s", b"fresh")
        claim = await asyncio.wait_for(claimer, 5)
        assert offsets(claim) == [1]
        assert time.monotonic() - started < 1.0
        assert await store.log.claim("s", "g", wait=SHORT) is None

    async def test_concurrent_consumers_of_a_group_share_the_stream_without_overlap(self, store: Store) -> None:
        await store.log.append_many("s", [b"%d" % i for i in range(60)])
        seen: list[int] = []

        async def consumer() -> None:
            while (claim := await store.log.claim("s", "g", limit=7, lease=LONG)) is not None:
                seen.extend(offsets(claim))
                assert await store.log.commit(claim)

        await asyncio.gather(*(consumer() for _ in range(6)))
        assert sorted(seen) == list(range(1, 61))
        assert await store.log.position("s", "g") == 60

    async def test_seek_resets_a_group(self, store: Store) -> None:
        await store.log.append_many("s", [b"a", b"b", b"c"])
        held = await store.log.claim("s", "g", limit=2, lease=LONG)
        assert held is not None
        await store.log.seek("s", "g", 0)
        assert await store.log.commit(held) is False  # claims held when it moved are gone
        assert offsets(await store.log.claim("s", "g", lease=LONG)) == [1, 2, 3]
        await store.log.seek("s", "g", 2)
        assert await store.log.position("s", "g") == 2
        assert offsets(await store.log.claim("s", "g", lease=LONG)) == [3]
        await store.log.seek("s", "g", await store.log.last_offset("s"))
        assert await store.log.claim("s", "g") is None
        await store.log.seek("s", "fresh", 3)
        assert await store.log.groups("s") == ["fresh", "g"]

    async def test_a_sole_reader_commits_what_it_read_with_advance(self, store: Store) -> None:
        await store.log.append_many("s", [b"a", b"b", b"c", b"d"])
        # A reader that owns the stream reads without claims and commits by moving the position itself.
        assert [r.offset for r in await store.log.read("s", after=0, limit=2)] == [1, 2]
        assert await store.log.advance("s", "g", expected=0, offset=2) is True
        assert await store.log.position("s", "g") == 2
        assert await store.log.advance("s", "g", expected=0, offset=3) is False  # someone else moved it: stale
        assert await store.log.position("s", "g") == 2
        assert await store.log.advance("s", "g", expected=2, offset=3) is True
        # A claim reaching into the range means another consumer reads the group: no advance over it.
        claim = await store.log.claim("s", "g", lease=LONG)
        assert offsets(claim) == [4]
        assert await store.log.advance("s", "g", expected=3, offset=4) is False
        assert claim is not None
        assert await store.log.commit(claim)
        assert await store.log.position("s", "g") == 4
        assert await store.log.claim("s", "g") is None  # a later claim starts past what was advanced over
        with pytest.raises(InvalidInputError, match="offset must be a whole number from 5"):
            await store.log.advance("s", "g", expected=4, offset=4)

    async def test_ranges_cover_trimmed_offsets(self, store: Store) -> None:
        await store.log.append_many("s", [b"x" * 10] * 4)
        lapsing = await store.log.claim("s", "old", limit=3, lease=SHORT)
        assert offsets(lapsing) == [1, 2, 3]
        await self.advance(SHORT * 1.5)
        assert await store.log.trim("s", max_bytes=20) == 2
        again = await store.log.claim("s", "old", lease=LONG)
        assert again is not None
        assert (again.first, again.last, offsets(again)) == (1, 3, [3])  # fewer records: two were trimmed
        # A new group's first range starts at 1 even though 1 and 2 are gone.
        fresh = await store.log.claim("s", "new", lease=LONG)
        assert fresh is not None
        assert (fresh.first, fresh.last, offsets(fresh)) == (1, 4, [3, 4])
        assert await store.log.commit(fresh)
        assert await store.log.position("s", "new") == 4

    @pytest.mark.parametrize(
        ("kwargs", "error", "words"),
        [
            ({"group": ""}, InvalidNameError, "group name"),
            ({"group": "a b"}, InvalidNameError, "group name"),
            ({"group": None}, InvalidNameError, "group name"),
            ({"limit": 0}, InvalidInputError, "limit"),
            ({"limit": 10_001}, InvalidInputError, "limit"),
            ({"limit": True}, InvalidInputError, "limit"),
            ({"lease": 0}, InvalidInputError, "lease"),
            ({"lease": float("nan")}, InvalidInputError, "lease"),
            ({"wait": -1}, InvalidInputError, "wait"),
        ],
    )
    async def test_bad_claim_arguments(self, store: Store, kwargs: dict[str, Any], error: type, words: str) -> None:
        await store.log.append("s", b"x")
        arguments: dict[str, Any] = {"group": "g"} | kwargs
        group = arguments.pop("group")
        with pytest.raises(error, match=words):
            await store.log.claim("s", group, **arguments)
        assert await store.log.groups("s") == []

    async def test_forged_and_foreign_claims_are_refused(self, store: Store) -> None:
        await store.log.append_many("s", [b"a", b"b"])
        claim = await store.log.claim("s", "g", lease=LONG)
        assert claim is not None
        for forged in (
            dataclasses.replace(claim, token="guess"),
            dataclasses.replace(claim, token=""),
            dataclasses.replace(claim, last=1),
            dataclasses.replace(claim, group="other"),
            dataclasses.replace(claim, stream="elsewhere"),
        ):
            assert await store.log.commit(forged) is False
            assert await store.log.extend_claim(forged, LONG) is None
            assert await store.log.release_claim(forged) is False
        with pytest.raises(InvalidInputError, match="LogClaim"):
            await store.log.commit({"stream": "s"})  # type: ignore[arg-type]
        with pytest.raises(InvalidNameError):
            await store.log.commit(dataclasses.replace(claim, stream="bad name"))
        with pytest.raises(InvalidInputError):
            await store.log.seek("s", "g", -1)
        with pytest.raises(InvalidInputError):
            await store.log.extend_claim(claim, 0)
        assert await store.log.commit(claim)
        assert await store.log.position("s", "g") == 2
