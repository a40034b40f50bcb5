"""What a call page shows, read by the browser tests in Chromium (Playwright) and Firefox
(tests/firefox_pages.py) alike: each tile's decoded video frames and received audio bytes,
the first frame's delay, and the steps into a call."""

from __future__ import annotations

import asyncio

from tests.helpers import logged_in

# What a page shows of each other participant: per tile, the video track in it and the
# frames its connection decoded for that track, the audio track and its bytes received
# (inbound-rtp stats, matched by track id), and how long after its connection's answer
# the track's first frame was decoded (FIRST_FRAMES). Also the candidate pair each
# connection sends on (ports, addresses, candidate types) and the page's own candidates:
# a remote end that is another page's host candidate is a direct path (assert_direct),
# one at the relay is relayed (assert_relayed). A connection whose stats have not come
# within 5 s is counted in `stalled` and shows nothing new this time: a CI run saw a
# Firefox page's getStats() not answer for a minute while its call went on.
TILES = """async () => {
  const inbound = new Map(), pairs = [], candidates = [];
  let stalled = 0;
  for (const pc of window.smartpracticeCall.connections()) {
    const stats = await Promise.race([pc.getStats(), new Promise((resolve) => setTimeout(resolve, 5000))]);
    if (!stats) { stalled += 1; continue; }
    const selected = [];
    stats.forEach((s) => {
      if (s.type === "inbound-rtp" && s.trackIdentifier) inbound.set(s.trackIdentifier, s);
      if (s.type === "transport" && s.selectedCandidatePairId) selected.push(stats.get(s.selectedCandidatePairId));
      if (s.type === "local-candidate") candidates.push({address: s.address, port: s.port, type: s.candidateType});
    });
    // Firefox has no transport stats; its pair in use says so itself.
    if (!selected.length) stats.forEach((s) => { if (s.type === "candidate-pair" && s.selected) selected.push(s); });
    for (const pair of selected) {
      const local = stats.get(pair.localCandidateId), remote = stats.get(pair.remoteCandidateId);
      pairs.push({local: local.port, remote: remote.port, localAddress: local.address, localType: local.candidateType,
                  remoteAddress: remote.address, remoteType: remote.candidateType});
    }
  }
  const firstFrames = new Map((window.smartpracticeFirstFrames || []).map((f) => [f.track, f]));
  const tiles = [...document.querySelectorAll(".tile[data-peer]")].map((figure) => {
    const stream = figure.querySelector("video").srcObject;
    const live = (kind) => (stream ? stream.getTracks() : []).find((t) => t.kind === kind && t.readyState === "live");
    const video = live("video"), audio = live("audio");
    const videoStats = video && inbound.get(video.id), audioStats = audio && inbound.get(audio.id);
    return {
      peer: figure.dataset.peer, name: figure.querySelector(".name").textContent,
      video: video ? {track: video.id, count: videoStats ? videoStats.framesDecoded || 0 : 0,
                      first: firstFrames.get(video.id)?.seconds, firstAt: firstFrames.get(video.id)?.at} : null,
      audio: audio ? {track: audio.id, count: audioStats ? audioStats.bytesReceived || 0 : 0} : null,
    };
  });
  return {tiles, pairs, candidates, stalled};
}"""

# Added to every call page before its scripts run: for each connection that gets an answer,
# the seconds from that answer to the first decoded frame of each video track it receives,
# and that frame's wall-clock time (`at`, Date.now(), comparable with the e2ee worker's).
FIRST_FRAMES = """(() => {
  if (window.smartpracticeFirstFrames) return;
  const found = window.smartpracticeFirstFrames = [];
  const apply = RTCPeerConnection.prototype.setRemoteDescription;
  RTCPeerConnection.prototype.setRemoteDescription = async function (description, ...rest) {
    const result = await apply.call(this, description, ...rest);
    if (description && description.type === "answer" && !this.firstFramesWatched) {
      this.firstFramesWatched = true;
      const pc = this, since = performance.now(), seen = new Set();
      const poll = async () => {
        const videos = pc.getReceivers().filter((r) => r.track.kind === "video").length;
        if (pc.connectionState === "closed" || seen.size >= videos || performance.now() - since > 30000) return;
        (await pc.getStats()).forEach((s) => {
          if (s.type === "inbound-rtp" && s.kind === "video" && s.framesDecoded > 0 && !seen.has(s.trackIdentifier)) {
            seen.add(s.trackIdentifier);
            found.push({track: s.trackIdentifier, seconds: (performance.now() - since) / 1000, at: Date.now()});
          }
        });
        setTimeout(poll, 50);
      };
      poll();
    }
    return result;
  };
})()"""

