// The description a Firefox clinician's page sent, mended so that Chromium takes it.

import assert from "node:assert/strict";
import { test } from "node:test";

import { withoutUnlistedCodecs } from "../../static/call/sdp.js";

const FIREFOX_VP8_ONLY = [
  "v=0", "o=mozilla...THIS_IS_SDPARTA-153.8.0 1 0 IN IP4 0.0.0.0", "s=-", "t=0 0",
  "m=audio 9 UDP/TLS/RTP/SAVPF 109 0", "a=rtpmap:109 opus/48000/2", "a=rtpmap:0 PCMU/8000",
  "m=video 9 UDP/TLS/RTP/SAVPF 120 124", "a=fmtp:120 max-fs=12288;max-fr=60", "a=fmtp:124 apt=120",
  "a=rtcp-fb:120 nack", "a=rtcp-fb:121 nack", "a=rtcp-fb:99 ccm fir", "a=fmtp:121 max-fs=12288",
  "a=rtpmap:120 VP8/90000", "a=rtpmap:124 rtx/90000", "a=rtpmap:121 VP9/90000", "",
].join("\r\n");

test("lines of codecs the m-line does not list go, the rest stays as it was", () => {
  const mended = withoutUnlistedCodecs(FIREFOX_VP8_ONLY).split("\r\n");
  assert.deepEqual(mended.filter((line) => /:(121|99) /.test(line) || line.includes("VP9")), []);
  const kept = FIREFOX_VP8_ONLY.split("\r\n").filter((line) => !/:(121|99)[ /]/.test(line));
  assert.deepEqual(mended, kept);
});

test("a payload type listed by one m-line is not kept for another", () => {
  const sdp = ["m=audio 9 X 109", "a=rtcp-fb:120 nack", "m=video 9 X 120", "a=rtcp-fb:120 nack"].join("\r\n");
  assert.deepEqual(withoutUnlistedCodecs(sdp).split("\r\n"), ["m=audio 9 X 109", "m=video 9 X 120", "a=rtcp-fb:120 nack"]);
});
