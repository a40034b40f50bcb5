// When the call page asks its socket whether it survived (static/call/arrivals.js): a peer's
// packets that stop arriving, measured every 2 s. Run: node --test tests/js/

import assert from "node:assert/strict";
import { test } from "node:test";

import { Arrivals } from "../../static/call/arrivals.js";

test("packets that stop after flowing are noticed once, and again after they flowed anew", () => {
  const arrivals = new Arrivals();
  assert.deepEqual([100, 250, 400, 400, 400, 500, 500].map((count) => arrivals.stopped("u5", count)),
    [false, false, false, true, false, false, true]);
});

test("a line that drops before the first measurement is noticed at the second", () => {
  // Chromium's page behind a dropped line: 135 packets came in the call's first two seconds,
  // then none, from before the first measurement on (tests/test_browser_network.py,
  // Chromium's line dropping beside Firefox).
  const early = new Arrivals();
  assert.equal(early.stopped("u4", 135), false);
  assert.equal(early.stopped("u4", 135), true, "stopped since the first measurement");

  const later = new Arrivals();
  assert.equal(later.stopped("u4", 135), false);
  assert.equal(later.stopped("u4", 137), false, "still growing");
  assert.equal(later.stopped("u4", 137), true);
});

test("a connection that has received nothing yet, or a new one counting from zero, is not news", () => {
  const arrivals = new Arrivals();
  assert.equal(arrivals.stopped("u5", 0), false);
  assert.equal(arrivals.stopped("u5", 0), false);
  assert.equal(arrivals.stopped("u5", 900), false);
  assert.equal(arrivals.stopped("u5", 12), false, "a new connection after a new session");
  assert.equal(arrivals.stopped("u5", 12), true);
  assert.equal(arrivals.stopped("u6", 40), false, "each peer on its own");
});
