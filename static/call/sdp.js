// What the page mends in the other browser's session description before applying it.

// Firefox (ESR 153) keeps `a=rtcp-fb` lines for the codecs that setCodecPreferences took
// off the m-line (the end-to-end encryption keeps VP8 only), and Chromium then refuses the
// whole description ("Failed to parse codecs correctly"): so a Firefox clinician's offer
// never reached a Chromium patient. Lines for payload types the m-line does not list say
// nothing about the session; they go.
export function withoutUnlistedCodecs(sdp) {
  let listed = null; // the current m-line's payload types; none before the first
  return sdp.split("\r\n").filter((line) => {
    if (line.startsWith("m=")) {
      listed = new Set(line.split(" ").slice(3));
      return true;
    }
    const codec = /^a=(?:rtpmap|fmtp|rtcp-fb):(\d+)[ /]/.exec(line);
    return !codec || !listed || listed.has(codec[1]);
  }).join("\r\n");
}
