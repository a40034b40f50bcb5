// While the call page is open its session must not run out for want of requests (the
// signalling socket does not count as one): a beat well inside the idle timeout, as on the
// waiting page. Once the session has ended (401), `ended` runs: reloading leads a TAN
// guest back to their invitation's TAN page.

export function keepAlive({ url, seconds, csrf }, ended) {
  if (!url || !(seconds > 0)) return () => {};
  const beat = setInterval(() => {
    fetch(url, { method: "POST", headers: { "X-CSRF-Token": csrf } })
      .then((answer) => { if (answer.status === 401) { clearInterval(beat); ended(); } })
      .catch(() => {});  // offline for a moment: the next beat tries again
  }, seconds * 1000);
  return () => clearInterval(beat);
}
