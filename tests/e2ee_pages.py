"""What an end-to-end encrypted call page shows, read by the browser tests in Chromium and
Firefox alike (tests/test_browser_e2ee*.py): the encryption line and code, and per tile the
transform that opened its frames (docs/e2ee.md)."""

from __future__ import annotations

import asyncio
import re

from tests.call_pages import tiles

CODE = re.compile(r"^\d{5} \d{5} \d{5} \d{5}$")


async def encryption(page) -> dict:
    return await page.evaluate("() => window.smartpracticeCall.encryption()")


async def receiving(page) -> dict[str, dict]:
    """Per tile (by name) and kind: the transform of the track shown there (key id of the
    latest frame, whose key opened it, frames opened, frames that failed), with the tile's
    participant id as `peer`."""
    state, shown = await encryption(page), await tiles(page)
    by_track = {t["track"]: t for t in state["transforms"] if t["side"] == "receive"}
    return {tile["name"]: {kind: by_track.get(tile[kind]["track"]) and {**by_track[tile[kind]["track"]], "peer": tile["peer"]}
                           if tile[kind] else None for kind in ("video", "audio")}
            for tile in shown["tiles"]}


# What the encryption line shows, read the same way in Chromium and in Firefox.
SHOWN = """() => ({mode: document.querySelector("#e2ee").dataset.mode,
                  line: document.querySelector("#e2ee-mode").textContent,
                  code: document.querySelector("#e2ee-code").textContent})"""


async def assert_encrypted_with_one_code(pages: dict[str, object], within: float = 15.0) -> str:
    """Every page says the call is end-to-end encrypted and shows the same code."""
    codes = {}
    for name, page in pages.items():
        shown: dict = {}
        async with asyncio.timeout(within):
            while not (shown.get("mode") == "e2ee" and CODE.match(shown.get("code", ""))):
                await asyncio.sleep(0.2)
                shown = await page.evaluate(SHOWN)
        assert shown["line"] == "Ende-zu-Ende-verschlüsselt", (name, shown)
        codes[name] = shown["code"]
    assert len(set(codes.values())) == 1, codes
    return next(iter(codes.values()))


async def assert_every_tile_decrypts(pages: dict[str, object], *, start_failures: int | None = None,
                                     within: float = 10.0) -> dict[str, dict]:
    """Each tile's tracks come through a transform that opened frames of that very sender,
    within `within` seconds: a tile whose track was just replaced (the relay's sources
    renewed) shows a fresh transform that has opened nothing yet.
    `start_failures`: at most this many frames of each track failed to open (frames under
    a key the receiver never got, as in the first second of a call before)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            return await _every_tile_decrypts(pages, start_failures)
        except AssertionError as failed:
            if asyncio.get_running_loop().time() > deadline:
                raise
            print("not yet:", failed)
            await asyncio.sleep(0.5)


async def _every_tile_decrypts(pages: dict[str, object], start_failures: int | None) -> dict[str, dict]:
    seen = {}
    for viewer, page in pages.items():
        seen[viewer] = await receiving(page)
        sending = {name: (await encryption(other))["sendingKeyId"] for name, other in pages.items()}
        for sender, kinds in seen[viewer].items():
            for kind, transform in kinds.items():
                # A transform attached a moment ago has no report from the worker yet.
                assert transform and transform.get("frames", 0) > 0, (
                    f"{viewer}'s page: {sender}'s {kind} opened nothing: {transform}")
                # Opened with that very sender's key, and only frames of that sender are let in.
                assert transform["from"] == transform["expected"] == transform["peer"], (viewer, sender, kind, transform)
                if sender in sending:
                    assert transform["keyId"] is not None, (viewer, sender, kind)
                if start_failures is not None:
                    assert transform["failed"] <= start_failures, (
                        f"{viewer}'s page: {transform['failed']} of {sender}'s {kind} frames did not open")
    print({viewer: {sender: {kind: (t["frames"], t["failed"]) for kind, t in kinds.items()}
                    for sender, kinds in shown.items()} for viewer, shown in seen.items()})
    return seen


# Frames of a track that may fail to open at the start of a call: a frame can overtake its
# key (the key travels over signalling, the frame over media). Before frames waited a second
# under a first key nobody else held, 20-60 failed per track.
START_FAILURES = 5


# Per tile (by name): the mean brightness (0-255) of its video as shown now, sampled small.
BRIGHTNESS = """() => Object.fromEntries([...document.querySelectorAll(".tile[data-peer]")].map((figure) => {
  const video = figure.querySelector("video"), canvas = document.createElement("canvas");
  canvas.width = 32; canvas.height = 24;
  const context = canvas.getContext("2d", {willReadFrequently: true});
  if (!video.videoWidth) return [figure.querySelector(".name").textContent, 0];
  context.drawImage(video, 0, 0, canvas.width, canvas.height);
  const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let sum = 0;
  for (let i = 0; i < data.length; i += 4) sum += (data[i] + data[i + 1] + data[i + 2]) / 3;
  return [figure.querySelector(".name").textContent, sum / (data.length / 4)];
}))"""


async def assert_no_tile_black(page, within: float = 15.0) -> dict[str, float]:
    """Every tile of the page shows a picture (the browsers' synthetic cameras are bright),
    not a black or empty video element."""
    shown: dict[str, float] = {}
    try:
        async with asyncio.timeout(within):
            while not shown or min(shown.values()) <= 16:
                shown = await page.evaluate(BRIGHTNESS)
                await asyncio.sleep(0.3)
    except TimeoutError:
        raise AssertionError(f"a tile stays black (mean brightness per tile): {shown}") from None
    return shown


async def assert_decodes_from_the_key_on(page, within: float = 1.0) -> dict[str, dict]:
    """A newcomer's page: each tile's first video frame was decoded within `within` seconds
    of the later of the first key from that sender coming and the first frame coming (the
    worker's clock and the page's are the same wall clock). Before the senders waited for
    acknowledgements, a newcomer dropped a second of frames under keys it never gets."""
    found = {}
    state, shown = await encryption(page), await tiles(page)
    by_track = {t["track"]: t for t in state["transforms"] if t["side"] == "receive"}
    for tile in shown["tiles"]:
        video = tile["video"]
        transform = by_track.get(video["track"]) if video else None
        assert transform and transform["keyAt"] and transform["firstAt"] and video["firstAt"], (tile, transform)
        start = max(transform["keyAt"], transform["firstAt"])
        found[tile["name"]] = {
            "decoded_after_key_s": (video["firstAt"] - transform["keyAt"]) / 1000,
            "decoded_after_start_s": (video["firstAt"] - start) / 1000,
            "first_frame_after_key_s": (transform["firstAt"] - transform["keyAt"]) / 1000,
            "failed": transform["failed"], "keyframe_requests": transform["asked"],
        }
    print("newcomer's first frames:", found)
    late = {name: f for name, f in found.items() if f["decoded_after_start_s"] > within}
    assert not late, f"first decoded frame more than {within} s after its key and first frame came: {late}"
    return found
