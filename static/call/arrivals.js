// Whether a peer's packets stopped arriving, from the count of packets received from it,
// measured every few seconds (page.js). ICE may still say `connected` when they stop: after a
// dropped line Chromium's checks went on over the other side's TURN relay, which that
// side's media did not take (docs/signalling.md, "After a dropped line").

export class Arrivals {
  #last = new Map();

  // True once, at the first measurement without new packets after one with new packets.
  // A connection's first measurement counts from zero, so that a line that drops within a
  // few seconds of the call's start is noticed too: two measurements of a count that was
  // already standing still would never show it growing, and the check would never fire.
  // A smaller count than before is a new connection, which counts from zero again.
  stopped(peer, received) {
    const last = this.#last.get(peer);
    const fresh = !last || received < last.received;
    const growing = received > (fresh ? 0 : last.received);
    this.#last.set(peer, { received, growing });
    return !fresh && last.growing && !growing;
  }
}