# How much must arrive, per tile, within the window: a few seconds of video and sound.
VIDEO_FRAMES = 30
AUDIO_BYTES = 4000


async def tiles(page) -> dict:
    return await page.evaluate(TILES)


def _progress(before: dict | None, now: dict | None) -> int:
    """What a track gained since `before`; a new track (a new connection) counts from zero."""
    if now is None:
        return 0
    if before is None or before["track"] != now["track"]:
        return now["count"]
    return now["count"] - before["count"]


async def until_every_tile_plays(pages: dict[str, object], *, also: tuple[str, ...] = (),
                                 without: dict[str, tuple[str, ...]] | None = None,
                                 within: float = 45.0, frames: int = VIDEO_FRAMES,
                                 audio_bytes: int = AUDIO_BYTES) -> dict[str, dict]:
    """On every page (by the name of the person at it), each other person's tile decodes
    video frames that keep coming and receives audio bytes that keep coming, until both grew
    by `frames` and `audio_bytes` (a few seconds' worth unless told). `also` names people in
    the call without a page here (aiortc participants); `without` names what a person does
    not send ("video", "audio"). Else the assertion names each page, person and track that
    fell short. Returns what each page showed at the end."""
    without = without or {}
    expected = [(viewer, other, kind) for viewer in pages for other in (*pages, *also) if other != viewer
                for kind in ("video", "audio") if kind not in without.get(other, ())]
    need = {"video": frames, "audio": audio_bytes}

    def by_name(shown: dict) -> dict[str, dict]:
        return {tile["name"]: tile for tile in shown["tiles"]}

    first = {viewer: by_name(await tiles(page)) for viewer, page in pages.items()}
    deadline = asyncio.get_running_loop().time() + within
    while True:
        shown = {viewer: await tiles(page) for viewer, page in pages.items()}
        now = {viewer: by_name(result) for viewer, result in shown.items()}
        short = []
        for viewer, other, kind in expected:
            tile = now[viewer].get(other)
            gained = _progress(first[viewer].get(other, {}).get(kind), tile and tile[kind])
            if gained < need[kind]:
                short.append((viewer, other, kind, tile, gained))
        if not short:
            return shown
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.5)
    lines = []
    for viewer, other, kind, tile, gained in short:
        unit = "video frames decoded" if kind == "video" else "audio bytes received"
        if tile is None:
            lines.append(f"{viewer}'s page has no tile for {other} (tiles: {sorted(now[viewer])})")
        elif tile[kind] is None:
            lines.append(f"{viewer}'s page: {other}'s tile has no {kind} track")
        else:
            lines.append(f"{viewer}'s page: {other}'s {kind} gained {gained} {unit} in {within:.0f} s "
                         f"(needs {need[kind]}; track {tile[kind]['track'][:8]})")
    lines += [f"{viewer}'s page: the stats of {result['stalled']} connection(s) did not come within 5 s"
              for viewer, result in shown.items() if result["stalled"]]
    raise AssertionError("\n".join(lines))


def first_frame_seconds(shown: dict[str, dict]) -> dict[tuple[str, str], float | None]:
    """Per (page, other person): seconds from the answer of the connection that carries the
    person's video to its first decoded frame."""
    return {(viewer, tile["name"]): tile["video"] and tile["video"]["first"]
            for viewer, result in shown.items() for tile in result["tiles"]}


def assert_first_frames_within(shown: dict[str, dict], seconds: float) -> list[float]:
    latencies = first_frame_seconds(shown)
    late = {key: value for key, value in latencies.items() if value is None or value >= seconds}
    assert not late, f"first frame not within {seconds} s of the answer: {late}"
    return sorted(latencies.values())


