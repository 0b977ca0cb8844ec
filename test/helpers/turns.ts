/**
 * Runs `fn`, counting the turns of the event loop (a chain of setImmediate) until it resolves:
 * work that holds the loop in one piece lets none through, work in slices with a turn between
 * them lets one through per slice. Tests of "announces are answered meanwhile" count turns, not
 * time (no timing assertions in unit tests).
 */
export async function turnsDuring<T>(fn: () => Promise<T>): Promise<{ out: T; turns: number }> {
  let turns = 0;
  let done = false;
  const turn = () => {
    if (done) return;
    turns++;
    setImmediate(turn);
  };
  setImmediate(turn);
  try {
    return { out: await fn(), turns };
  } finally {
    done = true;
  }
}