async def enter_call(page, base: str, consultation_id: int) -> None:
    await page.context.add_init_script(FIRST_FRAMES)  # (a second copy does nothing)
    await page.goto(f"{base}/c/{consultation_id}/call")
    await page.wait_for_selector("#call[data-state=ready]")
    await page.click("#join")
    await page.wait_for_selector("#call[data-state=in_call]")


async def both_in_call(browser, app, base: str, consultation_id: int):
    """Dr. Sommer and Erika log in and join the call: their pages and page errors."""
    doctor, doctor_errors = await logged_in(browser, base, "dr-sommer", app)
    patient, patient_errors = await logged_in(browser, base, "erika")
    await enter_call(doctor, base, consultation_id)
    await enter_call(patient, base, consultation_id)
    return doctor, patient, doctor_errors, patient_errors


DOCTOR, PATIENT, GUEST = "Dr Sommer", "Erika", "Gabi Gast"


def assert_direct(shown: dict[str, dict]) -> None:
    """Two pages, one connection each, each sending from a host candidate of its own to a
    host candidate of the other page: the browsers talk to each other, not through the
    server or TURN.

    The two pages' pairs need not be the same pair seen from both ends. A Chromium that
    controls ICE nominates its first working pair and then moves to one it ranks higher
    (IPv6 over IPv4 here), while Firefox, controlled, keeps sending on the nominated pair
    it ranks highest; it learned Chromium's IPv6 address from a check before the trickled
    candidate came (peer-reflexive, ranked lower), so it keeps the IPv4 pair. Each
    direction then uses another direct pair (docs/signalling.md, "Peer to peer")."""
    [(first, a), (second, b)] = shown.items()
    for viewer, result, other, other_result in ((first, a, second, b), (second, b, first, a)):
        assert len(result["pairs"]) == 1, f"{viewer}'s page has {len(result['pairs'])} connections: {result['pairs']}"
        [pair] = result["pairs"]
        hosts = {(c["address"], c["port"]) for c in other_result["candidates"] if c["type"] == "host"}
        assert pair["localType"] == "host" and (pair["remoteAddress"], pair["remote"]) in hosts, (
            f"{viewer}'s page does not send straight to {other}'s browser: {pair}; "
            f"{other}'s host candidates: {sorted(hosts)}")


def assert_relayed(shown: dict[str, dict]) -> None:
    """Two connections on each page (sending, receiving), both to the relay, none to
    another browser."""
    browser_ports = {pair["local"] for result in shown.values() for pair in result["pairs"]}
    for viewer, result in shown.items():
        assert len(result["pairs"]) == 2, (viewer, result["pairs"])
        assert not {pair["remote"] for pair in result["pairs"]} & browser_ports, viewer


async def a_patient_without_camera_sees_and_hears(refusing, browser, base: str, app, consultation,
                                                   relay_policy: str) -> None:
    """A patient whose browser refused camera and microphone joins anyway and sees and hears
    the clinician, whose page shows her tile without video or audio."""
    from tests.helpers import logged_in

    patient, errors = await logged_in(refusing, base, "erika")
    await patient.context.add_init_script(FIRST_FRAMES)
    await patient.goto(f"{base}/c/{consultation.id}/call")
    await patient.wait_for_selector("#device-error:not([hidden])")
    assert "nicht verwenden" in await patient.inner_text("#device-error")
    await patient.click("#join")
    await patient.wait_for_selector("#call[data-state=in_call]")
    doctor, doctor_errors = await logged_in(browser, base, "dr-sommer", app)
    await enter_call(doctor, base, consultation.id)
    shown = await until_every_tile_plays({DOCTOR: doctor, PATIENT: patient},
                                         without={PATIENT: ("video", "audio")})
    assert await patient.get_attribute("#call", "data-topology") == relay_policy
    [erika_tile] = shown[DOCTOR]["tiles"]
    assert erika_tile["video"] is None and erika_tile["audio"] is None
    assert errors == doctor_errors == []
